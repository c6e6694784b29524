//! The binary encoding against the JSON one: any batch reads back from
//! binary as it reads back from JSON; and no body, cut or flipped anywhere,
//! makes the reader panic or take more than its bounds.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::wire::SCHEMA_VERSION;

const BOUNDS: Bounds = Bounds {
    max_rounds: 100_000,
    max_attempts_per_round: 64,
    max_attempts: 1_000_000,
};

/// A time around 2026, to the microsecond (what both encodings keep).
fn time() -> impl Strategy<Value = Timestamp> {
    (1_700_000_000_000_000u64..1_900_000_000_000_000).prop_map(Timestamp::from_unix_micros)
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]
}

fn attempt() -> impl Strategy<Value = ConnectAttempt> {
    (
        (ip(), any::<u16>()),
        prop::option::of((ip(), any::<u16>())),
        time(),
        prop::sample::select(ConnectOutcome::ALL.to_vec()),
        any::<u64>(),
        prop::option::of(any::<u32>()),
        0u32..8,
        prop::option::of(any::<i32>()),
        prop::option::of(ip()),
    )
        .prop_map(
            |(address, local, started_at, outcome, duration_us, rtt_us, syn, errno, icmp)| {
                ConnectAttempt {
                    address: SocketAddr::from(address),
                    local: local.map(SocketAddr::from),
                    started_at,
                    outcome,
                    duration_us,
                    rtt_us,
                    syn_retransmits: syn,
                    errno,
                    icmp_from: icmp,
                }
            },
        )
}

fn round() -> impl Strategy<Value = RoundResult> {
    (
        prop::sample::select(vec!["api", "db", "gcp-lb", "ü-name"]),
        prop::sample::select(vec!["127.0.0.1", "api.internal", "::1"]),
        any::<u16>(),
        prop::collection::btree_map("[a-z]{1,8}", "[a-z0-9 ]{0,12}", 0..3),
        time(),
        prop::option::of((
            prop::sample::select(DnsOutcome::ALL.to_vec()),
            any::<u64>(),
            any::<u32>(),
        )),
        prop::collection::vec(attempt(), 0..4),
    )
        .prop_map(
            |(target, host, port, labels, started_at, dns, attempts)| RoundResult {
                target: target.into(),
                host: host.into(),
                port,
                labels: Arc::new(labels),
                started_at,
                dns: dns.map(|(outcome, duration_us, addresses)| DnsObservation {
                    outcome,
                    duration_us,
                    addresses,
                }),
                attempts,
            },
        )
}

fn batch() -> impl Strategy<Value = Batch> {
    (
        "[a-z0-9-]{1,20}",
        prop::option::of("[a-z0-9-]{1,10}"),
        "[a-z0-9.-]{1,30}",
        "[a-f0-9]{0,32}",
        any::<u64>(),
        time(),
        prop::collection::vec(round(), 0..20),
        any::<bool>(),
    )
        .prop_map(
            |(src_region, zone, probe_id, stream, seq, sent_at, results, last)| Batch {
                schema: SCHEMA_VERSION,
                probe: Identity {
                    src_region,
                    zone,
                    probe_id,
                },
                stream,
                seq,
                sent_at,
                results,
                last,
            },
        )
}

/// A small batch as a probe makes it: two targets, one by name.
fn sample() -> Batch {
    let labels = Arc::new(BTreeMap::from([(
        "provider".to_string(),
        "gcp".to_string(),
    )]));
    let at = Timestamp::from_unix_micros(1_800_000_000_123_456);
    let attempt = |port: u16, outcome, rtt| ConnectAttempt {
        address: SocketAddr::from(([127, 0, 0, 2], 443)),
        local: Some(SocketAddr::from(([127, 0, 0, 1], port))),
        started_at: Timestamp::from_unix_micros(at.unix_micros() + 900),
        outcome,
        duration_us: 1_020,
        rtt_us: rtt,
        syn_retransmits: 0,
        errno: None,
        icmp_from: None,
    };
    Batch {
        schema: SCHEMA_VERSION,
        probe: Identity {
            src_region: "us-east-2".into(),
            zone: None,
            probe_id: "p1".into(),
        },
        stream: "0123abcd".into(),
        seq: 7,
        sent_at: Timestamp::from_unix_micros(at.unix_micros() + 2_000_000),
        results: vec![
            RoundResult {
                target: "api".into(),
                host: "api.internal".into(),
                port: 443,
                labels: labels.clone(),
                started_at: at,
                dns: Some(DnsObservation {
                    outcome: DnsOutcome::Ok,
                    duration_us: 800,
                    addresses: 1,
                }),
                attempts: vec![attempt(40_001, ConnectOutcome::Ok, Some(210))],
            },
            RoundResult {
                target: "db".into(),
                host: "127.0.0.2".into(),
                port: 443,
                labels,
                started_at: Timestamp::from_unix_micros(at.unix_micros() + 5),
                dns: None,
                attempts: vec![attempt(40_002, ConnectOutcome::Refused, None)],
            },
        ],
        last: false,
    }
}

fn via_json(b: &Batch) -> Batch {
    serde_json::from_slice(&serde_json::to_vec(b).unwrap()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_batch_reads_back_from_binary_as_from_json(b in batch()) {
        let bytes = encode(&b);
        prop_assert!(is_binary(&bytes));
        let back = decode(&bytes, BOUNDS).unwrap();
        prop_assert_eq!(&back, &via_json(&b));
        prop_assert_eq!(&back, &b);
    }

    #[test]
    fn a_cut_or_changed_body_is_refused_or_read_never_a_panic(
        b in batch(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        bits in 1u8..=255,
    ) {
        let bytes = encode(&b);
        let n = cut.index(bytes.len());
        prop_assert!(decode(&bytes[..n], BOUNDS).is_err(), "a batch cut at {} of {} bytes read", n, bytes.len());
        let mut changed = bytes.clone();
        let i = flip.index(changed.len());
        changed[i] ^= bits;
        if let Ok(read) = decode(&changed, BOUNDS) {
            // What a changed body reads as is a batch within the bounds.
            prop_assert!(read.results.len() <= BOUNDS.max_rounds);
        }
    }
}

#[test]
fn a_batch_takes_a_fraction_of_its_json() {
    let b = sample();
    let json = serde_json::to_vec(&b).unwrap();
    let bytes = encode(&b);
    assert!(
        bytes.len() * 3 < json.len(),
        "binary {} bytes, JSON {}",
        bytes.len(),
        json.len()
    );
    assert_eq!(decode(&bytes, BOUNDS).unwrap(), b);
}

#[test]
fn the_header_is_as_specified() {
    let bytes = encode(&sample());
    assert_eq!(&bytes[..4], b"VNTB");
    assert_eq!(bytes[4], FORMAT);
    assert_eq!(bytes[5], SCHEMA_VERSION as u8);
    assert_eq!(bytes[6], 0, "flags: not last, no zone");
    assert_eq!(&bytes[7..17], b"\x09us-east-2");
}

#[test]
fn another_format_is_named_not_misread() {
    let mut bytes = encode(&sample());
    bytes[4] = 2;
    assert_eq!(decode(&bytes, BOUNDS), Err(Error::UnknownFormat(2)));
    let e = decode(b"{\"schema\":1}", BOUNDS).unwrap_err();
    assert!(e.to_string().contains("no magic bytes"), "{e}");
}

#[test]
fn extensions_of_a_newer_sender_are_skipped_and_unknown_flags_ignored() {
    let b = sample();
    let mut bytes = encode(&b);
    // The last byte is the extension count, 0: two extensions instead.
    assert_eq!(bytes.pop(), Some(0));
    bytes.extend_from_slice(&[2, 7, 3, b'x', b'y', b'z', 200, 1, 0]);
    bytes[6] |= 0x80;
    assert_eq!(decode(&bytes, BOUNDS).unwrap(), b);
}

#[test]
fn counts_past_the_body_or_the_bounds_are_refused_before_allocating() {
    let b = sample();
    let bytes = encode(&b);
    let few = Bounds {
        max_rounds: 1,
        ..BOUNDS
    };
    assert_eq!(
        decode(&bytes, few),
        Err(Error::TooManyRounds { rounds: 2, max: 1 })
    );
    let one = Bounds {
        max_attempts_per_round: 0,
        ..BOUNDS
    };
    let e = decode(&bytes, one).unwrap_err();
    assert!(e.to_string().contains("attempts in one round"), "{e}");
    let total = Bounds {
        max_attempts: 1,
        ..BOUNDS
    };
    assert_eq!(
        decode(&bytes, total),
        Err(Error::TooManyAttempts {
            attempts: 2,
            max: 1
        })
    );
    // A header, then a string table claiming 2^60 strings in 3 bytes.
    let mut huge = bytes[..7].to_vec();
    for s in ["r", "p", "s"] {
        super::put_str(&mut huge, s);
    }
    super::put(&mut huge, 1);
    super::put(&mut huge, 0);
    super::put(&mut huge, 1 << 60);
    huge.extend_from_slice(&[1, 1, 1]);
    let e = decode(&huge, BOUNDS).unwrap_err();
    assert!(e.to_string().contains("more than the body holds"), "{e}");
}

#[test]
fn an_index_outside_its_table_is_refused() {
    let b = Batch {
        results: vec![sample().results[1].clone()],
        ..sample()
    };
    let mut bytes = encode(&b);
    // The round columns follow the tables; the first is the target index,
    // as a step from the one before: the one round's (0, coded 0) becomes
    // 9 (coded 18).
    let target_at = find_round_columns(&bytes);
    assert_eq!(bytes[target_at], 0);
    bytes[target_at] = 18;
    let e = decode(&bytes, BOUNDS).unwrap_err();
    assert!(e.to_string().contains("round target 9 of 1"), "{e}");
}

/// Where the round columns of an encoded batch with one round start: just
/// after the round count, found by reading the tables as the reader does.
fn find_round_columns(bytes: &[u8]) -> usize {
    let mut r = super::Reader { bytes, at: 5 };
    r.u("").unwrap();
    let flags = r.byte("").unwrap();
    r.str("").unwrap();
    if flags & 2 != 0 {
        r.str("").unwrap();
    }
    r.str("").unwrap();
    r.str("").unwrap();
    r.u("").unwrap();
    r.u("").unwrap();
    for _ in 0..r.u("").unwrap() {
        r.str("").unwrap();
    }
    for _ in 0..r.u("").unwrap() {
        r.u("").unwrap();
        r.u("").unwrap();
        r.u("").unwrap();
        for _ in 0..r.u("").unwrap() {
            r.u("").unwrap();
            r.u("").unwrap();
        }
    }
    for _ in 0..r.u("").unwrap() {
        r.ip().unwrap();
    }
    for _ in 0..r.u("").unwrap() {
        r.u("").unwrap();
        r.u("").unwrap();
    }
    assert_eq!(r.u("").unwrap(), 1, "one round");
    r.at
}
