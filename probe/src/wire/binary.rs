//! The binary batch encoding, version 1: the layout is specified in the
//! [`crate::wire`] module's docs ("The binary encoding"); this is its one
//! writer and its one reader.
//!
//! The reader takes bytes from anyone holding a token: every count is
//! checked against the bytes left before anything is allocated for it, the
//! rounds and attempts against the caller's bounds, and every index
//! against its table, so a body can cost at most a small multiple of its
//! own size, and a bad one is an [`Error`] naming the byte it failed at,
//! never a panic.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crate::outcome::{ConnectOutcome, DnsOutcome};
use crate::result::{ConnectAttempt, DnsObservation, Identity, RoundResult, Timestamp};

use super::Batch;

/// The media type of a binary batch (`Content-Type`).
pub const CONTENT_TYPE: &str = "application/vnd.vantage.batch.v1";

/// The first bytes of every binary batch.
pub const MAGIC: [u8; 4] = *b"VNTB";

/// The layout version this build writes and reads (the byte after
/// [`MAGIC`]). A change of layout bumps it; fields a newer sender adds go
/// into extensions, which a reader skips, and need no bump.
pub const FORMAT: u8 = 1;

/// The fewest bytes one attempt takes in the attempt columns: a reader
/// holds a count of attempts to the bytes left by this.
const MIN_ATTEMPT_BYTES: usize = 9;

/// How much one body may hold, checked before anything is allocated for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Rounds in one batch.
    pub max_rounds: usize,
    /// Attempts in one round.
    pub max_attempts_per_round: usize,
    /// Attempts in the whole batch: a reader that allows a JSON body of
    /// `n` bytes allows `n /` [`MIN_ATTEMPT_JSON_BYTES`] here, so that a
    /// binary body decodes to no more than a JSON body could.
    pub max_attempts: usize,
}

/// The fewest bytes of JSON one attempt takes (every optional field left
/// out, every number 0).
pub const MIN_ATTEMPT_JSON_BYTES: usize = 117;

/// Why bytes are not a binary batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not the layout: `what` was wrong at byte `at`.
    #[error("binary batch, byte {at}: {what}")]
    Malformed {
        /// The offset where reading failed.
        at: usize,
        /// What was expected there.
        what: String,
    },
    /// A layout version this build does not read.
    #[error("binary batch format {0}: this collector reads format {FORMAT}")]
    UnknownFormat(u8),
    /// More attempts than [`Bounds::max_attempts`].
    #[error("binary batch: {attempts} attempts, at most {max}")]
    TooManyAttempts {
        /// Attempts the body says it holds.
        attempts: u64,
        /// The bound.
        max: usize,
    },
    /// More rounds than [`Bounds::max_rounds`].
    #[error("binary batch: {rounds} rounds, at most {max}")]
    TooManyRounds {
        /// Rounds the body says it holds.
        rounds: u64,
        /// The bound.
        max: usize,
    },
}

/// Whether `bytes` start as a binary batch does (the spool tells its
/// files apart by this).
pub fn is_binary(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// `batch` in the binary encoding. Times are kept to the microsecond, as
/// the JSON encoding keeps them.
pub fn encode(batch: &Batch) -> Vec<u8> {
    let mut w = Writer::default();
    let mut out = Vec::with_capacity(64 + batch.results.len() * 16);
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT);
    put(&mut out, u64::from(batch.schema));
    let mut flags = 0u8;
    if batch.last {
        flags |= FLAG_LAST;
    }
    if batch.probe.zone.is_some() {
        flags |= FLAG_ZONE;
    }
    out.push(flags);
    put_str(&mut out, &batch.probe.src_region);
    if let Some(zone) = &batch.probe.zone {
        put_str(&mut out, zone);
    }
    put_str(&mut out, &batch.probe.probe_id);
    put_str(&mut out, &batch.stream);
    put(&mut out, batch.seq);
    let sent_us = batch.sent_at.unix_micros();
    put(&mut out, sent_us);

    // The tables, filled as the columns are written.
    let attempts: Vec<&ConnectAttempt> = batch.results.iter().flat_map(|r| &r.attempts).collect();
    let mut cols = Vec::with_capacity(batch.results.len() * 12 + attempts.len() * 12);
    put(&mut cols, batch.results.len() as u64);
    // Indexes as the step from the one before plus one: rounds of a
    // schedule come in the same order batch after batch, so mostly 0.
    let mut before = u64::MAX;
    for r in &batch.results {
        let t = w.target(r);
        put(&mut cols, step(before, t));
        before = t;
    }
    // Starts as the change of the gap between two rounds: a schedule
    // spreads its rounds evenly, so mostly 0 too.
    let (mut before, mut gap) = (sent_us, 0u64);
    for r in &batch.results {
        let at = r.started_at.unix_micros();
        let this = at.wrapping_sub(before);
        put(&mut cols, zigzag(this.wrapping_sub(gap) as i64));
        (before, gap) = (at, this);
    }
    for r in &batch.results {
        let code = match &r.dns {
            None => 0,
            Some(d) => 1 + w.string(d.outcome.as_str()),
        };
        put(&mut cols, code);
    }
    for d in batch.results.iter().filter_map(|r| r.dns.as_ref()) {
        put(&mut cols, d.duration_us);
    }
    for d in batch.results.iter().filter_map(|r| r.dns.as_ref()) {
        put(&mut cols, u64::from(d.addresses));
    }
    for r in &batch.results {
        put(&mut cols, r.attempts.len() as u64);
    }
    let mut before = u64::MAX;
    for a in &attempts {
        let e = w.endpoint(a.address);
        put(&mut cols, step(before, e));
        before = e;
    }
    for a in &attempts {
        let l = a.local.map_or(0, |l| 1 + w.ip(l.ip()));
        put(&mut cols, l);
    }
    for l in attempts.iter().filter_map(|a| a.local) {
        cols.extend_from_slice(&l.port().to_le_bytes());
    }
    for r in &batch.results {
        let round = r.started_at.unix_micros();
        for a in &r.attempts {
            let offset = a.started_at.unix_micros().wrapping_sub(round);
            put(&mut cols, zigzag(offset as i64));
        }
    }
    for a in &attempts {
        let o = w.string(a.outcome.as_str());
        put(&mut cols, o);
    }
    for a in &attempts {
        put(&mut cols, a.rtt_us.map_or(0, |r| 1 + u64::from(r)));
    }
    // A connect's duration is its RTT and a little more: with an RTT, the
    // difference.
    for a in &attempts {
        let over = a.duration_us.wrapping_sub(a.rtt_us.map_or(0, u64::from));
        put(&mut cols, zigzag(over as i64));
    }
    for a in &attempts {
        put(&mut cols, u64::from(a.syn_retransmits));
    }
    for a in &attempts {
        put(&mut cols, a.errno.map_or(0, |e| 1 + zigzag(i64::from(e))));
    }
    for a in &attempts {
        let i = a.icmp_from.map_or(0, |ip| 1 + w.ip(ip));
        put(&mut cols, i);
    }

    // Tables first, so that a reader resolves every index as it reads.
    put(&mut out, w.strings.len() as u64);
    for s in &w.strings {
        put_str(&mut out, s);
    }
    put(&mut out, w.targets.len() as u64);
    for t in &w.targets {
        out.extend_from_slice(t);
    }
    put(&mut out, w.ips.len() as u64);
    for ip in &w.ips {
        put_ip(&mut out, *ip);
    }
    put(&mut out, w.endpoints.len() as u64);
    for &(ip, port) in &w.endpoints {
        put(&mut out, ip);
        put(&mut out, u64::from(port));
    }
    out.extend_from_slice(&cols);
    // No extensions in this version.
    put(&mut out, 0);
    out
}

const FLAG_LAST: u8 = 1;
const FLAG_ZONE: u8 = 2;

/// The tables a batch's columns index into, as the writer fills them.
#[derive(Default)]
struct Writer<'a> {
    strings: Vec<&'a str>,
    string_ids: HashMap<&'a str, u64>,
    /// Each target's entry, already encoded.
    targets: Vec<Vec<u8>>,
    target_ids: HashMap<TargetKey<'a>, u64>,
    ips: Vec<IpAddr>,
    ip_ids: HashMap<IpAddr, u64>,
    endpoints: Vec<(u64, u16)>,
    endpoint_ids: HashMap<SocketAddr, u64>,
}

type TargetKey<'a> = (&'a str, &'a str, u16, &'a BTreeMap<String, String>);

impl<'a> Writer<'a> {
    fn string(&mut self, s: &'a str) -> u64 {
        if let Some(&i) = self.string_ids.get(s) {
            return i;
        }
        let i = self.strings.len() as u64;
        self.strings.push(s);
        self.string_ids.insert(s, i);
        i
    }

    fn target(&mut self, r: &'a RoundResult) -> u64 {
        let key = (&*r.target, &*r.host, r.port, &*r.labels);
        if let Some(&i) = self.target_ids.get(&key) {
            return i;
        }
        let mut entry = Vec::new();
        put(&mut entry, self.string(&r.target));
        put(&mut entry, self.string(&r.host));
        put(&mut entry, u64::from(r.port));
        put(&mut entry, r.labels.len() as u64);
        for (k, v) in r.labels.iter() {
            put(&mut entry, self.string(k));
            put(&mut entry, self.string(v));
        }
        let i = self.targets.len() as u64;
        self.targets.push(entry);
        self.target_ids.insert(key, i);
        i
    }

    fn ip(&mut self, ip: IpAddr) -> u64 {
        *self.ip_ids.entry(ip).or_insert_with(|| {
            self.ips.push(ip);
            self.ips.len() as u64 - 1
        })
    }

    fn endpoint(&mut self, a: SocketAddr) -> u64 {
        if let Some(&i) = self.endpoint_ids.get(&a) {
            return i;
        }
        let ip = self.ip(a.ip());
        let i = self.endpoints.len() as u64;
        self.endpoints.push((ip, a.port()));
        self.endpoint_ids.insert(a, i);
        i
    }
}

/// Reads a binary batch, within `bounds`. Anything after it is malformed.
pub fn decode(bytes: &[u8], bounds: Bounds) -> Result<Batch, Error> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(MAGIC.len(), "the magic bytes")? != MAGIC {
        return Err(r.malformed_at(0, "not a binary batch (no magic bytes)"));
    }
    let format = r.byte("the format")?;
    if format != FORMAT {
        return Err(Error::UnknownFormat(format));
    }
    let schema = u32::try_from(r.u("the schema")?).map_err(|_| r.malformed("schema"))?;
    // Flags a newer sender sets and this reader does not know are ignored.
    let flags = r.byte("the flags")?;
    let src_region = r.string("src_region")?;
    let zone = if flags & FLAG_ZONE != 0 {
        Some(r.string("zone")?)
    } else {
        None
    };
    let probe_id = r.string("probe_id")?;
    let stream = r.string("stream")?;
    let seq = r.u("seq")?;
    let sent_us = r.u("sent_at")?;

    let n = r.count("strings", 1)?;
    let mut strings: Vec<&str> = Vec::with_capacity(n);
    for _ in 0..n {
        strings.push(r.str("a string")?);
    }
    let string = |r: &mut Reader<'_>, what: &str| -> Result<&str, Error> {
        let i = r.u(what)?;
        strings
            .get(i as usize)
            .copied()
            .ok_or_else(|| r.malformed(&format!("{what}: string {i} of {}", strings.len())))
    };

    let n = r.count("targets", 4)?;
    let mut targets: Vec<Target> = Vec::with_capacity(n);
    for _ in 0..n {
        let name: Arc<str> = string(&mut r, "target name")?.into();
        let host: Arc<str> = string(&mut r, "target host")?.into();
        let port = u16::try_from(r.u("target port")?).map_err(|_| r.malformed("target port"))?;
        let labels = r.count("labels", 2)?;
        let mut map = BTreeMap::new();
        for _ in 0..labels {
            let k = string(&mut r, "label name")?;
            let v = string(&mut r, "label value")?;
            map.insert(k.to_string(), v.to_string());
        }
        targets.push(Target {
            name,
            host,
            port,
            labels: Arc::new(map),
        });
    }

    let n = r.count("addresses", 5)?;
    let mut ips: Vec<IpAddr> = Vec::with_capacity(n);
    for _ in 0..n {
        ips.push(r.ip()?);
    }
    let ip = |r: &mut Reader<'_>, i: u64, what: &str| -> Result<IpAddr, Error> {
        ips.get(i as usize)
            .copied()
            .ok_or_else(|| r.malformed(&format!("{what}: address {i} of {}", ips.len())))
    };
    let n = r.count("endpoints", 2)?;
    let mut endpoints: Vec<SocketAddr> = Vec::with_capacity(n);
    for _ in 0..n {
        let i = r.u("endpoint address")?;
        let a = ip(&mut r, i, "endpoint")?;
        let port =
            u16::try_from(r.u("endpoint port")?).map_err(|_| r.malformed("endpoint port"))?;
        endpoints.push(SocketAddr::new(a, port));
    }

    let rounds = r.u("rounds")?;
    if rounds > bounds.max_rounds as u64 {
        return Err(Error::TooManyRounds {
            rounds,
            max: bounds.max_rounds,
        });
    }
    // Each round takes at least 4 bytes of the round columns.
    let rounds = r.fits(rounds, 4, "rounds")?;
    let mut of_target = Vec::with_capacity(rounds);
    let mut before = u64::MAX;
    for _ in 0..rounds {
        let i = unstep(before, r.u("round target")?);
        if i >= targets.len() as u64 {
            return Err(r.malformed(&format!("round target {i} of {}", targets.len())));
        }
        of_target.push(i as usize);
        before = i;
    }
    let mut started = Vec::with_capacity(rounds);
    let (mut before, mut gap) = (sent_us, 0u64);
    for _ in 0..rounds {
        let this = gap.wrapping_add(unzigzag(r.u("round start")?) as u64);
        let at = before.wrapping_add(this);
        started.push(at);
        (before, gap) = (at, this);
    }
    let mut dns: Vec<Option<DnsOutcome>> = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        dns.push(match r.u("dns outcome")? {
            0 => None,
            i => {
                let label = strings.get(i as usize - 1).copied().ok_or_else(|| {
                    r.malformed(&format!(
                        "dns outcome: string {} of {}",
                        i - 1,
                        strings.len()
                    ))
                })?;
                Some(
                    DnsOutcome::ALL
                        .into_iter()
                        .find(|o| o.as_str() == label)
                        .ok_or_else(|| r.malformed(&format!("unknown dns outcome {label:?}")))?,
                )
            }
        });
    }
    let lookups = dns.iter().filter(|d| d.is_some()).count();
    let mut dns_us = Vec::with_capacity(lookups);
    for _ in 0..lookups {
        dns_us.push(r.u("dns duration")?);
    }
    let mut dns_addresses = Vec::with_capacity(lookups);
    for _ in 0..lookups {
        let n = u32::try_from(r.u("dns addresses")?).map_err(|_| r.malformed("dns addresses"))?;
        dns_addresses.push(n);
    }
    let mut per_round = Vec::with_capacity(rounds);
    let mut total = 0u64;
    for _ in 0..rounds {
        let n = r.u("attempts")?;
        if n > bounds.max_attempts_per_round as u64 {
            return Err(r.malformed(&format!(
                "{n} attempts in one round, at most {}",
                bounds.max_attempts_per_round
            )));
        }
        total += n;
        per_round.push(n as usize);
    }
    if total > bounds.max_attempts as u64 {
        return Err(Error::TooManyAttempts {
            attempts: total,
            max: bounds.max_attempts,
        });
    }
    let total = r.fits(total, MIN_ATTEMPT_BYTES, "attempts")?;
    let mut address = Vec::with_capacity(total);
    let mut before = u64::MAX;
    for _ in 0..total {
        let i = unstep(before, r.u("attempt address")?);
        before = i;
        let e = usize::try_from(i)
            .ok()
            .and_then(|i| endpoints.get(i))
            .copied()
            .ok_or_else(|| {
                r.malformed(&format!(
                    "attempt address: endpoint {i} of {}",
                    endpoints.len()
                ))
            })?;
        address.push(e);
    }
    let mut local_ip = Vec::with_capacity(total);
    for _ in 0..total {
        local_ip.push(match r.u("attempt local address")? {
            0 => None,
            i => Some(ip(&mut r, i - 1, "attempt local address")?),
        });
    }
    let mut local = Vec::with_capacity(total);
    for l in local_ip {
        local.push(match l {
            None => None,
            Some(a) => {
                let p = r.take(2, "attempt local port")?;
                Some(SocketAddr::new(a, u16::from_le_bytes([p[0], p[1]])))
            }
        });
    }
    let mut offset = Vec::with_capacity(total);
    for _ in 0..total {
        offset.push(unzigzag(r.u("attempt start")?) as u64);
    }
    let mut outcome = Vec::with_capacity(total);
    for _ in 0..total {
        let label = string(&mut r, "attempt outcome")?;
        outcome.push(
            ConnectOutcome::ALL
                .into_iter()
                .find(|o| o.as_str() == label)
                .ok_or_else(|| r.malformed(&format!("unknown connect outcome {label:?}")))?,
        );
    }
    let mut rtt = Vec::with_capacity(total);
    for _ in 0..total {
        rtt.push(match r.u("attempt rtt")? {
            0 => None,
            v => Some(u32::try_from(v - 1).map_err(|_| r.malformed("attempt rtt"))?),
        });
    }
    let mut duration = Vec::with_capacity(total);
    for rtt in &rtt {
        let over = unzigzag(r.u("attempt duration")?) as u64;
        duration.push(over.wrapping_add(rtt.map_or(0, u64::from)));
    }
    let mut retransmits = Vec::with_capacity(total);
    for _ in 0..total {
        let v = r.u("attempt syn_retransmits")?;
        retransmits.push(u32::try_from(v).map_err(|_| r.malformed("attempt syn_retransmits"))?);
    }
    let mut errno = Vec::with_capacity(total);
    for _ in 0..total {
        errno.push(match r.u("attempt errno")? {
            0 => None,
            v => Some(i32::try_from(unzigzag(v - 1)).map_err(|_| r.malformed("attempt errno"))?),
        });
    }
    let mut icmp = Vec::with_capacity(total);
    for _ in 0..total {
        icmp.push(match r.u("attempt icmp_from")? {
            0 => None,
            i => Some(ip(&mut r, i - 1, "attempt icmp_from")?),
        });
    }

    // Extensions: what a newer sender adds, skipped here.
    let n = r.count("extensions", 2)?;
    for _ in 0..n {
        r.u("extension tag")?;
        let len = r.u("extension length")?;
        let len = r.fits(len, 1, "extension")?;
        r.take(len, "extension")?;
    }
    if r.at != bytes.len() {
        return Err(r.malformed("bytes after the batch"));
    }

    let mut results = Vec::with_capacity(rounds);
    let mut a = 0;
    let mut lookup = 0;
    for i in 0..rounds {
        let t = &targets[of_target[i]];
        let dns = dns[i].map(|outcome| {
            let d = DnsObservation {
                outcome,
                duration_us: dns_us[lookup],
                addresses: dns_addresses[lookup],
            };
            lookup += 1;
            d
        });
        let round_us = started[i];
        let mut attempts = Vec::with_capacity(per_round[i]);
        for _ in 0..per_round[i] {
            attempts.push(ConnectAttempt {
                address: address[a],
                local: local[a],
                started_at: Timestamp::from_unix_micros(round_us.wrapping_add(offset[a])),
                outcome: outcome[a],
                duration_us: duration[a],
                rtt_us: rtt[a],
                syn_retransmits: retransmits[a],
                errno: errno[a],
                icmp_from: icmp[a],
            });
            a += 1;
        }
        results.push(RoundResult {
            target: t.name.clone(),
            host: t.host.clone(),
            port: t.port,
            labels: t.labels.clone(),
            started_at: Timestamp::from_unix_micros(round_us),
            dns,
            attempts,
        });
    }
    Ok(Batch {
        schema,
        probe: Identity {
            src_region,
            zone,
            probe_id,
        },
        stream,
        seq,
        sent_at: Timestamp::from_unix_micros(sent_us),
        results,
        last: flags & FLAG_LAST != 0,
    })
}

/// A target's entry, as rounds share it.
struct Target {
    name: Arc<str>,
    host: Arc<str>,
    port: u16,
    labels: Arc<BTreeMap<String, String>>,
}

/// `i` as the step from `before` plus one (`before` is `u64::MAX` for the
/// first), zigzag-coded.
fn step(before: u64, i: u64) -> u64 {
    zigzag(i.wrapping_sub(before.wrapping_add(1)) as i64)
}

fn unstep(before: u64, v: u64) -> u64 {
    before.wrapping_add(1).wrapping_add(unzigzag(v) as u64)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends `v` as an unsigned LEB128 varint.
fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            out.push(4);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(6);
            out.extend_from_slice(&v6.octets());
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn malformed(&self, what: &str) -> Error {
        self.malformed_at(self.at, what)
    }

    fn malformed_at(&self, at: usize, what: &str) -> Error {
        Error::Malformed {
            at,
            what: what.to_string(),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Error> {
        let rest = &self.bytes[self.at..];
        if rest.len() < n {
            return Err(self.malformed(&format!("{what}: the body ends")));
        }
        self.at += n;
        Ok(&rest[..n])
    }

    fn byte(&mut self, what: &str) -> Result<u8, Error> {
        Ok(self.take(1, what)?[0])
    }

    /// An unsigned LEB128 varint of at most 64 bits.
    fn u(&mut self, what: &str) -> Result<u64, Error> {
        let start = self.at;
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte(what)?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(self.malformed_at(start, &format!("{what}: over 64 bits")));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.malformed_at(start, &format!("{what}: over 64 bits")))
    }

    /// `n` items of at least `min_bytes` each, if the bytes left can hold
    /// them.
    fn fits(&self, n: u64, min_bytes: usize, what: &str) -> Result<usize, Error> {
        let left = (self.bytes.len() - self.at) as u64;
        if n.saturating_mul(min_bytes as u64) > left {
            return Err(self.malformed(&format!("{n} {what}: more than the body holds")));
        }
        Ok(n as usize)
    }

    /// A count, then as many items of at least `min_bytes` each.
    fn count(&mut self, what: &str, min_bytes: usize) -> Result<usize, Error> {
        let n = self.u(what)?;
        self.fits(n, min_bytes, what)
    }

    fn str(&mut self, what: &str) -> Result<&'a str, Error> {
        let len = self.u(what)?;
        let len = self.fits(len, 1, what)?;
        let at = self.at;
        let b = self.take(len, what)?;
        std::str::from_utf8(b).map_err(|_| self.malformed_at(at, &format!("{what}: not UTF-8")))
    }

    fn string(&mut self, what: &str) -> Result<String, Error> {
        self.str(what).map(str::to_string)
    }

    fn ip(&mut self) -> Result<IpAddr, Error> {
        match self.byte("an address family")? {
            4 => {
                let b = self.take(4, "an IPv4 address")?;
                Ok(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])))
            }
            6 => {
                let b = self.take(16, "an IPv6 address")?;
                let mut o = [0u8; 16];
                o.copy_from_slice(b);
                Ok(IpAddr::V6(Ipv6Addr::from(o)))
            }
            f => Err(self.malformed_at(self.at - 1, &format!("address family {f}: 4 or 6"))),
        }
    }
}

#[cfg(test)]
mod tests;
