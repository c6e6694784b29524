//! The collector on loopback: batches in, exact counts out (store, read API,
//! /metrics), retries stored once, every refusal leaving the store as it
//! was, and kill -9 losing nothing acknowledged.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use vantage_collector::Collector;
use vantage_collector::config::Config;
use vantage_probe::outcome::{ConnectOutcome, DnsOutcome};
use vantage_probe::result::{ConnectAttempt, DnsObservation, Identity, RoundResult, Timestamp};
use vantage_probe::wire::{ACCEPT_POST_HEADER, Batch, RESULTS_PATH, SCHEMA_VERSION, binary};
use vantage_tests::{
    Proc, Scratch, bin, free_port, gzip, header_value, http, http_get, http_with_head,
    parse_exposition, promtool_check_metrics, value, wait_for_200,
};

pub(crate) const EAST: &str = "east-token-0123456789abcdef";
pub(crate) const WEST: &str = "west-token-0123456789abcdef";

pub(crate) fn config_text(listen: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "{listen}"
data_dir = "data"
[[tokens]]
token = "{EAST}"
src_region = "us-east-2"
[[tokens]]
token = "{WEST}"
src_region = "us-west-1"
probe_ids = ["w1"]
{extra}
"#
    )
}

async fn start(
    dir: &Scratch,
    extra: &str,
) -> (
    SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let path = dir.write(
        "collector.toml",
        &config_text("127.0.0.1:0".parse().unwrap(), extra),
    );
    let collector = Collector::bind(Config::load(&path).unwrap()).await.unwrap();
    let addr = collector.addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(collector.run(stop.clone()));
    wait_for_200(addr, "/-/ready", Duration::from_secs(5)).await;
    (addr, stop, task)
}

/// A round of `target` at `addr` with the given outcome, a second ago.
pub(crate) fn round(
    target: &str,
    port: u16,
    outcome: ConnectOutcome,
    dns: Option<DnsOutcome>,
) -> RoundResult {
    let at = Timestamp::from(SystemTime::now() - Duration::from_secs(1));
    let ok = outcome == ConnectOutcome::Ok;
    let dns_ok = dns.is_none_or(|d| d == DnsOutcome::Ok);
    RoundResult {
        target: target.into(),
        host: format!("{target}.internal").into(),
        port,
        labels: Arc::new(BTreeMap::from([(
            "provider".to_string(),
            "gcp".to_string(),
        )])),
        started_at: at,
        dns: dns.map(|outcome| DnsObservation {
            outcome,
            duration_us: 1_500,
            addresses: u32::from(outcome == DnsOutcome::Ok),
        }),
        attempts: if dns_ok {
            vec![ConnectAttempt {
                address: SocketAddr::from(([10, 1, 2, 3], port)),
                local: Some(SocketAddr::from(([10, 9, 0, 1], 40_000))),
                started_at: at,
                outcome,
                duration_us: if ok { 1_200 } else { 3_000_000 },
                rtt_us: ok.then_some(900),
                syn_retransmits: if ok { 0 } else { 2 },
                errno: (!ok).then_some(110),
                // A router's answer, as a probe records it.
                icmp_from: matches!(
                    outcome,
                    ConnectOutcome::HostUnreachable | ConnectOutcome::NetUnreachable
                )
                .then(|| std::net::IpAddr::from([10, 9, 0, 254])),
            }]
        } else {
            Vec::new()
        },
    }
}

pub(crate) fn batch(region: &str, probe: &str, seq: u64, results: Vec<RoundResult>) -> Batch {
    Batch {
        schema: SCHEMA_VERSION,
        probe: Identity {
            src_region: region.into(),
            zone: None,
            probe_id: probe.into(),
        },
        stream: "s1".into(),
        seq,
        sent_at: Timestamp::now(),
        results,
        last: false,
    }
}

pub(crate) async fn post(addr: SocketAddr, token: &str, b: &Batch) -> (u16, serde_json::Value) {
    let body = gzip(&serde_json::to_vec(b).unwrap());
    let (status, text) = post_gzipped(addr, token, &body)
        .await
        // A connection the collector dropped (it was killed) is status 0.
        .unwrap_or((0, String::new()));
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// Posts a gzipped body to the results endpoint as a probe does.
pub(crate) async fn post_gzipped(
    addr: SocketAddr,
    token: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let auth = format!("Bearer {token}");
    http(
        addr,
        "POST",
        RESULTS_PATH,
        &[
            ("Authorization", &auth),
            ("Content-Encoding", "gzip"),
            ("Content-Type", "application/json"),
        ],
        body,
    )
    .await
}

async fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let auth = format!("Bearer {EAST}");
    let (status, text) = http(addr, "GET", path, &[("Authorization", &auth)], &[])
        .await
        .unwrap();
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Connect attempts per (region, target) in the store, through the read API.
async fn stored_attempts(addr: SocketAddr) -> BTreeMap<(String, String), u64> {
    let rows = get_json(addr, "/api/v1/rollups").await;
    let mut out = BTreeMap::new();
    for r in rows.as_array().unwrap() {
        if !r["address"].is_null() {
            let key = (
                r["src_region"].as_str().unwrap().to_string(),
                r["target"].as_str().unwrap().to_string(),
            );
            *out.entry(key).or_default() += r["count"].as_u64().unwrap();
        }
    }
    out
}

/// The batches of the counting test: what each region sends.
fn traffic() -> Vec<(&'static str, Batch)> {
    let mut out = Vec::new();
    for seq in 0..5u64 {
        let mut east = Vec::new();
        for i in 0..20 {
            let outcome = if i % 10 == 0 {
                ConnectOutcome::Timeout
            } else {
                ConnectOutcome::Ok
            };
            east.push(round("api", 443, outcome, Some(DnsOutcome::Ok)));
            east.push(round("db", 5432, ConnectOutcome::Refused, None));
        }
        east.push(round(
            "gone",
            80,
            ConnectOutcome::Ok,
            Some(DnsOutcome::Nxdomain),
        ));
        out.push((EAST, batch("us-east-2", "e1", seq, east.clone())));
        out.push((EAST, batch("us-east-2", "e2", seq, east)));
        let west = (0..10)
            .map(|_| round("api", 443, ConnectOutcome::Ok, Some(DnsOutcome::Ok)))
            .collect();
        out.push((WEST, batch("us-west-1", "w1", seq, west)));
    }
    out
}

/// The binary encoding is the JSON one in fewer bytes: the same traffic
/// sent to one collector as JSON and to another as binary is stored alike,
/// row for row and failure for failure; every answer offers both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_traffic_sent_in_binary_is_stored_as_its_json_is() {
    let (dir_json, dir_binary) = (
        Scratch::new("collector-json"),
        Scratch::new("collector-binary"),
    );
    let (addr_json, stop_json, task_json) = start(&dir_json, "").await;
    let (addr_binary, stop_binary, task_binary) = start(&dir_binary, "").await;
    let (mut json_bytes, mut binary_bytes) = (0, 0);
    for (token, b) in traffic() {
        let json = gzip(&serde_json::to_vec(&b).unwrap());
        json_bytes += json.len();
        let (status, text) = post_gzipped(addr_json, token, &json).await.unwrap();
        assert_eq!(status, 200, "{text}");
        let body = gzip(&binary::encode(&b));
        binary_bytes += body.len();
        let auth = format!("Bearer {token}");
        let (status, text) = http(
            addr_binary,
            "POST",
            RESULTS_PATH,
            &[
                ("Authorization", &auth),
                ("Content-Encoding", "gzip"),
                ("Content-Type", binary::CONTENT_TYPE),
            ],
            &body,
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{text}");
        let ack: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(ack["stored"], b.results.len());
    }
    assert!(
        binary_bytes * 2 < json_bytes,
        "binary {binary_bytes} bytes, JSON {json_bytes}"
    );
    for path in [
        "/api/v1/rollups",
        "/api/v1/failures",
        "/api/v1/failures?src_region=us-west-1",
    ] {
        assert_eq!(
            get_json(addr_json, path).await,
            get_json(addr_binary, path).await,
            "{path}"
        );
    }
    let (_, metrics) = http_get(addr_binary, "/metrics").await.unwrap();
    let m = parse_exposition(&metrics);
    let bodies = |f: &str| {
        value(
            &m,
            "vantage_collector_bodies_decoded_total",
            &[("format", f)],
        )
    };
    assert_eq!((bodies("binary"), bodies("json")), (Some(15.0), None));
    // Every answer of the route lists both media types, refusals too.
    for auth in ["", "Bearer not-a-known-token"] {
        let (status, head, _) = http_with_head(
            addr_binary,
            "POST",
            RESULTS_PATH,
            &[("Authorization", auth)],
            b"{}",
        )
        .await
        .unwrap();
        assert_eq!(status, 401, "{head}");
        let offered = header_value(&head, ACCEPT_POST_HEADER).unwrap_or_default();
        assert!(offered.contains(binary::CONTENT_TYPE), "{head}");
        assert!(offered.contains("application/json"), "{head}");
    }
    for (stop, task) in [(stop_json, task_json), (stop_binary, task_binary)] {
        stop.cancel();
        task.await.unwrap().unwrap();
    }
}

/// Probes take their id from their pod's name, which can be 253
/// characters long (a Deployment's pod: name, ReplicaSet hash, suffix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_named_after_a_long_pod_reports() {
    let dir = Scratch::new("collector-long-id");
    let (addr, stop, task) = start(&dir, "").await;
    let pod = format!("{}-7d4b9c8f6d-x2k9p", "checkout".repeat(29));
    assert_eq!(pod.len(), 249);
    let b = batch(
        "us-east-2",
        &pod,
        1,
        vec![round("api", 443, ConnectOutcome::Ok, None)],
    );
    assert_eq!(post(addr, EAST, &b).await.0, 200);
    let probes = get_json(addr, "/api/v1/probes").await;
    assert_eq!(probes[0]["probe_id"], pod.as_str(), "{probes}");
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// An ICMP answer keeps who sent it: the failure record says where the
/// path broke, and a timeout (nobody answered) names no one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_answered_by_icmp_keeps_its_sender() {
    let dir = Scratch::new("collector-icmp");
    let (addr, stop, task) = start(&dir, "").await;
    let b = batch(
        "us-east-2",
        "e1",
        1,
        vec![
            round("api", 443, ConnectOutcome::HostUnreachable, None),
            round("db", 5432, ConnectOutcome::Timeout, None),
        ],
    );
    assert_eq!(post(addr, EAST, &b).await.0, 200);
    let failures = get_json(addr, "/api/v1/failures?src_region=us-east-2").await;
    let by = |outcome: &str| {
        failures
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {outcome} in {failures}"))["icmp_from"]
            .clone()
    };
    assert_eq!(by("host_unreachable"), "10.9.0.254");
    assert_eq!(by("timeout"), serde_json::Value::Null);
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_counted_exactly_in_store_api_and_metrics() {
    let dir = Scratch::new("collector-count");
    let (addr, stop, task) = start(&dir, "").await;
    for (token, b) in traffic() {
        let (status, ack) = post(addr, token, &b).await;
        assert_eq!(status, 200, "{ack}");
        assert_eq!(ack["stored"], b.results.len());
        assert_eq!(ack["duplicate"], false);
    }

    let stored = stored_attempts(addr).await;
    let key = |r: &str, t: &str| (r.to_string(), t.to_string());
    assert_eq!(stored[&key("us-east-2", "api")], 2 * 5 * 20);
    assert_eq!(stored[&key("us-east-2", "db")], 2 * 5 * 20);
    assert_eq!(stored[&key("us-west-1", "api")], 5 * 10);
    assert!(
        !stored.contains_key(&key("us-east-2", "gone")),
        "no address, no connect"
    );

    // Every failure is kept in detail: 2 timeouts per batch, 20 refusals,
    // one nxdomain; with its local port.
    let failures = get_json(addr, "/api/v1/failures?src_region=us-east-2").await;
    let failures = failures.as_array().unwrap();
    assert_eq!(failures.len(), 2 * 5 * (2 + 20 + 1));
    let timeouts: Vec<_> = failures
        .iter()
        .filter(|f| f["outcome"] == "timeout")
        .collect();
    assert_eq!(timeouts.len(), 2 * 5 * 2);
    assert_eq!(timeouts[0]["syn_retransmits"], 2);
    assert_eq!(timeouts[0]["local_port"], 40_000);
    assert_eq!(
        failures
            .iter()
            .filter(|f| f["outcome"] == "dns_nxdomain")
            .count(),
        10
    );

    let (status, body) = http_get(addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    promtool_check_metrics(&body);
    let s = parse_exposition(&body);
    let east_api = [("src_region", "us-east-2"), ("target", "api")];
    assert_eq!(
        value(&s, "vantage_connect_attempts_total", &east_api),
        Some(200.0)
    );
    assert_eq!(
        value(
            &s,
            "vantage_connect_failures_total",
            &[
                ("src_region", "us-east-2"),
                ("target", "api"),
                ("reason", "timeout")
            ]
        ),
        Some(20.0)
    );
    assert_eq!(
        value(&s, "vantage_connect_rtt_seconds_count", &east_api),
        Some(180.0)
    );
    assert_eq!(
        value(
            &s,
            "vantage_dns_lookups_total",
            &[
                ("src_region", "us-east-2"),
                ("target", "gone"),
                ("outcome", "nxdomain")
            ]
        ),
        Some(10.0)
    );
    assert_eq!(
        value(
            &s,
            "vantage_collector_batches_total",
            &[("result", "stored")]
        ),
        Some(15.0)
    );
    assert_eq!(
        value(&s, "vantage_collector_results_total", &[]),
        Some((2 * 5 * 41 + 50) as f64)
    );
    for probe in ["e1", "e2", "w1"] {
        assert_eq!(
            value(&s, "vantage_fleet_probe_silent", &[("probe_id", probe)]),
            Some(0.0)
        );
    }

    let probes = get_json(addr, "/api/v1/probes").await;
    let states: Vec<_> = probes
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["probe_id"].clone(), p["state"].clone()))
        .collect();
    assert_eq!(states.len(), 3);
    assert!(states.iter().all(|(_, s)| s == "reporting"), "{states:?}");

    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_batch_is_stored_once() {
    let dir = Scratch::new("collector-dup");
    let (addr, stop, task) = start(&dir, "").await;
    let b = batch(
        "us-east-2",
        "e1",
        7,
        vec![round("api", 443, ConnectOutcome::Ok, None); 5],
    );
    let (s1, a1) = post(addr, EAST, &b).await;
    let (s2, a2) = post(addr, EAST, &b).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(
        (a1["duplicate"].as_bool(), a2["duplicate"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(a2["stored"], 0);
    // The same sequence number in a new stream (a probe that lost its spool)
    // is new data, not a retry.
    let mut fresh = b.clone();
    fresh.stream = "s2".into();
    let (_, a3) = post(addr, EAST, &fresh).await;
    assert_eq!(a3["duplicate"], false);
    assert_eq!(
        stored_attempts(addr).await[&("us-east-2".into(), "api".into())],
        10
    );
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// (what, headers, body, expected status, expected reason)
type Case<'a> = (&'a str, Vec<(&'a str, String)>, Vec<u8>, u16, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_status_and_reason_and_changes_nothing() {
    let dir = Scratch::new("collector-refuse");
    let (addr, stop, task) = start(
        &dir,
        "[limits]\nmax_targets_per_probe = 3\nmax_body_bytes = 65536\nmax_batches_per_second = 2\n",
    )
    .await;
    let good = batch(
        "us-east-2",
        "e1",
        1,
        vec![round("api", 443, ConnectOutcome::Ok, None)],
    );
    assert_eq!(post(addr, EAST, &good).await.0, 200);
    let rollups_before = get_json(addr, "/api/v1/rollups").await;
    let failures_before = get_json(addr, "/api/v1/failures").await;

    let json = |b: &Batch| serde_json::to_vec(b).unwrap();
    let east = format!("Bearer {EAST}");
    let west = format!("Bearer {WEST}");
    let with = |f: &dyn Fn(&mut Batch)| {
        let mut b = batch(
            "us-east-2",
            "e1",
            100,
            vec![round("api", 443, ConnectOutcome::Ok, None)],
        );
        f(&mut b);
        b
    };
    let big_targets: Vec<_> = (0..5)
        .map(|i| round(&format!("t{i}"), 443, ConnectOutcome::Ok, None))
        .collect();
    let cases: Vec<Case<'_>> = vec![
        ("no token", vec![], json(&good), 401, "missing_token"),
        (
            "wrong token",
            vec![("Authorization", "Bearer not-a-known-token".into())],
            json(&good),
            401,
            "unknown_token",
        ),
        (
            "another region",
            vec![("Authorization", west.clone())],
            json(&with(&|_| {})),
            403,
            "wrong_region",
        ),
        (
            "a probe the token does not cover",
            vec![("Authorization", west.clone())],
            json(&with(&|b| {
                b.probe.src_region = "us-west-1".into();
                b.probe.probe_id = "w9".into();
            })),
            403,
            "wrong_probe",
        ),
        (
            "not json",
            vec![("Authorization", east.clone())],
            b"{ this is not json".to_vec(),
            400,
            "malformed",
        ),
        (
            "unknown schema",
            vec![("Authorization", east.clone())],
            json(&with(&|b| b.schema = 99)),
            400,
            "unknown_schema",
        ),
        (
            "too large",
            vec![("Authorization", east.clone())],
            vec![b' '; 70_000],
            413,
            "body_too_large",
        ),
        (
            "a gzip bomb",
            vec![
                ("Authorization", east.clone()),
                ("Content-Encoding", "gzip".into()),
            ],
            gzip(&vec![b' '; 65536 * 33]),
            413,
            "body_too_large",
        ),
        (
            "brotli",
            vec![
                ("Authorization", east.clone()),
                ("Content-Encoding", "br".into()),
            ],
            json(&good),
            415,
            "unsupported_encoding",
        ),
        (
            "a media type that is neither JSON nor binary",
            vec![
                ("Authorization", east.clone()),
                ("Content-Type", "application/x-protobuf".into()),
            ],
            json(&good),
            415,
            "unsupported_media_type",
        ),
        (
            "JSON sent as binary",
            vec![
                ("Authorization", east.clone()),
                ("Content-Type", binary::CONTENT_TYPE.into()),
            ],
            json(&with(&|_| {})),
            400,
            "malformed",
        ),
        (
            "a binary batch cut short",
            vec![
                ("Authorization", east.clone()),
                ("Content-Type", binary::CONTENT_TYPE.into()),
            ],
            {
                let b = binary::encode(&with(&|_| {}));
                b[..b.len() - 3].to_vec()
            },
            400,
            "malformed",
        ),
        (
            "a binary batch with a value out of range",
            vec![
                ("Authorization", east.clone()),
                ("Content-Type", binary::CONTENT_TYPE.into()),
            ],
            binary::encode(&with(&|b| b.probe.probe_id = "p".repeat(254))),
            422,
            "invalid_value",
        ),
        (
            "a probe id longer than any pod name",
            vec![("Authorization", east.clone())],
            json(&with(&|b| b.probe.probe_id = "p".repeat(254))),
            422,
            "invalid_value",
        ),
        (
            "a negative latency (a 2^64 wrap)",
            vec![("Authorization", east.clone())],
            json(&with(&|b| {
                b.results[0].attempts[0].duration_us = u64::MAX - 5
            })),
            422,
            "invalid_value",
        ),
        (
            "a timestamp a day ahead",
            vec![("Authorization", east.clone())],
            json(&with(&|b| {
                b.results[0].started_at =
                    Timestamp::from(SystemTime::now() + Duration::from_secs(86_400))
            })),
            422,
            "bad_timestamp",
        ),
        (
            "a timestamp a year old",
            vec![("Authorization", east.clone())],
            json(&with(&|b| {
                b.results[0].started_at =
                    Timestamp::from(SystemTime::now() - Duration::from_secs(365 * 86_400))
            })),
            422,
            "bad_timestamp",
        ),
        (
            "a label the collector sets itself (a duplicate label would poison the whole scrape)",
            vec![("Authorization", east.clone())],
            json(&with(&|b| {
                b.results[0].labels = Arc::new(BTreeMap::from([(
                    "src_region".to_string(),
                    "evil".to_string(),
                )]))
            })),
            422,
            "invalid_value",
        ),
        (
            "the histogram's bucket label",
            vec![("Authorization", east.clone())],
            json(&with(&|b| {
                b.results[0].labels =
                    Arc::new(BTreeMap::from([("le".to_string(), "evil".to_string())]))
            })),
            422,
            "invalid_value",
        ),
        (
            "a name Prometheus reserves",
            vec![("Authorization", east.clone())],
            json(&with(&|b| {
                b.results[0].labels = Arc::new(BTreeMap::from([(
                    "__meta_x".to_string(),
                    "evil".to_string(),
                )]))
            })),
            422,
            "invalid_value",
        ),
        (
            "too many distinct targets",
            vec![("Authorization", east.clone())],
            json(&with(&|b| b.results = big_targets.clone())),
            429,
            "too_many_targets",
        ),
    ];
    for (what, headers, body, status, reason) in cases {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (got, text) = http(addr, "POST", RESULTS_PATH, &h, &body).await.unwrap();
        assert_eq!(got, status, "{what}: {text}");
        let refusal: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: {text}"));
        assert_eq!(refusal["reason"], reason, "{what}: {text}");
        assert!(!refusal["message"].as_str().unwrap().is_empty(), "{what}");
    }
    // A burst past the per-probe rate (2/s) is refused with 429.
    let mut limited = 0;
    for seq in 200..206 {
        let b = batch(
            "us-east-2",
            "e1",
            seq,
            vec![round("api", 443, ConnectOutcome::Ok, None)],
        );
        let (status, _) = post(addr, EAST, &b).await;
        if status == 429 {
            limited += 1;
        } else {
            assert_eq!(status, 200);
        }
    }
    assert!(limited >= 3, "{limited} of 6 limited");
    let rollups_after = get_json(addr, "/api/v1/rollups").await;
    let stored_after: u64 = rollups_after
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    let stored_before: u64 = rollups_before
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        stored_after - stored_before,
        6 - limited,
        "only the admitted burst was added"
    );
    assert_eq!(get_json(addr, "/api/v1/failures").await, failures_before);

    let (_, metrics) = http_get(addr, "/metrics").await.unwrap();
    let s = parse_exposition(&metrics);
    assert_eq!(
        value(
            &s,
            "vantage_collector_refused_total",
            &[("reason", "bad_timestamp")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &s,
            "vantage_collector_refused_total",
            &[("reason", "missing_token")]
        ),
        Some(1.0)
    );
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_probe_is_its_own_state_and_survives_a_restart() {
    let dir = Scratch::new("collector-silent");
    let policy = "[probes]\nsilent_after = \"1s\"\nforget_after = \"1h\"\n";
    let (addr, stop, task) = start(&dir, policy).await;
    let b = batch(
        "us-east-2",
        "e1",
        1,
        vec![round("api", 443, ConnectOutcome::Ok, None)],
    );
    assert_eq!(post(addr, EAST, &b).await.0, 200);
    stop.cancel();
    task.await.unwrap().unwrap();

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (addr, stop, task) = start(&dir, policy).await;
    let probes = get_json(addr, "/api/v1/probes").await;
    assert_eq!(probes[0]["probe_id"], "e1");
    assert_eq!(probes[0]["state"], "silent");
    let (_, metrics) = http_get(addr, "/metrics").await.unwrap();
    let s = parse_exposition(&metrics);
    assert_eq!(
        value(&s, "vantage_fleet_probe_silent", &[("probe_id", "e1")]),
        Some(1.0)
    );
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_ingest_loses_nothing_acknowledged_and_doubles_nothing() {
    let dir = Scratch::new("collector-kill");
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let path = dir.write(
        "collector.toml",
        &config_text(addr, "[limits]\nmax_batches_per_second = 100000\n"),
    );
    let collector = || {
        let mut c = Command::new(bin("vantage-collector"));
        c.args(["serve", "--log-level", "warn", "--config"])
            .arg(&path);
        Proc::spawn(&mut c)
    };

    // Each batch: 10 attempts to "api". Send as fast as acknowledgements
    // come back, from two probes at once, and kill -9 mid-stream.
    let sent: Vec<Batch> = (0..400u64)
        .flat_map(|seq| {
            ["e1", "e2"].map(|p| {
                batch(
                    "us-east-2",
                    p,
                    seq,
                    vec![round("api", 443, ConnectOutcome::Ok, None); 10],
                )
            })
        })
        .collect();
    let p = collector();
    wait_for_200(addr, "/-/ready", Duration::from_secs(10)).await;
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut senders = Vec::new();
    for probe in ["e1", "e2"] {
        let mine: Vec<Batch> = sent
            .iter()
            .filter(|b| b.probe.probe_id == probe)
            .cloned()
            .collect();
        let acked = acked.clone();
        senders.push(tokio::spawn(async move {
            for b in mine {
                match post(addr, EAST, &b).await {
                    (200, ack) if ack["duplicate"] == false => acked
                        .lock()
                        .unwrap()
                        .push((b.probe.probe_id.clone(), b.seq)),
                    _ => break,
                }
            }
        }));
    }
    // Let a good part of the stream through, then kill without warning.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 150 {
        assert!(std::time::Instant::now() < deadline, "ingest stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = p.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );
    for s in senders {
        s.await.unwrap();
    }
    drop(p);
    let acked: Vec<(String, u64)> = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 150 && acked.len() < sent.len(),
        "{} acknowledged",
        acked.len()
    );

    // Restart on the same data: everything acknowledged is there, nothing
    // twice; at most the batches in flight at the kill were also stored.
    let p = collector();
    wait_for_200(addr, "/-/ready", Duration::from_secs(10)).await;
    let stored = stored_attempts(addr).await[&("us-east-2".into(), "api".into())];
    let acked_attempts = acked.len() as u64 * 10;
    assert!(
        stored >= acked_attempts,
        "lost acknowledged results: stored {stored} < acked {acked_attempts}"
    );
    assert!(
        stored <= acked_attempts + 2 * 10,
        "more stored ({stored}) than acknowledged plus in flight"
    );

    // The probes retry everything: the store ends with each batch exactly once.
    for b in &sent {
        assert_eq!(post(addr, EAST, b).await.0, 200);
    }
    assert_eq!(
        stored_attempts(addr).await[&("us-east-2".into(), "api".into())],
        sent.len() as u64 * 10
    );
    drop(p);
}

#[test]
fn the_example_config_validates() {
    let dir = Scratch::new("collector-example");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/collector.toml");
    let path = dir.write(
        "collector.toml",
        &std::fs::read_to_string(&example).unwrap(),
    );
    let fleet = example.with_file_name("fleet-targets.json");
    dir.write(
        "fleet-targets.json",
        &std::fs::read_to_string(fleet).unwrap(),
    );
    std::fs::create_dir_all(dir.path.join("tokens")).unwrap();
    dir.write("tokens/us-east-2", "0123456789abcdef0123456789abcdef\n");
    dir.write("tokens/us-west-1", "fedcba9876543210fedcba9876543210\n");
    let c = Config::load(&path).unwrap();
    assert_eq!(c.tokens.len(), 2);
    assert_eq!(c.inventory, [dir.path.join("fleet-targets.json")]);
    let out = Command::new(bin("vantage-collector"))
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let bad = dir.write(
        "bad.toml",
        "[server]\ndata_dir = \"d\"\n[[tokens]]\ntoken = \"short\"\nsrc_region = \"r\"\n",
    );
    let out = Command::new(bin("vantage-collector"))
        .arg("validate")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("bad.toml:3: tokens[0]: the token is 5 characters long")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_collector() {
    let dir = Scratch::new("collector-prometheus");
    let (addr, stop, task) = start(&dir, "").await;
    let b = batch(
        "us-east-2",
        "e1",
        1,
        vec![round("api", 443, ConnectOutcome::Ok, None); 3],
    );
    assert_eq!(post(addr, EAST, &b).await.0, 200);

    let prom_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let cfg = dir.write(
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: vantage-collector\n    static_configs:\n      - targets: ['{addr}']\n"
        ),
    );
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={prom_addr}"));
    let prom = Proc::spawn(&mut cmd);
    wait_for_200(prom_addr, "/-/ready", Duration::from_secs(30)).await;

    let query = |q: &'static str| async move {
        let (status, body) = http_get(prom_addr, &format!("/api/v1/query?query={q}"))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let up = query("up").await;
        let attempts = query("vantage_connect_attempts_total").await;
        if up.first().is_some_and(|r| r["value"][1] == "1") && !attempts.is_empty() {
            let series = &attempts[0];
            assert_eq!(series["metric"]["src_region"], "us-east-2");
            assert_eq!(series["metric"]["target"], "api");
            assert_eq!(series["metric"]["job"], "vantage-collector");
            assert_eq!(series["value"][1], "3");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus did not scrape the collector: up={up:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop(prom);
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_of_forgotten_probes_and_targets_leave_metrics() {
    let dir = Scratch::new("collector-forget");
    let (addr, stop, task) = start(
        &dir,
        "[probes]\nsilent_after = \"1s\"\nforget_after = \"2s\"\n",
    )
    .await;
    let old = Timestamp::from(SystemTime::now() - Duration::from_secs(120));
    let mut late = batch(
        "us-east-2",
        "e1",
        1,
        vec![round("api", 443, ConnectOutcome::Ok, None)],
    );
    late.results[0].started_at = old;
    late.results[0].attempts[0].started_at = old;
    assert_eq!(post(addr, EAST, &late).await.0, 200);
    let (_, body) = http_get(addr, "/metrics").await.unwrap();
    let s = parse_exposition(&body);
    assert_eq!(
        value(&s, "vantage_connect_attempts_total", &[("target", "api")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "vantage_fleet_probe_silent", &[("probe_id", "e1")]),
        Some(0.0)
    );
    // A result two minutes old on arrival is a backfill, and says so.
    assert_eq!(
        value(
            &s,
            "vantage_collector_result_delay_seconds_bucket",
            &[("le", "60")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &s,
            "vantage_collector_result_delay_seconds_bucket",
            &[("le", "300")]
        ),
        Some(1.0)
    );

    tokio::time::sleep(Duration::from_millis(2300)).await;
    let (_, body) = http_get(addr, "/metrics").await.unwrap();
    let s = parse_exposition(&body);
    assert_eq!(
        value(&s, "vantage_connect_attempts_total", &[("target", "api")]),
        None
    );
    assert_eq!(
        value(&s, "vantage_fleet_probe_silent", &[("probe_id", "e1")]),
        None
    );
    // Forgotten by /metrics, not by the store: the evidence stays.
    assert_eq!(
        get_json(addr, "/api/v1/probes").await[0]["state"],
        "forgotten"
    );
    assert_eq!(
        stored_attempts(addr).await[&("us-east-2".into(), "api".into())],
        1
    );
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// Whatever batch the collector accepts, its `/metrics` stays a valid
/// exposition: one batch must never be able to make Prometheus refuse the
/// whole scrape (a duplicate label, a bad name or escape), which would
/// blind every region's series and alerts at once. Generated label names
/// and values (the reserved names, `__` names, quotes, backslashes,
/// newlines, any Unicode) and target names, each posted as a batch; after
/// each, whatever the answer, promtool checks the scrape.
#[test]
fn whatever_the_collector_accepts_its_scrape_stays_valid() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config as Cases, TestRunner};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = Scratch::new("collector-scrape");
    let (addr, stop, task) = rt.block_on(start(&dir, "[limits]\nmax_batches_per_second = 1000\n"));
    let mut reserved: Vec<String> = vantage_probe::result::RESERVED_LABELS
        .iter()
        .map(|s| s.to_string())
        .collect();
    reserved.extend(["__name__", "__meta_x", "1x", "a-b", "", "provider"].map(String::from));
    // Every reserved name once for sure, then generated batches.
    for (i, name) in reserved.iter().enumerate() {
        let mut r = round(&format!("reserved{i}"), 443, ConnectOutcome::Ok, None);
        r.labels = Arc::new(BTreeMap::from([(name.clone(), "evil".to_string())]));
        let (status, _) = rt.block_on(post(
            addr,
            EAST,
            &batch("us-east-2", "e0", i as u64 + 1, vec![r]),
        ));
        assert!(status == 200 || status == 422, "{name}: {status}");
        let (_, body) = rt.block_on(http_get(addr, "/metrics")).unwrap();
        promtool_check_metrics(&body);
        parse_exposition(&body);
    }
    let name = prop_oneof![
        3 => proptest::sample::select(reserved),
        2 => "[a-z_][a-z0-9_]{0,10}",
        1 => "\\PC{0,6}",
        1 => ".{0,6}",
    ];
    let value = prop_oneof![
        "[a-z0-9.-]{1,8}",
        "\\PC{0,12}",
        ".{0,8}",
        Just("\"\\\n{}=,".to_string()),
    ];
    let target = prop_oneof!["[a-z]{1,8}", "\\PC{1,16}", Just("a\"b\\c".to_string())];
    let labels = proptest::collection::btree_map(name, value, 0..4);
    let mut runner = TestRunner::new(Cases {
        cases: 64,
        failure_persistence: None,
        ..Cases::default()
    });
    // Fn closures: the sequence and the count go through cells.
    let seq = std::cell::Cell::new(0u64);
    let accepted = std::cell::Cell::new(0u32);
    runner
        .run(&(labels, target), |(labels, target)| {
            seq.set(seq.get() + 1);
            let mut r = round(&target, 443, ConnectOutcome::Ok, None);
            r.labels = Arc::new(labels);
            let (status, answer) = rt.block_on(post(
                addr,
                EAST,
                &batch("us-east-2", "e1", seq.get(), vec![r]),
            ));
            prop_assert!(
                status == 200 || status == 422,
                "a generated batch is stored or refused as invalid: {status} {answer}"
            );
            accepted.set(accepted.get() + u32::from(status == 200));
            let (status, body) = rt.block_on(http_get(addr, "/metrics")).unwrap();
            prop_assert_eq!(status, 200);
            promtool_check_metrics(&body);
            // Unique, valid label names in every series: what a scrape needs.
            parse_exposition(&body);
            Ok(())
        })
        .unwrap();
    assert!(
        accepted.get() > 0,
        "some generated batches are stored, or the property says nothing"
    );
    stop.cancel();
    rt.block_on(task).unwrap().unwrap();
}

/// The same batch RFC 3339 timestamps with a +02:00 offset instead of Z.
fn with_offsets(b: &Batch) -> Vec<u8> {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    if let (true, serde_json::Value::String(t)) =
                        (k == "started_at" || k == "sent_at", &*v)
                    {
                        let at = humantime::parse_rfc3339(t).unwrap() + Duration::from_secs(7200);
                        let local = humantime::format_rfc3339_micros(at).to_string();
                        *v = serde_json::Value::String(local.replace('Z', "+02:00"));
                    } else {
                        walk(v);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(b).unwrap();
    walk(&mut v);
    serde_json::to_vec(&v).unwrap()
}

/// Header names, content codings and auth schemes are case-insensitive;
/// RFC 3339 times may carry an offset; a gzip body is all of its members
/// and nothing else; the probe's clock header is held to the batch's time
/// window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_as_the_rfcs_say() {
    let dir = Scratch::new("collector-rfc");
    let (addr, stop, task) = start(&dir, "[limits]\nmax_batches_per_second = 1000\n").await;
    let east = format!("Bearer {EAST}");
    let json = |seq: u64| {
        serde_json::to_vec(&batch(
            "us-east-2",
            "e1",
            seq,
            vec![round("api", 443, ConnectOutcome::Ok, None)],
        ))
        .unwrap()
    };
    let offsets = with_offsets(&batch(
        "us-east-2",
        "e1",
        4,
        vec![round("api", 443, ConnectOutcome::Ok, None)],
    ));
    assert!(String::from_utf8_lossy(&offsets).contains("+02:00"));
    let body = json(5);
    let (a, b) = body.split_at(body.len() / 2);
    let two_members = [gzip(a), gzip(b)].concat();
    let garbage = [gzip(&json(6)), b"not gzip".to_vec()].concat();
    let ten_years =
        humantime::format_rfc3339(SystemTime::now() + Duration::from_secs(10 * 365 * 86_400))
            .to_string();
    // (what, headers, body, expected status, expected reason of a refusal)
    type Sent<'a> = (
        &'a str,
        Vec<(&'a str, String)>,
        Vec<u8>,
        u16,
        Option<&'a str>,
    );
    let cases: Vec<Sent<'_>> = vec![
        (
            "Content-Encoding: GZIP",
            vec![
                ("Authorization", east.clone()),
                ("Content-Encoding", "GZIP".into()),
            ],
            gzip(&json(1)),
            200,
            None,
        ),
        (
            "a lowercase bearer",
            vec![("Authorization", format!("bearer {EAST}"))],
            json(2),
            200,
            None,
        ),
        (
            "an uppercase header name",
            vec![("AUTHORIZATION", east.clone())],
            json(3),
            200,
            None,
        ),
        (
            "times with an offset",
            vec![("Authorization", east.clone())],
            offsets,
            200,
            None,
        ),
        (
            "a gzip body of two members",
            vec![
                ("Authorization", east.clone()),
                ("Content-Encoding", "gzip".into()),
            ],
            two_members,
            200,
            None,
        ),
        (
            "a gzip body with garbage after it",
            vec![
                ("Authorization", east.clone()),
                ("Content-Encoding", "gzip".into()),
            ],
            garbage,
            400,
            Some("malformed"),
        ),
        (
            "a probe clock ten years ahead",
            vec![
                ("Authorization", east.clone()),
                ("x-vantage-sent-at", ten_years),
            ],
            json(7),
            422,
            Some("bad_timestamp"),
        ),
        (
            "a probe clock that is not a time",
            vec![
                ("Authorization", east.clone()),
                ("x-vantage-sent-at", "soon".into()),
            ],
            json(8),
            400,
            Some("malformed"),
        ),
    ];
    for (what, headers, body, status, reason) in cases {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (got, text) = http(addr, "POST", RESULTS_PATH, &h, &body).await.unwrap();
        assert_eq!(got, status, "{what}: {text}");
        if let Some(reason) = reason {
            let refusal: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(refusal["reason"], reason, "{what}: {text}");
        }
    }
    // Five batches stored, one result each, in the minutes their times name.
    let stored = stored_attempts(addr).await;
    assert_eq!(stored.values().sum::<u64>(), 5, "{stored:?}");
    let rollups = get_json(addr, "/api/v1/rollups").await;
    let minutes: std::collections::BTreeSet<&str> = rollups
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["minute"].as_str().unwrap())
        .collect();
    assert!(
        minutes.len() <= 2,
        "an offset does not move a result: {minutes:?}"
    );
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// What a caller without a token may see: the scrape and the health
/// endpoints (Prometheus and the kubelet carry no token). Every API
/// endpoint, reads included, answers 401 and says what to send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_only_the_scrape_and_health_answer() {
    let dir = Scratch::new("collector-open");
    let (addr, stop, task) = start(&dir, "").await;
    assert_eq!(
        post(
            addr,
            EAST,
            &batch(
                "us-east-2",
                "e1",
                1,
                vec![round("api", 443, ConnectOutcome::Ok, None)]
            )
        )
        .await
        .0,
        200
    );
    for path in ["/metrics", "/-/healthy", "/-/ready"] {
        let (status, _) = http_get(addr, path).await.unwrap();
        assert_eq!(status, 200, "{path} is open");
    }
    let closed = [
        ("GET", "/api/v1/probes"),
        ("GET", "/api/v1/findings"),
        ("GET", "/api/v1/incidents"),
        ("GET", "/api/v1/incidents/1"),
        ("GET", "/api/v1/reachability?target=api"),
        ("GET", "/api/v1/report?incident=1"),
        ("GET", "/api/v1/rollups"),
        ("GET", "/api/v1/failures"),
        ("GET", "/api/v1/alertmanager"),
        ("GET", "/api/v1/targets?src_region=us-east-2"),
        ("POST", "/api/v1/alertmanager"),
        ("POST", RESULTS_PATH),
    ];
    for (method, path) in closed {
        let (status, text) = http(addr, method, path, &[], b"{}").await.unwrap();
        assert_eq!(status, 401, "{method} {path}: {text}");
        let refusal: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(refusal["reason"], "missing_token", "{method} {path}");
        assert!(
            refusal["message"]
                .as_str()
                .unwrap()
                .contains("Authorization: Bearer"),
            "{method} {path}: says what to send"
        );
    }
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// `validate` loads the certificate and key the config names, as `serve`
/// will: a garbage pair is a config error naming the fields, not a passing
/// check followed by a server that will not start.
#[test]
fn validate_loads_the_tls_pair_it_names() {
    let dir = Scratch::new("collector-validate-tls");
    dir.write("cert.pem", "not a certificate\n");
    dir.write("key.pem", "not a key\n");
    let path = dir.write(
        "collector.toml",
        &format!(
            "{}\n",
            config_text("127.0.0.1:0".parse().unwrap(), "").replace(
                "[server]\n",
                "[server]\ntls_cert_file = \"cert.pem\"\ntls_key_file = \"key.pem\"\n"
            )
        ),
    );
    assert!(Config::load(&path).is_ok(), "the config itself is fine");
    let out = Command::new(bin("vantage-collector"))
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("server.tls_cert_file / tls_key_file") && stderr.contains("cert.pem"),
        "{stderr}"
    );
}

/// A probe is (region, id): with its own token, one region can name any
/// probe id, but never touch another region's probe of that id. Before,
/// the east token (which lists no probe ids, as the shipped example does)
/// could move west's `w1` into east and fill its distinct-target cap, so
/// that the real `w1` was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_can_only_touch_its_own_regions_probes() {
    let dir = Scratch::new("collector-identity");
    let (addr, stop, task) = start(
        &dir,
        "[limits]\nmax_targets_per_probe = 3\nmax_batches_per_second = 1000\n",
    )
    .await;
    let rounds = |names: &[&str]| -> Vec<RoundResult> {
        names
            .iter()
            .map(|n| round(n, 443, ConnectOutcome::Ok, None))
            .collect()
    };
    // East names its own probe "w1" and fills that probe's cap.
    let (status, _) = post(
        addr,
        EAST,
        &batch("us-east-2", "w1", 1, rounds(&["e-a", "e-b", "e-c"])),
    )
    .await;
    assert_eq!(status, 200);
    // West's real w1 is a probe of its own: its cap is its own.
    let (status, answer) = post(
        addr,
        WEST,
        &batch("us-west-1", "w1", 1, rounds(&["w-a", "w-b", "w-c"])),
    )
    .await;
    assert_eq!(status, 200, "west's w1 is not east's: {answer}");
    // And east's w1 is still capped at its own three.
    let (status, answer) = post(addr, EAST, &batch("us-east-2", "w1", 2, rounds(&["e-d"]))).await;
    assert_eq!(
        (status, answer["reason"].as_str()),
        (429, Some("too_many_targets"))
    );

    let probes = get_json(addr, "/api/v1/probes").await;
    let mut seen: Vec<(String, String)> = probes
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["src_region"].as_str().unwrap().to_string(),
                p["probe_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("us-east-2".to_string(), "w1".to_string()),
            ("us-west-1".to_string(), "w1".to_string())
        ],
        "two probes, each in its own region: {probes}"
    );
    let (_, body) = http_get(addr, "/metrics").await.unwrap();
    let s = parse_exposition(&body);
    for region in ["us-east-2", "us-west-1"] {
        assert_eq!(
            value(
                &s,
                "vantage_fleet_probe_silent",
                &[("src_region", region), ("probe_id", "w1")]
            ),
            Some(0.0),
            "{region}'s w1 on /metrics"
        );
    }
    // After a restart, from the store, the same.
    stop.cancel();
    task.await.unwrap().unwrap();
    let (addr, stop, task) = start(
        &dir,
        "[limits]\nmax_targets_per_probe = 3\nmax_batches_per_second = 1000\n",
    )
    .await;
    let (status, answer) = post(
        addr,
        WEST,
        &batch("us-west-1", "w1", 2, rounds(&["w-a", "w-b", "w-c"])),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        get_json(addr, "/api/v1/probes")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// One compatibility rule for a batch, at every level: a field the reader
/// does not know is ignored (a newer probe's batches are kept by an older
/// collector), an optional field a sender leaves out means what it meant
/// before (an older probe's batches are kept by a newer collector), and only
/// an unknown schema version is refused. Before, an unknown top-level field
/// was refused (400, which the probe takes as permanent: the batch set
/// aside) while one inside a result was ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_from_a_newer_or_an_older_probe_is_kept() {
    let dir = Scratch::new("collector-compat");
    let (addr, stop, task) = start(&dir, "[limits]\nmax_batches_per_second = 1000\n").await;
    let east = format!("Bearer {EAST}");
    let h = [("Authorization", east.as_str())];
    let mut newer = serde_json::to_value(batch(
        "us-east-2",
        "e1",
        1,
        vec![round("api", 443, ConnectOutcome::Timeout, None)],
    ))
    .unwrap();
    newer["sampling"] = serde_json::json!({"every": 2});
    newer["results"][0]["trace_id"] = "t-1".into();
    newer["results"][0]["attempts"][0]["ecn"] = true.into();
    newer["probe"]["build"] = "9.9.9".into();
    let (status, text) = http(
        addr,
        "POST",
        RESULTS_PATH,
        &h,
        &serde_json::to_vec(&newer).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "a newer probe's batch: {text}");

    let mut older = serde_json::to_value(batch(
        "us-east-2",
        "e1",
        2,
        vec![round("api", 443, ConnectOutcome::Timeout, None)],
    ))
    .unwrap();
    for optional in ["icmp_from", "local", "errno", "rtt_us"] {
        older["results"][0]["attempts"][0]
            .as_object_mut()
            .unwrap()
            .remove(optional);
    }
    older.as_object_mut().unwrap().remove("last");
    let (status, text) = http(
        addr,
        "POST",
        RESULTS_PATH,
        &h,
        &serde_json::to_vec(&older).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "an older probe's batch: {text}");
    let stored = stored_attempts(addr).await;
    assert_eq!(stored.values().sum::<u64>(), 2, "{stored:?}");

    let mut future = serde_json::to_value(batch("us-east-2", "e1", 3, vec![])).unwrap();
    future["schema"] = (SCHEMA_VERSION + 1).into();
    let (status, text) = http(
        addr,
        "POST",
        RESULTS_PATH,
        &h,
        &serde_json::to_vec(&future).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(status, 400, "a schema it does not read: {text}");
    assert!(text.contains("unknown_schema"), "{text}");
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// A region's series are bounded by `max_series_per_region` and by its
/// share of `max_series` (the total over the regions the tokens name), each
/// refused 429 with a reason that says which and a Retry-After; nothing of
/// a refused batch is kept, and the other region's share is untouched.
/// Before, a token could add probe ids and target names without end: each
/// new probe had a cap of its own and `/metrics` grew with every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regions_series_are_bounded_and_the_refusal_says_which() {
    use vantage_probe::stats::MAX_SERIES_PER_TARGET;
    // One probe (5 series) with two targets.
    let room = 5 + 2 * MAX_SERIES_PER_TARGET;
    let rounds = |names: &[&str]| -> Vec<RoundResult> {
        names
            .iter()
            .map(|n| round(n, 443, ConnectOutcome::Ok, None))
            .collect()
    };
    let cases = [
        (
            format!("max_series_per_region = {room}\nmax_series = 100000\n"),
            "too_many_series_region",
            "limits.max_series_per_region",
        ),
        // Two regions share the total: each gets `room`.
        (
            format!(
                "max_series_per_region = {}\nmax_series = {}\n",
                2 * room,
                2 * room
            ),
            "too_many_series_fleet",
            "limits.max_series",
        ),
    ];
    for (limits, reason, named) in cases {
        let dir = Scratch::new("collector-series");
        let (addr, stop, task) = start(
            &dir,
            &format!("[limits]\nmax_batches_per_second = 1000\n{limits}"),
        )
        .await;
        let first = batch("us-east-2", "e1", 1, rounds(&["a", "b"]));
        assert_eq!(post(addr, EAST, &first).await.0, 200, "{reason}");
        // What it has costs nothing more.
        let again = batch("us-east-2", "e1", 2, rounds(&["b", "a"]));
        assert_eq!(post(addr, EAST, &again).await.0, 200, "{reason}");
        // A third target, or a second probe, is past the bound.
        for over in [
            batch("us-east-2", "e1", 3, rounds(&["c"])),
            batch("us-east-2", "e2", 1, rounds(&["a"])),
        ] {
            let body = gzip(&serde_json::to_vec(&over).unwrap());
            let auth = format!("Bearer {EAST}");
            let (status, head, text) = vantage_tests::http_with_head(
                addr,
                "POST",
                RESULTS_PATH,
                &[("Authorization", &auth), ("Content-Encoding", "gzip")],
                &body,
            )
            .await
            .unwrap();
            let refusal: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                (status, refusal["reason"].as_str()),
                (429, Some(reason)),
                "{text}"
            );
            assert!(
                refusal["message"].as_str().unwrap().contains(named),
                "{text}"
            );
            assert_eq!(
                vantage_tests::header_value(&head, "retry-after"),
                Some("60"),
                "{head}"
            );
        }
        // West's share is its own.
        let west = batch("us-west-1", "w1", 1, rounds(&["a", "b"]));
        assert_eq!(post(addr, WEST, &west).await.0, 200, "{reason}");

        // Nothing of the refused batches was kept: no e2, no target c.
        let probes = get_json(addr, "/api/v1/probes").await;
        let ids: Vec<&str> = probes
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["probe_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["e1", "w1"], "{reason}");
        assert!(!stored_attempts(addr).await.keys().any(|(_, t)| t == "c"));
        let (_, metrics) = http_get(addr, "/metrics").await.unwrap();
        assert_eq!(
            value(
                &parse_exposition(&metrics),
                "vantage_collector_refused_total",
                &[("reason", reason)]
            ),
            Some(2.0)
        );
        stop.cancel();
        task.await.unwrap().unwrap();
    }
}

/// `report --collector` reads at most 64 MiB of an answer: a server (or
/// anything answering in a collector's place) that sends without end is
/// refused with a clear error, and the report's memory stays bounded.
/// Before, the whole answer was read into memory, however long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_reads_a_bounded_answer_from_a_collector() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // One connection: a 200 with no length, then JSON whitespace until the
    // client goes away or 256 MiB were sent (bounded either way).
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = [0u8; 4096];
        let _ = s.read(&mut head).await.unwrap();
        s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let chunk = vec![b' '; 1 << 20];
        let mut sent = 0usize;
        while sent < 256 << 20 {
            if s.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let url = format!("http://{addr}");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin("vantage-collector"))
            .args([
                "report",
                "--collector",
                &url,
                "--token",
                EAST,
                "--incident",
                "1",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("over 67108864 bytes"), "{stderr}");
    let sent = server.await.unwrap();
    assert!(
        sent < 256 << 20,
        "the report stopped reading: {sent} bytes sent"
    );
}
