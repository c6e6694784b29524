//! Reports from a store filled through the real ingest path and judged by
//! the real evidence pipeline at a fixed moment: the same data gives the
//! same bytes, and each format is pinned by a snapshot.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vantage_probe::outcome::ConnectOutcome;
use vantage_probe::result::{ConnectAttempt, Identity, RoundResult, Timestamp};
use vantage_probe::wire::{Batch, SCHEMA_VERSION};

use super::*;
use crate::config::Retention;
use crate::evidence::incidents::Tracker;
use crate::evidence::{Params, assess};
use crate::store::Store;

/// 2026-01-10T23:00:00Z.
const START: u64 = 1_768_086_000;
const REGIONS: [&str; 3] = ["onprem", "us-east-2", "us-west-1"];
const TARGETS: [(&str, &str, [u8; 4]); 3] = [
    ("api", "gcp", [10, 1, 0, 1]),
    ("db", "gcp", [10, 1, 0, 2]),
    ("web", "aws", [10, 2, 0, 1]),
];

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(START + secs)
}

/// 20 minutes of one round a second per target; from minute 8 on, every
/// fifth connect from us-east-2 to gcp times out after 3 SYN retransmits.
fn rounds(region: &str, second: u64) -> Vec<RoundResult> {
    TARGETS
        .iter()
        .enumerate()
        .map(|(i, (name, provider, ip))| {
            let fails = region == "us-east-2"
                && *provider == "gcp"
                && second >= 480
                && second.is_multiple_of(5);
            let at = Timestamp::from(t(second) + Duration::from_millis(100 * i as u64));
            let rtt = 800
                + 400 * i as u32
                + (second % 7) as u32 * 50
                + if region == "onprem" { 9_000 } else { 0 };
            RoundResult {
                target: (*name).into(),
                host: format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3]).into(),
                port: 443,
                labels: Arc::new(BTreeMap::from([(
                    "provider".to_string(),
                    provider.to_string(),
                )])),
                started_at: at,
                dns: None,
                attempts: vec![ConnectAttempt {
                    address: SocketAddr::from((*ip, 443)),
                    local: Some(SocketAddr::from((
                        [10, 9, 0, 1],
                        40_000 + (second % 1000) as u16,
                    ))),
                    started_at: at,
                    outcome: if fails {
                        ConnectOutcome::Timeout
                    } else {
                        ConnectOutcome::Ok
                    },
                    duration_us: if fails {
                        5_000_000
                    } else {
                        u64::from(rtt) + 40
                    },
                    rtt_us: (!fails).then_some(rtt),
                    syn_retransmits: if fails { 3 } else { 0 },
                    errno: fails.then_some(110),
                    icmp_from: None,
                }],
            }
        })
        .collect()
}

/// A store that keeps everything: the fixtures are in the past.
fn open_store(dir: &std::path::Path) -> Store {
    Store::open(
        dir,
        Retention {
            rollups: Duration::from_secs(3650 * 86_400),
            failures: Duration::from_secs(3650 * 86_400),
            receipts: Duration::from_secs(3650 * 86_400),
        },
    )
    .unwrap()
}

/// Submits `region`'s rounds of each of `seconds` through the real ingest
/// path, `per_batch` seconds a batch.
async fn submit(
    store: &Store,
    region: &str,
    seconds: &[u64],
    per_batch: usize,
    rounds: impl Fn(u64) -> Vec<RoundResult>,
) {
    for (seq, chunk) in seconds.chunks(per_batch).enumerate() {
        let last = t(chunk[chunk.len() - 1]);
        let batch = Batch {
            schema: SCHEMA_VERSION,
            probe: Identity {
                src_region: region.into(),
                zone: None,
                probe_id: format!("{region}-1"),
            },
            stream: "s".into(),
            seq: seq as u64 + 1,
            sent_at: Timestamp::from(last),
            results: chunk.iter().flat_map(|s| rounds(*s)).collect(),
            last: false,
        };
        store.submit(batch, last, last).await.unwrap();
    }
}

/// Judges the store at each of `times` and writes the incidents' changes,
/// as the evaluation loop does.
async fn judge(store: &Store, times: &[SystemTime]) {
    let mut tracker = Tracker::new(Vec::new(), 0, Duration::from_secs(180));
    for &at in times {
        let a = assess(store, &[], at, Params::default(), &tracker.held()).unwrap();
        let changes = tracker.evaluate(&a.findings, a.at_us);
        crate::evidence::incidents::write(store, &changes)
            .await
            .unwrap();
        tracker.apply(&changes);
    }
}

async fn fleet_store(dir: &std::path::Path) -> Store {
    let store = open_store(dir);
    store.set_fleet_name("production".into()).await.unwrap();
    let seconds: Vec<u64> = (0..1200).collect();
    for region in REGIONS {
        submit(&store, region, &seconds, 60, |s| rounds(region, s)).await;
    }
    // Judge twice at minute 12 (the fault is on; its scope settles), then
    // at minute 40 (long over).
    judge(&store, &[t(710), t(720), t(2400)]).await;
    store
}

fn render(report: &Report) -> [String; 4] {
    let mut md = Vec::new();
    markdown::render(report, &mut md).unwrap();
    let mut txt = Vec::new();
    text::render(report, &mut txt).unwrap();
    let mut chart = Vec::new();
    svg::render(report, &mut chart).unwrap();
    [
        String::from_utf8(md).unwrap(),
        String::from_utf8(txt).unwrap(),
        serde_json::to_string_pretty(report).unwrap(),
        String::from_utf8(chart).unwrap(),
    ]
}

/// Every field path the JSON form has is a row of REPORT.md.
fn assert_documented(v: &serde_json::Value) {
    fn walk(v: &serde_json::Value, path: String, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    out.push(p.clone());
                    walk(v, p, out);
                }
            }
            serde_json::Value::Array(a) => {
                for v in a {
                    if v.is_object() {
                        walk(v, format!("{path}[]"), out);
                    }
                }
            }
            _ => {}
        }
    }
    let doc = include_str!("../../REPORT.md");
    let mut paths = Vec::new();
    walk(v, String::new(), &mut paths);
    for p in paths {
        assert!(
            doc.contains(&format!("`{p}`")),
            "REPORT.md does not document `{p}`"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_003_incident_reports_the_same_bytes_every_time() {
    let dir = std::env::temp_dir().join(format!("vantage-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = fleet_store(&dir).await;
    let req = Request {
        incident: Some(1),
        ..Request::default()
    };
    let report = store.read(|c| build(c, &req, "/var/lib/vantage")).unwrap();
    let incident = report.incident.as_ref().expect("incident 1 exists");
    assert_eq!(incident.scope, "path");
    assert_eq!(incident.src_regions, ["us-east-2"]);
    assert_eq!(incident.state, "resolved");
    assert_eq!(report.healthy_alternatives, ["onprem", "us-west-1"]);

    let again = store.read(|c| build(c, &req, "/var/lib/vantage")).unwrap();
    let [md, txt, json, chart] = render(&report);
    assert_eq!(
        render(&again),
        [md.clone(), txt.clone(), json.clone(), chart.clone()]
    );
    let parsed: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed, report, "the JSON form reads back");
    assert_documented(&serde_json::from_str(&json).unwrap());
    insta::assert_snapshot!("incident_markdown", md);
    insta::assert_snapshot!("incident_text", txt);
    insta::assert_snapshot!("incident_svg", chart);
    // Also the report fuzz target's seed (tests/fuzz/seed).
    insta::assert_snapshot!("incident_json", json);

    let window = Request {
        from: Some(t(0).into()),
        to: Some(t(1200).into()),
        ..Request::default()
    };
    let report = store
        .read(|c| build(c, &window, "/var/lib/vantage"))
        .unwrap();
    let [md, ..] = render(&report);
    insta::assert_snapshot!("window_markdown", md);

    let missing = Request {
        incident: Some(9),
        ..Request::default()
    };
    let err = store.read(|c| build(c, &missing, "x")).unwrap_err();
    assert_eq!(err.to_string(), "no incident 9");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A window of whole hours reads the hours' rows of each region and
/// group; one that holds no whole hour reads their minutes; a target's
/// series are read by name. Over the same data all three say the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_of_hours_reads_what_its_minutes_say() {
    let dir = std::env::temp_dir().join(format!("vantage-report-hours-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = fleet_store(&dir).await;
    let report = |from: SystemTime, to: SystemTime, target: Option<&str>| {
        let req = Request {
            from: Some(from.into()),
            to: Some(to.into()),
            target: target.map(str::to_string),
            ..Request::default()
        };
        store.read(|c| build(c, &req, "x")).unwrap()
    };
    let hour = Duration::from_secs(3600);
    // 22:00 to 01:00: the hours 22, 23 and 00, whole. 22:59 to 23:59: none.
    let hours = report(t(0) - hour, t(0) + 2 * hour, None);
    let minutes = report(t(0) - Duration::from_secs(60), t(3540), None);
    assert_eq!(hours.matrix.len(), 6, "{:?}", hours.matrix);
    assert_eq!(hours.matrix, minutes.matrix);
    assert_eq!(hours.series, minutes.series);
    assert_eq!(
        (&hours.regions, &hours.groups),
        (&minutes.regions, &minutes.groups)
    );
    let east = hours
        .matrix
        .iter()
        .find(|c| c.src_region == "us-east-2" && c.group == "gcp")
        .unwrap();
    // 1,200 seconds, two gcp targets; every fifth second from 480 fails.
    assert_eq!((east.attempts, east.failures), (2400, 2 * 144));

    let api = report(t(0) - hour, t(0) + 2 * hour, Some("api"));
    assert_eq!(api.matrix, hours.matrix, "the matrix is the fleet's");
    let east_api = api
        .series
        .iter()
        .find(|s| s.src_region == "us-east-2")
        .unwrap();
    assert_eq!(east_api.minutes.len(), 20);
    assert_eq!(
        east_api
            .minutes
            .iter()
            .fold((0, 0), |(a, f), m| (a + m.attempts, f + m.failures)),
        (1200, 144),
        "the series are api's alone"
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Who answered with ICMP: grouped by sender and answer, the most answers
/// first, only for the region and targets asked about; a timeout names no
/// one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icmp_senders_say_where_the_path_broke() {
    let dir = std::env::temp_dir().join(format!("vantage-report-icmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = open_store(&dir);
    let round = |target: &str, ip: [u8; 4], second: u64, outcome, from: Option<&str>| {
        let at = Timestamp::from(t(second));
        let ok = outcome == ConnectOutcome::Ok;
        RoundResult {
            target: target.into(),
            host: target.into(),
            port: 443,
            labels: Arc::default(),
            started_at: at,
            dns: None,
            attempts: vec![ConnectAttempt {
                address: SocketAddr::from((ip, 443)),
                local: None,
                started_at: at,
                outcome,
                duration_us: 900,
                rtt_us: ok.then_some(800),
                syn_retransmits: 0,
                errno: None,
                icmp_from: from.map(|f| f.parse().unwrap()),
            }],
        }
    };
    let (api, db) = ([10, 1, 0, 1], [10, 1, 0, 2]);
    let (router, edge) = (Some("10.1.255.1"), Some("10.1.255.2"));
    use ConnectOutcome::{HostUnreachable as Host, NetUnreachable as Net, Ok as Up, Timeout};
    let mut traffic = [
        (
            "us-east-2",
            vec![
                round("api", api, 1, Host, router),
                round("api", api, 2, Host, router),
                round("api", api, 3, Host, router),
                round("api", api, 4, Net, edge),
                round("api", api, 5, Timeout, None),
                round("api", api, 6, Up, None),
                round("db", db, 7, Host, router),
            ],
        ),
        (
            "us-west-1",
            vec![
                // The target itself refusing (admin prohibited from the host).
                round("db", db, 8, Host, Some("10.1.0.2")),
                round("db", db, 9, Host, Some("10.1.0.2")),
                round("api", api, 10, Up, None),
            ],
        ),
    ];
    // One connect that succeeded a second late: its SYN was sent again.
    traffic[0].1[5].attempts[0].duration_us = 1_200_000;
    for (region, results) in traffic {
        let batch = Batch {
            schema: SCHEMA_VERSION,
            probe: Identity {
                src_region: region.into(),
                zone: None,
                probe_id: format!("{region}-1"),
            },
            stream: "s".into(),
            seq: 1,
            sent_at: Timestamp::from(t(10)),
            results,
            last: false,
        };
        store.submit(batch, t(10), t(10)).await.unwrap();
    }
    let report = |src_region: Option<&str>, target: Option<&str>| {
        let req = Request {
            from: Some(t(0).into()),
            to: Some(t(120).into()),
            src_region: src_region.map(String::from),
            target: target.map(String::from),
            ..Request::default()
        };
        store.read(|c| build(c, &req, "x")).unwrap()
    };
    let sender =
        |s: &str, outcome: &str, answers, regions: &[&str], targets: &[&str]| icmp::IcmpSender {
            sender: s.into(),
            outcome: outcome.into(),
            answers,
            src_regions: regions.iter().map(|r| r.to_string()).collect(),
            targets: targets.iter().map(|r| r.to_string()).collect(),
        };

    let all = report(None, None);
    assert_eq!(
        all.icmp_senders,
        [
            sender(
                "10.1.255.1",
                "host_unreachable",
                4,
                &["us-east-2"],
                &["api", "db"]
            ),
            sender("10.1.0.2", "host_unreachable", 2, &["us-west-1"], &["db"]),
            sender("10.1.255.2", "net_unreachable", 1, &["us-east-2"], &["api"]),
        ]
    );
    assert_eq!(
        report(Some("us-west-1"), None).icmp_senders,
        [sender(
            "10.1.0.2",
            "host_unreachable",
            2,
            &["us-west-1"],
            &["db"]
        )]
    );
    assert_eq!(
        report(None, Some("api")).icmp_senders,
        [
            sender(
                "10.1.255.1",
                "host_unreachable",
                3,
                &["us-east-2"],
                &["api"]
            ),
            sender("10.1.255.2", "net_unreachable", 1, &["us-east-2"], &["api"]),
        ]
    );

    let slow: Vec<(&str, &str, u64)> = all
        .matrix
        .iter()
        .map(|c| (c.src_region.as_str(), c.group.as_str(), c.slow_connects))
        .collect();
    assert_eq!(
        slow,
        [
            ("us-east-2", "api", 1),
            ("us-east-2", "db", 0),
            ("us-west-1", "api", 0),
            ("us-west-1", "db", 0)
        ]
    );
    let [md, txt, json, _] = render(&all);
    assert!(md.contains(" · 1 a second late |"), "{md}");
    assert!(
        md.contains("| 10.1.255.1 | host_unreachable | 4 | us-east-2 | api, db |"),
        "{md}"
    );
    assert!(
        txt.contains(
            "ICMP: 10.1.255.1 answered 4 SYNs with host_unreachable (us-east-2 -> api, db)"
        ),
        "{txt}"
    );
    assert_documented(&serde_json::from_str(&json).unwrap());
    let parsed: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed, all);
    // A report from a collector that predates the field still reads.
    let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
    old.as_object_mut().unwrap().remove("icmp_senders");
    let old: Report = serde_json::from_value(old).unwrap();
    assert!(old.icmp_senders.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A resolver answering SERVFAIL in one region: the incident is `dns`, and
/// its report shows lookups by outcome per region with the resolver's
/// answer times, before (not instead of the absence of) connect data; its
/// timeline speaks of lookups, not connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_incident_reports_its_lookups_not_connects() {
    use vantage_probe::outcome::DnsOutcome;
    use vantage_probe::result::DnsObservation;
    let dir = std::env::temp_dir().join(format!("vantage-report-dns-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = open_store(&dir);
    let round = |region: &str, second: u64| {
        let at = Timestamp::from(t(second));
        let servfail = region == "onprem" && second >= 480;
        RoundResult {
            target: "web".into(),
            host: "web.internal".into(),
            port: 443,
            labels: Arc::new(BTreeMap::from([(
                "provider".to_string(),
                "aws".to_string(),
            )])),
            started_at: at,
            dns: Some(DnsObservation {
                outcome: if servfail {
                    DnsOutcome::Servfail
                } else {
                    DnsOutcome::Ok
                },
                duration_us: if servfail { 2_500 } else { 400 },
                addresses: u32::from(!servfail),
            }),
            attempts: if servfail {
                Vec::new()
            } else {
                vec![ConnectAttempt {
                    address: SocketAddr::from(([10, 2, 0, 1], 443)),
                    local: None,
                    started_at: at,
                    outcome: ConnectOutcome::Ok,
                    duration_us: 900,
                    rtt_us: Some(800),
                    syn_retransmits: 0,
                    errno: None,
                    icmp_from: None,
                }]
            },
        }
    };
    let seconds: Vec<u64> = (0..900).step_by(2).collect();
    for region in REGIONS {
        submit(&store, region, &seconds, 30, |s| vec![round(region, s)]).await;
    }
    judge(&store, &[t(710), t(720)]).await;
    let req = Request {
        incident: Some(1),
        ..Request::default()
    };
    let report = store.read(|c| build(c, &req, "x")).unwrap();
    let incident = report.incident.as_ref().expect("incident 1 opened");
    assert_eq!(incident.scope, "dns", "{incident:?}");
    assert_eq!(incident.src_regions, ["onprem"]);

    let onprem = &report.lookups[0];
    assert_eq!(onprem.src_region, "onprem");
    assert!(
        onprem.failed > 0 && onprem.failed < onprem.lookups,
        "{onprem:?}"
    );
    assert_eq!(
        onprem.outcomes,
        [lookups::Answered {
            outcome: "servfail".into(),
            lookups: onprem.failed
        }]
    );
    assert!(
        onprem.answer_p95_ms.unwrap() > 1.0,
        "SERVFAIL answers took 2.5 ms: {onprem:?}"
    );
    for l in &report.lookups[1..] {
        assert_eq!(l.failed, 0, "{l:?}");
        assert!(l.answer_p50_ms.unwrap() < 1.0, "{l:?}");
    }

    let [md, txt, json, _] = render(&report);
    let (dns_at, connects_at) = (
        md.find("## DNS lookups").expect("a lookups section"),
        md.find("## Evidence").unwrap(),
    );
    assert!(dns_at < connects_at, "lookups lead:\n{md}");
    let row = format!("| onprem | {}/{} (", onprem.failed, onprem.lookups);
    assert!(md.contains(&row), "{md}");
    assert!(md.contains("failed: servfail"), "{md}");
    assert!(md.contains("onprem: lookups failing since ("), "{md}");
    assert!(!md.contains("connects failed since"), "{md}");
    assert!(
        txt.lines()
            .any(|l| l.starts_with("  onprem: lookups ") && l.contains("servfail")),
        "{txt}"
    );
    assert!(!txt.contains("  us-west-1: 0/"), "no connect lines: {txt}");
    assert_documented(&serde_json::from_str(&json).unwrap());

    // A window of every target (its only one, web) reads each region's
    // lookups from the groups' rows: what web's own series say, in whole
    // hours and in minutes alike.
    let lookups = |from: SystemTime, to: SystemTime, target: Option<&str>| {
        let req = Request {
            from: Some(from.into()),
            to: Some(to.into()),
            target: target.map(str::to_string),
            ..Request::default()
        };
        store.read(|c| build(c, &req, "x")).unwrap().lookups
    };
    let hour = Duration::from_secs(3600);
    let every = lookups(t(0) - hour, t(0) + hour, None);
    assert_eq!(every.len(), 3);
    assert_eq!(every, lookups(t(0) - hour, t(0) + hour, Some("web")));
    assert_eq!(
        every,
        lookups(t(0) - Duration::from_secs(60), t(3000), None)
    );
    assert_eq!(every[0].lookups, 450, "{every:?}");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
