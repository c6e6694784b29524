//! A batch's content digest, kept in its receipt: a retry carries the same
//! content under the same (probe, stream, seq), while a probe whose `seq`
//! came back from an older snapshot sends new content under a seen key.
//! The two must not both be answered "duplicate".
//!
//! 64-bit FNV-1a over the batch's canonical content: its zone, every field
//! of every result in order, and `last`. Not `sent_at` nor the sent-at
//! header: a retry's clock is not its content. Each field is written in a
//! fixed binary form (strings length-prefixed, options tagged), never
//! through serde, so that the digest of a stored batch does not change
//! with a serializer. A field added to the record later must enter the
//! digest only when present, so that a batch from before keeps its digest.

use std::net::{IpAddr, SocketAddr};

use vantage_probe::result::{ConnectAttempt, DnsObservation, RoundResult, Timestamp};
use vantage_probe::wire::Batch;

/// The digest of `batch`'s content, as SQLite keeps it (the 64 bits
/// bit-cast to `i64`).
pub(super) fn digest(batch: &Batch) -> i64 {
    let mut h = Fnv::new();
    h.opt(batch.probe.zone.as_deref(), |h, z| h.str(z));
    h.u64(batch.results.len() as u64);
    for r in &batch.results {
        round(&mut h, r);
    }
    h.u8(u8::from(batch.last));
    h.0 as i64
}

fn round(h: &mut Fnv, r: &RoundResult) {
    h.str(&r.target);
    h.str(&r.host);
    h.u64(u64::from(r.port));
    h.u64(r.labels.len() as u64);
    for (k, v) in r.labels.iter() {
        h.str(k);
        h.str(v);
    }
    h.time(r.started_at);
    h.opt(r.dns.as_ref(), dns);
    h.u64(r.attempts.len() as u64);
    for a in &r.attempts {
        attempt(h, a);
    }
}

fn dns(h: &mut Fnv, d: &DnsObservation) {
    h.str(d.outcome.as_str());
    h.u64(d.duration_us);
    h.u64(u64::from(d.addresses));
}

fn attempt(h: &mut Fnv, a: &ConnectAttempt) {
    h.addr(a.address);
    h.opt(a.local, Fnv::addr);
    h.time(a.started_at);
    h.str(a.outcome.as_str());
    h.u64(a.duration_us);
    h.opt(a.rtt_us, |h, v| h.u64(u64::from(v)));
    h.u64(u64::from(a.syn_retransmits));
    h.opt(a.errno, |h, v| h.u64(v as u32 as u64));
    h.opt(a.icmp_from, Fnv::ip);
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Fnv {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Fnv {
        Fnv(Self::OFFSET)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }

    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    /// Length first, so that ("ab", "c") and ("a", "bc") differ.
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.bytes(s.as_bytes());
    }

    fn time(&mut self, t: Timestamp) {
        self.u64(t.unix_micros());
    }

    fn ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => {
                self.u8(4);
                self.bytes(&v4.octets());
            }
            IpAddr::V6(v6) => {
                self.u8(6);
                self.bytes(&v6.octets());
            }
        }
    }

    fn addr(&mut self, a: SocketAddr) {
        self.ip(a.ip());
        self.u64(u64::from(a.port()));
    }

    /// A tag, then the value when there is one.
    fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Fnv, T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use vantage_probe::outcome::ConnectOutcome;
    use vantage_probe::result::Identity;
    use vantage_probe::wire::SCHEMA_VERSION;

    use super::*;

    fn batch() -> Batch {
        let at = Timestamp::from_unix_micros(1_700_000_000_000_000);
        Batch {
            schema: SCHEMA_VERSION,
            probe: Identity {
                src_region: "east".into(),
                zone: None,
                probe_id: "p1".into(),
            },
            stream: "s".into(),
            seq: 1,
            sent_at: at,
            results: vec![RoundResult {
                target: "api".into(),
                host: "127.0.0.1".into(),
                port: 443,
                labels: Arc::new(BTreeMap::from([("service".into(), "api".into())])),
                started_at: at,
                dns: None,
                attempts: vec![ConnectAttempt {
                    address: SocketAddr::from(([127, 0, 0, 1], 443)),
                    local: None,
                    started_at: at,
                    outcome: ConnectOutcome::Ok,
                    duration_us: 900,
                    rtt_us: Some(800),
                    syn_retransmits: 0,
                    errno: None,
                    icmp_from: None,
                }],
            }],
            last: false,
        }
    }

    #[test]
    fn the_same_content_has_the_same_digest_whenever_it_is_sent() {
        let a = batch();
        let mut b = batch();
        b.sent_at = Timestamp::from_unix_micros(1_800_000_000_000_000);
        b.seq = 9;
        b.stream = "other".into();
        assert_eq!(digest(&a), digest(&b), "key and send time are not content");
        // Pinned: a receipt's digest must read the same in the next build.
        assert_eq!(digest(&a), 0x3a8b_ed23_ffd2_6489_u64 as i64);
    }

    #[test]
    fn it_is_fnv_1a() {
        // The published 64-bit FNV-1a values of "" and "a".
        assert_eq!(Fnv::new().0, 0xcbf2_9ce4_8422_2325);
        let mut h = Fnv::new();
        h.bytes(b"a");
        assert_eq!(h.0, 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn any_stored_field_changes_the_digest() {
        let base = digest(&batch());
        type Change = (&'static str, fn(&mut Batch));
        let changes: [Change; 9] = [
            ("last", |b| b.last = true),
            ("zone", |b| b.probe.zone = Some("a".into())),
            ("a result more", |b| {
                let r = b.results[0].clone();
                b.results.push(r);
            }),
            ("started_at", |b| {
                b.results[0].started_at = Timestamp::from_unix_micros(1)
            }),
            ("label", |b| {
                b.results[0].labels = Arc::new(BTreeMap::from([("service".into(), "db".into())]))
            }),
            ("outcome", |b| {
                b.results[0].attempts[0].outcome = ConnectOutcome::Refused
            }),
            ("rtt", |b| b.results[0].attempts[0].rtt_us = Some(801)),
            ("rtt absent", |b| b.results[0].attempts[0].rtt_us = None),
            ("icmp_from", |b| {
                b.results[0].attempts[0].icmp_from = Some(IpAddr::from([10, 0, 0, 1]))
            }),
        ];
        for (what, change) in changes {
            let mut b = batch();
            change(&mut b);
            assert_ne!(digest(&b), base, "{what}");
        }
    }
}
