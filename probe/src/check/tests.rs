//! Renderer snapshots: the same rounds always print the same bytes.

use std::sync::Arc;

use super::summary::Summary;
use super::{json, text};
use crate::outcome::{ConnectOutcome, DnsOutcome};
use crate::result::{ConnectAttempt, DnsObservation, RoundResult, Timestamp};

const T0: u64 = 1_775_433_600_000_000; // 2026-04-06T00:00:00Z

fn attempt(
    addr: &str,
    at_ms: u64,
    outcome: ConnectOutcome,
    dur_us: u64,
    rtt: Option<u32>,
    retrans: u32,
) -> ConnectAttempt {
    ConnectAttempt {
        address: addr.parse().unwrap(),
        local: Some("10.1.0.7:40001".parse().unwrap()),
        started_at: Timestamp::from_unix_micros(T0 + at_ms * 1000 + 1_500),
        outcome,
        duration_us: dur_us,
        rtt_us: rtt,
        syn_retransmits: retrans,
        errno: match outcome {
            ConnectOutcome::Refused => Some(111),
            ConnectOutcome::HostUnreachable => Some(113),
            _ => None,
        },
        icmp_from: (outcome == ConnectOutcome::HostUnreachable)
            .then(|| "10.8.0.1".parse().unwrap()),
    }
}

fn rounds() -> Vec<RoundResult> {
    let round = |at_ms: u64, dns: DnsObservation, attempts: Vec<ConnectAttempt>| RoundResult {
        target: "api.internal:443".into(),
        host: "api.internal".into(),
        port: 443,
        labels: Arc::default(),
        started_at: Timestamp::from_unix_micros(T0 + at_ms * 1000),
        dns: Some(dns),
        attempts,
    };
    let ok_dns = |us| DnsObservation {
        outcome: DnsOutcome::Ok,
        duration_us: us,
        addresses: 2,
    };
    vec![
        round(
            0,
            ok_dns(1_210),
            vec![
                attempt("10.0.0.5:443", 0, ConnectOutcome::Ok, 1_480, Some(1_102), 0),
                attempt("10.0.0.6:443", 0, ConnectOutcome::Ok, 1_395, Some(1_090), 0),
            ],
        ),
        round(
            1_000,
            ok_dns(980),
            vec![
                attempt(
                    "10.0.0.5:443",
                    1_000,
                    ConnectOutcome::Ok,
                    1_001_530,
                    Some(1_000),
                    1,
                ),
                attempt(
                    "10.0.0.6:443",
                    1_000,
                    ConnectOutcome::Timeout,
                    3_000_210,
                    None,
                    2,
                ),
            ],
        ),
        round(
            2_000,
            DnsObservation {
                outcome: DnsOutcome::Servfail,
                duration_us: 2_250,
                addresses: 0,
            },
            vec![],
        ),
        round(
            3_000,
            ok_dns(1_050),
            vec![
                attempt(
                    "10.0.0.5:443",
                    3_000,
                    ConnectOutcome::Ok,
                    1_470,
                    Some(1_120),
                    0,
                ),
                attempt(
                    "10.0.0.6:443",
                    3_000,
                    ConnectOutcome::Refused,
                    1_160,
                    None,
                    0,
                ),
            ],
        ),
        round(
            4_000,
            ok_dns(1_020),
            vec![
                attempt(
                    "10.0.0.5:443",
                    4_000,
                    ConnectOutcome::Ok,
                    1_450,
                    Some(1_110),
                    0,
                ),
                attempt(
                    "10.0.0.6:443",
                    4_000,
                    ConnectOutcome::HostUnreachable,
                    890,
                    None,
                    0,
                ),
            ],
        ),
    ]
}

#[test]
fn text_output() {
    let rounds = rounds();
    let mut out = Vec::new();
    for r in &rounds {
        text::round(&mut out, r).unwrap();
    }
    text::summary(&mut out, &Summary::of("api.internal:443", &rounds)).unwrap();
    insta::assert_snapshot!(String::from_utf8(out).unwrap());
}

#[test]
fn json_output() {
    let rounds = rounds();
    let mut out = Vec::new();
    for r in &rounds {
        json::round(&mut out, r).unwrap();
    }
    json::summary(&mut out, &Summary::of("api.internal:443", &rounds)).unwrap();
    insta::assert_snapshot!(String::from_utf8(out).unwrap());
}

#[test]
fn summary_counts() {
    let s = Summary::of("api.internal:443", &rounds());
    assert_eq!((s.rounds, s.connects, s.ok, s.failed), (5, 8, 5, 3));
    assert!((s.loss_percent - 100.0 * 3.0 / 8.0).abs() < 1e-9);
    assert_eq!(s.syn_retransmits, 3);
    assert_eq!(s.attempts_with_retransmits, 2);
    assert_eq!(s.ok_after_retransmit, 1);
    let dns = s.dns.as_ref().unwrap();
    assert_eq!((dns.lookups, dns.ok), (5, 4));
    assert!(!s.all_ok());
    assert_eq!(s.addresses.len(), 2);
    assert_eq!((s.addresses[1].connects, s.addresses[1].ok), (4, 1));
}
