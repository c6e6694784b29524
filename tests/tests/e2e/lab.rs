//! Scenario tests in the WAN lab: three regions, two providers, real probe
//! and collector processes in network namespaces, real faults in the core
//! router. Each scenario asserts the scope, the regions and targets, and
//! how long detection took.

use std::time::Duration;

use serde_json::Value;
use std::collections::HashMap;

use vantage_collector::{LATENCY_MIN_BASELINE, LATENCY_WINDOW_MINUTES};
use vantage_tests::lab::delay::Delay;
use vantage_tests::lab::{Answer, Fault, FaultRule, Lab, RESOLVER};
use vantage_tests::{Scratch, bin};

const REGIONS: [&str; 3] = ["us-east-2", "us-west-1", "onprem"];
const PORT: u16 = 9640;

fn token(region: &str) -> String {
    format!("lab-token-{region}-0123456789")
}

/// The lab's zone: `api.gcp.lab` has the three addresses of the gcp
/// backend, or answers SERVFAIL.
fn zone(servfail: bool) -> HashMap<String, Answer> {
    let answer = if servfail {
        Answer::ServFail
    } else {
        Answer::Addresses(
            (2..=4)
                .map(|h| std::net::IpAddr::from([10, 20, 0, h]))
                .collect(),
        )
    };
    HashMap::from([("api.gcp.lab".to_string(), answer)])
}

fn probe_config(lab: &Lab, region: &str) -> String {
    lab.dir
        .join(format!("probe-{region}.toml"))
        .display()
        .to_string()
}

/// The lab's three regions and two providers (two services each), with its
/// collector and probes started and reporting; the probes connect every
/// `interval` and give up after `timeout`.
fn started(scratch: &Scratch, interval: &str, timeout: &str) -> Lab {
    let mut lab = Lab::build(
        &scratch.path,
        &REGIONS,
        &[("gcp", &[8000, 8001]), ("aws", &[8000, 8001])],
    );
    start(&mut lab, interval, timeout);
    lab
}

/// Below the 1 s SYN retransmit: a lost SYN is a timeout, as for the
/// applications of seed 003.
const SEED_003_TIMEOUT: &str = "900ms";

/// Collector and probes for the lab, started and reporting.
fn start(lab: &mut Lab, interval: &str, timeout: &str) {
    let mut collector = format!(
        "[server]\nfleet = \"lab\"\nlisten = \"0.0.0.0:{PORT}\"\ndata_dir = \"data\"\n\
         [limits]\nmax_batches_per_second = 1000\n\
         [evidence]\nevaluate_every = \"1s\"\nresolve_after = \"10s\"\n\
         [probes]\nsilent_after = \"5s\"\n"
    );
    for r in REGIONS {
        collector.push_str(&format!(
            "[[tokens]]\ntoken = \"{}\"\nsrc_region = \"{r}\"\n",
            token(r)
        ));
    }
    let path = lab.dir.join("collector.toml");
    std::fs::write(&path, collector).unwrap();
    let core = lab.core.clone();
    lab.spawn(
        "collector",
        &core,
        &bin("vantage-collector"),
        &["serve", "--config", path.to_str().unwrap()],
    );

    for region in lab.regions.clone() {
        lab.dns(region.index, zone(false));
        let mut text = format!(
            "[probe]\nsrc_region = \"{}\"\nid = \"{}-lab\"\n[admin]\nlisten = \"127.0.0.1:9650\"\n\
             [collector]\nurl = \"http://10.10.{}.1:{PORT}\"\ntoken = \"{}\"\nspool_dir = \"spool-{}\"\nflush_interval = \"250ms\"\n\
             [defaults]\ninterval = \"{interval}\"\n\
             timeout = \"{timeout}\"\nfamilies = [\"ipv4\"]\n\
             [dns]\nservers = [\"{RESOLVER}\"]\ntimeout = \"300ms\"\n\
             # A name with three addresses, behind the lab's resolver.\n\
             [[targets]]\nname = \"api\"\nhost = \"api.gcp.lab\"\nport = 8000\ninterval = \"2s\"\n\
             labels = {{ provider = \"gcp\" }}\n",
            region.name,
            region.name,
            region.index,
            token(&region.name),
            region.name
        );
        for b in &lab.backends {
            for (k, port) in b.ports.iter().enumerate() {
                text.push_str(&format!(
                    "[[targets]]\nname = \"{}-svc{k}\"\nhost = \"{}\"\nport = {port}\nlabels = {{ provider = \"{}\" }}\n",
                    b.provider,
                    b.ip(),
                    b.provider
                ));
            }
        }
        let path = lab.dir.join(format!("probe-{}.toml", region.name));
        std::fs::write(&path, text).unwrap();
        lab.spawn(
            &format!("probe-{}", region.name),
            &region.ns,
            &bin("vantage-probe"),
            &["run", "--config", path.to_str().unwrap()],
        );
    }
    // Every region reports.
    lab.wait_for("every probe reporting", Duration::from_secs(30), || {
        let (status, body) = lab.http_get(PORT, "/api/v1/probes", &token(REGIONS[0]));
        let v: Value = serde_json::from_str(&body).ok()?;
        (status == 200
            && v.as_array()?
                .iter()
                .filter(|p| p["state"] == "reporting")
                .count()
                == 3)
            .then_some(())
    });
}

fn findings(lab: &Lab) -> Vec<Value> {
    let (status, body) = lab.http_get(PORT, "/api/v1/findings", &token(REGIONS[0]));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Waits for exactly one finding of `scope`, and no other; returns it and
/// how long it took.
fn one_finding(lab: &Lab, scope: &str, limit: Duration) -> (Value, Duration) {
    lab.wait_for(&format!("a {scope} finding"), limit, || {
        let f = findings(lab);
        (f.len() == 1 && f[0]["scope"] == scope).then(|| f[0].clone())
    })
}

/// Waits up to 90 s for every incident to resolve; says what is still
/// open, and why, if they do not.
fn wait_resolved(lab: &Lab, what: &str) -> Duration {
    let start = std::time::Instant::now();
    while !open_incidents(lab).is_empty() {
        if start.elapsed() > Duration::from_secs(90) {
            let (_, failures) =
                lab.http_get(PORT, "/api/v1/failures?limit=100000", &token(REGIONS[0]));
            let failures: Value = serde_json::from_str(&failures).unwrap_or_default();
            let recent: Vec<String> = failures
                .as_array()
                .into_iter()
                .flatten()
                .rev()
                .take(30)
                .map(|f| {
                    format!(
                        "{} {} {} {:?} {}",
                        f["at"], f["src_region"], f["target"], f["address"], f["outcome"]
                    )
                })
                .collect();
            panic!(
                "lab: {what} did not happen within 90 s; open: {:#?}\nfindings: {:#?}\nlatest failures:\n{}",
                open_incidents(lab),
                findings(lab),
                recent.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    start.elapsed()
}

/// Waits for an open incident of `scope`: a new fault's incident opens
/// once its scope is confirmed, an evaluation after its first finding.
fn wait_incident(lab: &Lab, scope: &str) {
    lab.wait_for(
        &format!("a {scope} incident"),
        Duration::from_secs(15),
        || {
            open_incidents(lab)
                .iter()
                .any(|i| i["finding"]["scope"] == scope)
                .then_some(())
        },
    );
}

fn open_incidents(lab: &Lab) -> Vec<Value> {
    let (_, body) = lab.http_get(PORT, "/api/v1/incidents", &token(REGIONS[0]));
    serde_json::from_str::<Value>(&body)
        .unwrap_or_default()
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["resolved_us"].is_null())
        .cloned()
        .collect()
}

/// One incident with its timeline.
fn incident(lab: &Lab, id: u64) -> Value {
    let (status, body) = lab.http_get(PORT, &format!("/api/v1/incidents/{id}"), &token(REGIONS[0]));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Every incident ever opened, oldest first.
fn every_incident(lab: &Lab) -> Vec<Value> {
    let (_, body) = lab.http_get(
        PORT,
        "/api/v1/incidents?since=2000-01-01T00:00:00Z",
        &token(REGIONS[0]),
    );
    let mut all: Vec<Value> = serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default();
    all.reverse();
    all
}

/// The first page of each incident names the scope it ends with, or says
/// its scope was still settling: what on-call acted on was not
/// contradicted later.
fn assert_first_pages_hold(lab: &Lab) {
    for i in every_incident(lab) {
        let id = i["id"].as_u64().unwrap();
        let scope = i["finding"]["scope"].as_str().unwrap();
        let view = incident(lab, id);
        let opened = view["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "opened")
            .map(|e| e["text"].as_str().unwrap().to_string())
            .unwrap_or_default();
        eprintln!("lab: incident {id} ({scope}) first page: {opened}");
        assert!(
            opened.starts_with(&format!("Opened, scope {scope}:"))
                || opened.contains("(still settling: "),
            "incident {id} ends as {scope} but its first page said: {opened}\n{view:#}"
        );
    }
}

#[test]
fn the_lab_places_path_target_source_address_dns_and_silent_faults_and_sees_them_resolve() {
    if !Lab::require() {
        return;
    }
    let scratch = Scratch::new("lab");
    let mut lab = started(&scratch, "1s", SEED_003_TIMEOUT);
    // A clean fleet has nothing to say.
    std::thread::sleep(Duration::from_secs(5));
    assert!(findings(&lab).is_empty(), "{:#?}", findings(&lab));

    // 1. Seed 003: 20% of SYNs from us-east-2 to every GCP backend lost.
    lab.add_fault(FaultRule {
        region: Some(0),
        backend: Some(0),
        port: None,
        fault: Fault::Loss(20),
        ..FaultRule::default()
    });
    // Two lost SYNs in a row on one service may be found first; within
    // minutes the finding covers the whole us-east-2 -> gcp path.
    let (f, took) = lab.wait_for(
        "a path finding for us-east-2 -> gcp",
        Duration::from_secs(180),
        || {
            let f = findings(&lab);
            (f.len() == 1
                && f[0]["scope"] == "path"
                && strings(&f[0]["targets"]) == ["api", "gcp-svc0", "gcp-svc1"])
            .then(|| f[0].clone())
        },
    );
    eprintln!(
        "lab: seed 003 path finding after {took:?}: {}",
        f["explanation"]
    );
    assert_eq!(strings(&f["src_regions"]), ["us-east-2"]);
    assert_eq!(f["target_group"], "gcp");
    assert_eq!(strings(&f["healthy_alternatives"]), ["onprem", "us-west-1"]);
    assert!(
        f["evidence"][0]["reasons"]["timeout"].as_u64() >= Some(2),
        "{f:#}"
    );
    wait_incident(&lab, "path");
    lab.clear_faults();
    wait_resolved(&lab, "the path incident to resolve");

    // 2. A backend service refuses everywhere: target-side, within two
    // rounds plus the flush and an evaluation.
    lab.add_fault(FaultRule {
        region: None,
        backend: Some(1),
        port: Some(8001),
        fault: Fault::Reject,
        ..FaultRule::default()
    });
    let (f, took) = one_finding(&lab, "target", Duration::from_secs(30));
    eprintln!("lab: target finding after {took:?}: {}", f["explanation"]);
    assert_eq!(strings(&f["targets"]), ["aws-svc1"]);
    assert!(
        took < Duration::from_secs(10),
        "hard fault found after {took:?}"
    );
    // The regions whose batches came a flush later join within seconds.
    let (f, _) = lab.wait_for(
        "every region in the target finding",
        Duration::from_secs(15),
        || {
            let f = findings(&lab);
            (f.len() == 1 && strings(&f[0]["src_regions"]).len() == 3).then(|| f[0].clone())
        },
    );
    assert_eq!(f["scope"], "target");
    assert_eq!(f["quorum"], "3 of 3 regions");
    assert!(
        f["evidence"][0]["reasons"]["refused"].as_u64() >= Some(2),
        "{f:#}"
    );
    wait_incident(&lab, "target");
    lab.clear_faults();
    wait_resolved(&lab, "the target incident to resolve");

    // 3. onprem's egress to every backend is blackholed (its path to the
    // collector still works): source-side, not the targets.
    lab.add_fault(FaultRule {
        region: Some(2),
        backend: None,
        port: None,
        fault: Fault::Blackhole,
        ..FaultRule::default()
    });
    let (f, took) = lab.wait_for(
        "a source finding for onprem",
        Duration::from_secs(60),
        || {
            let f = findings(&lab);
            let s: Vec<&Value> = f.iter().filter(|f| f["scope"] == "source").collect();
            let blamed_targets = f.iter().any(|f| f["scope"] == "target");
            (s.len() == 1 && !blamed_targets).then(|| s[0].clone())
        },
    );
    eprintln!("lab: source finding after {took:?}: {}", f["explanation"]);
    assert_eq!(strings(&f["src_regions"]), ["onprem"]);
    assert!(
        took < Duration::from_secs(15),
        "hard fault found after {took:?}"
    );
    // Targets whose rounds came later join within seconds; nothing is ever
    // blamed on the targets.
    let (f, _) = lab.wait_for(
        "every target in the source finding",
        Duration::from_secs(15),
        || {
            let f = findings(&lab);
            assert!(!f.iter().any(|f| f["scope"] == "target"), "{f:#?}");
            let s: Vec<&Value> = f.iter().filter(|f| f["scope"] == "source").collect();
            (s.len() == 1 && strings(&s[0]["targets"]).len() == 5).then(|| s[0].clone())
        },
    );
    assert_eq!(strings(&f["src_regions"]), ["onprem"]);
    assert_eq!(
        strings(&f["healthy_alternatives"]),
        ["us-east-2", "us-west-1"]
    );

    wait_incident(&lab, "source");
    lab.clear_faults();
    wait_resolved(&lab, "the source incident to resolve");

    // 5. One of the three addresses of api.gcp.lab is blackholed from
    // everywhere: an address finding, not the target, not a path, dated
    // from the blackhole (not from seed 003's timeouts to the same address
    // minutes before).
    let broke_at = unix_now();
    lab.add_fault(FaultRule {
        backend: Some(0),
        host: Some(4),
        fault: Fault::Blackhole,
        ..FaultRule::default()
    });
    let (f, took) = lab.wait_for("an address finding", Duration::from_secs(60), || {
        let f = findings(&lab);
        (f.len() == 1 && f[0]["scope"] == "address" && strings(&f[0]["src_regions"]).len() == 3)
            .then(|| f[0].clone())
    });
    eprintln!("lab: address finding after {took:?}: {}", f["explanation"]);
    assert_eq!(f["address"], "10.20.0.4:8000");
    let since_s = f["since_us"].as_i64().unwrap() / 1_000_000;
    assert!(
        since_s + 2 >= broke_at as i64,
        "the address fault dated {} s before it began: {f:#}",
        broke_at as i64 - since_s
    );
    assert_eq!(strings(&f["targets"]), ["api"]);
    wait_incident(&lab, "address");
    lab.clear_faults();
    wait_resolved(&lab, "the address incident to resolve");

    // 6. The us-west-1 probe is killed: a silent probe, and no outage.
    lab.kill("probe-us-west-1");
    let (f, took) = one_finding(&lab, "silent", Duration::from_secs(30));
    eprintln!("lab: silent finding after {took:?}: {}", f["explanation"]);
    assert_eq!(strings(&f["src_regions"]), ["us-west-1"]);
    assert_eq!(strings(&f["probe_ids"]), ["us-west-1-lab"]);
    // Over a few evaluations nothing else is opened.
    std::thread::sleep(Duration::from_secs(5));
    let scopes: Vec<String> = open_incidents(&lab)
        .iter()
        .map(|i| i["finding"]["scope"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        scopes,
        ["silent"],
        "a silent probe opens no outage: {:#?}",
        open_incidents(&lab)
    );
    let config = probe_config(&lab, "us-west-1");
    let ns = lab.regions[1].ns.clone();
    lab.spawn(
        "probe-us-west-1",
        &ns,
        &bin("vantage-probe"),
        &["run", "--config", &config],
    );
    wait_resolved(&lab, "the silent probe's incident to resolve");

    // 7. us-west-1's resolver answers SERVFAIL: a dns finding there only.
    lab.dns(1, zone(true));
    let (f, took) = one_finding(&lab, "dns", Duration::from_secs(60));
    eprintln!("lab: dns finding after {took:?}: {}", f["explanation"]);
    assert_eq!(strings(&f["src_regions"]), ["us-west-1"]);
    assert_eq!(strings(&f["targets"]), ["api"]);
    assert_eq!(strings(&f["healthy_alternatives"]), ["onprem", "us-east-2"]);
    assert!(
        f["evidence"][0]["reasons"]["dns_servfail"].as_u64() >= Some(2),
        "{f:#}"
    );
    // The finding becomes an incident before the resolver is fixed.
    lab.wait_for("a dns incident", Duration::from_secs(15), || {
        open_incidents(&lab)
            .iter()
            .any(|i| i["finding"]["scope"] == "dns")
            .then_some(())
    });
    lab.dns(1, zone(false));
    wait_resolved(&lab, "the dns incident to resolve");

    // 8. Every fault cleared: every incident resolves.
    lab.clear_faults();
    let took = wait_resolved(&lab, "every incident to resolve");
    eprintln!("lab: all incidents resolved {took:?} after the faults were cleared");
    let (_, body) = lab.http_get(
        PORT,
        "/api/v1/incidents?since=2000-01-01T00:00:00Z",
        &token(REGIONS[0]),
    );
    let all: Value = serde_json::from_str(&body).unwrap();
    let scopes: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["finding"]["scope"].as_str().unwrap())
        .collect();
    for want in ["path", "target", "source", "address", "dns", "silent"] {
        assert!(
            scopes.contains(&want),
            "no {want} incident in {scopes:?}: {all:#}"
        );
    }
    assert_first_pages_hold(&lab);
}

/// Faults in a run, as real ones come: a backend refuses everywhere, and
/// while it still does, onprem's egress is blackholed. Two faults, two
/// incidents, each opening with its own scope; the egress fault's onset is
/// its own, not the refusals' before it; the target incident does not say
/// onprem recovered while onprem's failures are the egress fault's. Then
/// the backend is fixed and the egress stays broken: the target incident
/// resolves, the source one does not.
#[test]
fn faults_in_a_run_open_their_own_incidents_with_their_own_scope_and_onset() {
    if !Lab::require() {
        return;
    }
    let scratch = Scratch::new("lab-run");
    let mut lab = started(&scratch, "1s", SEED_003_TIMEOUT);
    std::thread::sleep(Duration::from_secs(5));
    assert!(findings(&lab).is_empty(), "{:#?}", findings(&lab));

    let refusing = FaultRule {
        region: None,
        backend: Some(1),
        port: Some(8001),
        fault: Fault::Reject,
        ..FaultRule::default()
    };
    lab.add_fault(refusing.clone());
    let (target, took) = lab.wait_for("a target incident", Duration::from_secs(30), || {
        open_incidents(&lab)
            .into_iter()
            .find(|i| i["finding"]["scope"] == "target")
    });
    eprintln!("lab: target incident after {took:?}");
    let target_id = target["id"].as_u64().unwrap();
    // Every region joins it before the next fault.
    lab.wait_for(
        "every region in the target incident",
        Duration::from_secs(20),
        || {
            open_incidents(&lab)
                .into_iter()
                .find(|i| i["id"] == target_id && strings(&i["finding"]["src_regions"]).len() == 3)
        },
    );

    // While the backend still refuses, onprem's egress breaks.
    let blackhole = FaultRule {
        region: Some(2),
        backend: None,
        port: None,
        fault: Fault::Blackhole,
        ..FaultRule::default()
    };
    let broke_at = unix_now();
    lab.add_fault(blackhole.clone());
    let (source, took) = lab.wait_for(
        "a source incident for onprem",
        Duration::from_secs(60),
        || {
            open_incidents(&lab)
                .into_iter()
                .find(|i| i["finding"]["scope"] == "source")
        },
    );
    eprintln!(
        "lab: source incident after {took:?}: {}",
        source["finding"]["explanation"]
    );
    let source_id = source["id"].as_u64().unwrap();
    assert_ne!(source_id, target_id, "a second fault is a second incident");
    assert_eq!(strings(&source["finding"]["src_regions"]), ["onprem"]);
    // Its onset is the blackhole's, not the refusals' a minute before
    // (second granularity, and a round's timeout of slack).
    let since_s = source["finding"]["since_us"].as_i64().unwrap() / 1_000_000;
    assert!(
        since_s + 2 >= broke_at as i64,
        "the egress fault dated {since_s}, {} s before it began: {source:#}",
        broke_at as i64 - since_s
    );
    // A few evaluations on: both stand, each with its scope.
    std::thread::sleep(Duration::from_secs(5));
    let open = open_incidents(&lab);
    let scope_of = |id: u64| {
        open.iter()
            .find(|i| i["id"] == id)
            .map(|i| i["finding"]["scope"].as_str().unwrap().to_string())
    };
    assert_eq!(scope_of(target_id).as_deref(), Some("target"), "{open:#?}");
    assert_eq!(scope_of(source_id).as_deref(), Some("source"), "{open:#?}");
    let timeline = incident(&lab, target_id)["timeline"].clone();
    assert!(
        !timeline.as_array().unwrap().iter().any(|e| e["text"]
            .as_str()
            .unwrap()
            .contains("No longer failing from onprem")),
        "onprem still fails to the backend: {timeline:#}"
    );

    // The backend is fixed; the egress stays broken.
    lab.remove_fault(&refusing);
    lab.wait_for(
        "the target incident to resolve",
        Duration::from_secs(90),
        || (!open_incidents(&lab).iter().any(|i| i["id"] == target_id)).then_some(()),
    );
    let open = open_incidents(&lab);
    assert!(
        open.iter().any(|i| i["id"] == source_id),
        "the egress fault is still on: {open:#?}"
    );
    lab.clear_faults();
    wait_resolved(&lab, "every incident to resolve");
    assert_first_pages_hold(&lab);
    let scopes: Vec<String> = every_incident(&lab)
        .iter()
        .map(|i| i["finding"]["scope"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(scopes, ["target", "source"], "one incident per fault");
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Scenario 4, +40 ms on one path: a latency finding on exactly that path.
/// Beside it, seed 003 as most probes would meet it, with a connect timeout
/// above a second: 15% of the SYNs from onprem to gcp are lost, and nearly
/// every connect still succeeds, a second late. That is a loss finding on
/// exactly that path, its rate measured from every SYN sent, within two
/// minutes, on a fleet with only a minute of history (a new deployment).
///
/// A run of its own (beside the other scenarios): RTT baselines are whole
/// minutes older than the 5-minute window, so the delay waits for them.
#[test]
fn forty_ms_on_one_path_is_a_latency_finding_and_lost_syns_on_another_a_loss_finding() {
    if !Lab::require() {
        return;
    }
    let scratch = Scratch::new("lab-latency");
    // A timeout above the 1 s SYN retransmit, below the 2 s interval.
    let mut lab = started(&scratch, "2s", "1500ms");
    // The RTT baseline is the minutes before the latency window: the
    // partial minute now and whole ones, until they hold enough connects
    // per cell (30 a minute).
    let whole = (LATENCY_MIN_BASELINE * 2).div_ceil(60);
    let first_minute = unix_now() / 60 + 1;
    let ready_at = (first_minute + whole - 1 + LATENCY_WINDOW_MINUTES as u64) * 60 + 2;
    // A minute of clean history, then the loss.
    let lossy_at = unix_now() + 60;
    while unix_now() < lossy_at {
        assert!(findings(&lab).is_empty(), "{:#?}", findings(&lab));
        std::thread::sleep(Duration::from_secs(5));
    }
    // onprem -> gcp: 15% of SYNs dropped.
    const LOSS: f64 = 0.15;
    lab.add_fault(FaultRule {
        region: Some(2),
        backend: Some(0),
        fault: Fault::Loss((LOSS * 100.0) as u8),
        ..FaultRule::default()
    });
    let gcp = ["api", "gcp-svc0", "gcp-svc1"];
    let is_latency = |f: &Value| {
        f["signal"] == "latency"
            && strings(&f["src_regions"]) == ["us-west-1"]
            && strings(&f["targets"]) == ["aws-svc0", "aws-svc1"]
    };
    let is_loss = |f: &Value| {
        f["signal"] == "loss"
            && strings(&f["src_regions"]) == ["onprem"]
            && strings(&f["targets"]) == gcp
    };
    // Nothing but these two, while they build up (each may name some of
    // its targets before all of them); a SYN lost twice in a row (2% of
    // connects) is a timeout, so a failures finding on the lossy path may
    // join them.
    let within = |f: &Value, region: &str, targets: &[&str]| {
        strings(&f["src_regions"]) == [region]
            && strings(&f["targets"])
                .iter()
                .all(|t| targets.contains(&t.as_str()))
    };
    let expected = |f: &Value| {
        (f["signal"] == "latency" && within(f, "us-west-1", &["aws-svc0", "aws-svc1"]))
            || ((f["signal"] == "loss" || f["signal"] == "failures") && within(f, "onprem", &gcp))
    };

    // The loss first, as its first page reads.
    let (loss, loss_took) = lab.wait_for(
        "a loss finding for onprem -> gcp",
        Duration::from_secs(180),
        || {
            let f = findings(&lab);
            assert!(f.iter().all(expected), "{f:#?}");
            f.iter().find(|f| is_loss(f)).cloned()
        },
    );
    eprintln!(
        "lab: loss finding after {loss_took:?}: {}",
        loss["explanation"]
    );
    assert_eq!(loss["scope"], "path", "{loss:#}");
    assert_eq!(loss["target_group"], "gcp");
    assert_eq!(
        strings(&loss["healthy_alternatives"]),
        ["us-east-2", "us-west-1"]
    );
    // Measured against the lab's configured loss: every SYN counted, the
    // rate since the onset, its interval holding the truth.
    let rate = &loss["evidence"][0]["loss"];
    let (low, high) = (
        rate["low"].as_f64().unwrap(),
        rate["high"].as_f64().unwrap(),
    );
    eprintln!(
        "lab: {} of {} SYNs lost, 95% interval {low:.3}..{high:.3} (configured {LOSS})",
        rate["lost"], rate["sent"]
    );
    assert!((low..=high).contains(&LOSS), "{loss:#}");
    assert!(
        loss["explanation"]
            .as_str()
            .unwrap()
            .contains("of SYNs from onprem to gcp targets (api, gcp-svc0 and gcp-svc1) are lost"),
        "{loss:#}"
    );
    assert!(loss_took < Duration::from_secs(120), "{loss_took:?}");

    // Then the delay, once the RTT baseline is whole.
    eprintln!(
        "lab: waiting {} s for a clean RTT baseline",
        ready_at.saturating_sub(unix_now())
    );
    while unix_now() < ready_at {
        let f = findings(&lab);
        assert!(f.iter().all(expected), "{f:#?}");
        std::thread::sleep(Duration::from_secs(5));
    }
    // us-west-1 -> aws: 40 ms more on every packet toward the backends.
    lab.set_delay(
        1,
        1,
        Some(Delay {
            delay: Duration::from_millis(40),
            jitter: Duration::ZERO,
        }),
    );
    let (f, latency_took) = lab.wait_for(
        "a latency finding for us-west-1 -> aws",
        Duration::from_secs(300),
        || {
            let f = findings(&lab);
            assert!(f.iter().all(expected), "{f:#?}");
            f.iter().find(|f| is_latency(f)).cloned()
        },
    );
    eprintln!(
        "lab: latency finding after {latency_took:?}: {}",
        f["explanation"]
    );
    assert_eq!(f["scope"], "path", "{f:#}");
    assert_eq!(f["target_group"], "aws");
    assert_eq!(strings(&f["healthy_alternatives"]), ["onprem", "us-east-2"]);
    // The p95 is read from histogram buckets: well above the baseline,
    // not to the millisecond; the level since the onset is the new one.
    let rtt = &f["evidence"][0]["rtt"];
    let shift = rtt["recent_p95_ms"].as_f64().unwrap() - rtt["baseline_p95_ms"].as_f64().unwrap();
    assert!(shift >= 20.0, "{f:#}");
    assert!(rtt["since_p50_ms"].as_f64().unwrap() >= 30.0, "{f:#}");
    assert!(latency_took < Duration::from_secs(150), "{latency_took:?}");

    // Nothing flickers: both findings at every evaluation for a while.
    for _ in 0..6 {
        std::thread::sleep(Duration::from_secs(3));
        let after = findings(&lab);
        assert!(after.iter().all(expected), "{after:#?}");
        assert!(
            after.iter().any(is_latency) && after.iter().any(is_loss),
            "{after:#?}"
        );
    }
    lab.set_delay(1, 1, None);
    lab.clear_faults();
}

/// The loss figure of scenario 4 measured over repeated runs, each a new
/// lab and a new collector with a minute of history: 15% of onprem -> gcp
/// SYNs dropped, the first loss finding on that path within two minutes,
/// its interval holding 15%, in at least 19 of 20 runs. About an hour of
/// lab time, so not part of the suite:
/// `tests/run -p vantage-tests --test e2e -- --ignored lab::loss_over_runs --nocapture`
/// (`VANTAGE_LAB_RUNS` sets the count).
#[test]
#[ignore = "about an hour of lab time: a measurement, run by hand"]
fn loss_over_runs_is_found_within_two_minutes_with_its_interval_holding_the_truth() {
    if !Lab::require() {
        return;
    }
    const LOSS: f64 = 0.15;
    let runs: usize = std::env::var("VANTAGE_LAB_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut good = 0;
    for run in 1..=runs {
        let scratch = Scratch::new(&format!("lab-loss-{run}"));
        let mut lab = started(&scratch, "2s", "1500ms");
        std::thread::sleep(Duration::from_secs(60));
        lab.add_fault(FaultRule {
            region: Some(2),
            backend: Some(0),
            fault: Fault::Loss((LOSS * 100.0) as u8),
            ..FaultRule::default()
        });
        let started_at = std::time::Instant::now();
        let mut first = None;
        while started_at.elapsed() < Duration::from_secs(120) && first.is_none() {
            first = findings(&lab).into_iter().find(|f| {
                f["signal"] == "loss"
                    && f["scope"] == "path"
                    && strings(&f["src_regions"]) == ["onprem"]
                    && f["target_group"] == "gcp"
            });
            std::thread::sleep(Duration::from_millis(500));
        }
        let took = started_at.elapsed();
        match first {
            Some(f) => {
                let rate = &f["evidence"][0]["loss"];
                let (low, high) = (
                    rate["low"].as_f64().unwrap(),
                    rate["high"].as_f64().unwrap(),
                );
                let holds = low <= LOSS && LOSS <= high;
                good += usize::from(holds);
                eprintln!(
                    "lab: run {run}: found after {:.0} s, {} of {} SYNs lost, 95% interval {low:.3}..{high:.3}: {}",
                    took.as_secs_f64(),
                    rate["lost"],
                    rate["sent"],
                    if holds { "holds 0.15" } else { "MISSES 0.15" }
                );
            }
            None => eprintln!("lab: run {run}: no loss finding within 120 s"),
        }
        lab.clear_faults();
    }
    eprintln!(
        "lab: {good} of {runs} runs found the loss within 2 minutes with 0.15 in its interval"
    );
    assert!(
        good * 20 >= runs * 19,
        "{good} of {runs} runs, not 19 in 20"
    );
}
