//! Evidence from real probes on loopback: three regions push to a
//! collector; a refusing backend is found target-side, the reachability API
//! answers for it and for a backend that works, an incident opens with its
//! timeline and Prometheus series, resolves when the backend comes back,
//! and is still there after a restart.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vantage_collector::Collector;
use vantage_collector::config::Config as CollectorConfig;
use vantage_probe::config::{Config, Overrides};
use vantage_probe::{Accepting, Control, Refusing, Service};
use vantage_tests::{Scratch, free_port, http, wait_for_200};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const REGIONS: [&str; 3] = ["lab-a", "lab-b", "lab-c"];

fn token(region: &str) -> String {
    format!("evidence-{region}-0123456789")
}

async fn get(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {}", token("lab-a"));
    let (status, body) = http(addr, "GET", path, &[("Authorization", &auth)], &[])
        .await
        .unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

type Running = (
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
);

/// A collector config in `dir` listening on `addr`, with a token per
/// region, evaluating every `every` and resolving after `resolve_after`.
fn collector_config(
    dir: &Scratch,
    addr: SocketAddr,
    every: &str,
    resolve_after: &str,
) -> std::path::PathBuf {
    let mut text = format!(
        "[server]\nlisten = \"{addr}\"\ndata_dir = \"data\"\n[limits]\nmax_batches_per_second = 1000\n\
         [evidence]\nevaluate_every = \"{every}\"\nresolve_after = \"{resolve_after}\"\n"
    );
    for r in REGIONS {
        text.push_str(&format!(
            "[[tokens]]\ntoken = \"{}\"\nsrc_region = \"{r}\"\n",
            token(r)
        ));
    }
    dir.write("collector.toml", &text)
}

async fn start_collector(path: &std::path::Path, addr: SocketAddr) -> Running {
    let collector = Collector::bind(CollectorConfig::load(path).unwrap())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(collector.run(stop.clone()));
    wait_for_200(addr, "/-/ready", Duration::from_secs(5)).await;
    (stop, task)
}

async fn wait_for(
    addr: SocketAddr,
    path: &str,
    limit: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let (status, body) = get(addr, path).await;
        assert_eq!(status, 200, "{body}");
        if done(&body) {
            return body;
        }
        assert!(
            started.elapsed() < limit,
            "{path} after {limit:?}: {body:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

type Probes = Vec<(
    mpsc::Sender<Control>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)>;

/// One probe per region, pushing to the collector at `addr`, measuring a
/// `web` and a `db` port on loopback from its own source address.
async fn start_probes(dir: &Scratch, addr: SocketAddr, web: u16, db: u16) -> Probes {
    let mut probes = Vec::new();
    for (i, r) in REGIONS.iter().enumerate() {
        let source = format!("127.0.0.{}", 11 + i);
        let text = format!(
            r#"
[probe]
src_region = "{r}"
id = "{r}-1"
[admin]
listen = "127.0.0.1:0"
[collector]
url = "http://{addr}"
token = "{}"
spool_dir = "spool-{r}"
flush_interval = "100ms"
[defaults]
interval = "200ms"
timeout = "100ms"
[[targets]]
name = "web"
host = "127.0.0.1"
port = {}
source_address = "{source}"
labels = {{ provider = "lab" }}
[[targets]]
name = "db"
host = "127.0.0.1"
port = {}
source_address = "{source}"
labels = {{ provider = "lab" }}
"#,
            token(r),
            web,
            db
        );
        let path = dir.write(&format!("probe-{r}.toml"), &text);
        let config = Config::load(&path, &Overrides::default()).unwrap();
        let service = Service::with_config(path, Overrides::default(), config)
            .await
            .unwrap();
        let (control, rx) = mpsc::channel(1);
        probes.push((control, tokio::spawn(service.run(rx))));
    }

    probes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_backend_is_found_explained_reported_and_resolved() {
    let web = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let db = Refusing::bind(LO).unwrap();
    let dir = Scratch::new("evidence");
    let addr = SocketAddr::new(LO, free_port());
    let config = collector_config(&dir, addr, "1s", "2s");
    let (stop, task) = start_collector(&config, addr).await;

    let probes = start_probes(&dir, addr, web.addr.port(), db.addr.port()).await;

    // Hard faults: found within two rounds plus the flush, a few seconds.
    let started = Instant::now();
    let findings = loop {
        let (status, body) = get(addr, "/api/v1/findings").await;
        assert_eq!(status, 200, "{body}");
        if body.as_array().is_some_and(|a| !a.is_empty()) {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no finding in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Regions whose batches come a flush later join the finding.
    let findings_now = wait_for(addr, "/api/v1/findings", Duration::from_secs(10), |b| {
        b.as_array().is_some_and(|a| {
            a.len() == 1 && a[0]["src_regions"].as_array().is_some_and(|r| r.len() == 3)
        })
    })
    .await;
    let f = findings_now.as_array().unwrap();
    assert_eq!(f.len(), 1, "{findings_now:#}\nfirst seen: {findings:#}");
    assert_eq!(f[0]["scope"], "target");
    assert_eq!(f[0]["targets"], serde_json::json!(["db"]));
    assert_eq!(f[0]["src_regions"], serde_json::json!(REGIONS));
    assert_eq!(f[0]["quorum"], "3 of 3 regions");
    assert!(f[0]["evidence"][0]["reasons"]["refused"].as_u64() >= Some(2));
    let said = f[0]["explanation"].as_str().unwrap();
    assert!(
        said.contains("% of connects to db fail (refused) from lab-a, lab-b and lab-c (3 of 3 regions): the target itself is down or refusing"),
        "{said}"
    );

    let (status, db_view) = get(addr, "/api/v1/reachability?target=db&from=lab-b").await;
    assert_eq!(status, 200);
    assert_eq!(db_view["verdict"], "down", "{db_view:#}");
    assert_eq!(db_view["failing_from"], serde_json::json!(REGIONS));
    assert_eq!(db_view["from"]["state"], "failing");
    // A healthy path needs a few attempts before it counts as reachable.
    let web_view = wait_for(
        addr,
        "/api/v1/reachability?target=web",
        Duration::from_secs(10),
        |b| {
            b["regions"].as_array().is_some_and(|r| {
                r.len() == REGIONS.len() && r.iter().all(|v| v["state"] != "unknown")
            })
        },
    )
    .await;
    assert_eq!(web_view["verdict"], "reachable", "{web_view:#}");
    assert_eq!(web_view["reachable_from"], serde_json::json!(REGIONS));
    let (_, none) = get(addr, "/api/v1/reachability?target=nothing").await;
    assert_eq!(none["verdict"], "unknown");

    // Bad requests are refused with a reason.
    let (status, body) = get(addr, "/api/v1/reachability").await;
    assert_eq!((status, body["reason"].as_str()), (400, Some("bad_query")));
    let (status, _) = http(addr, "GET", "/api/v1/findings", &[], &[])
        .await
        .unwrap();
    assert_eq!(status, 401);

    // The finding became an incident, with a timeline and series.
    let list = wait_for(addr, "/api/v1/incidents", Duration::from_secs(5), |b| {
        b.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["id"], 1);
    assert_eq!(list[0]["finding"]["scope"], "target");
    assert!(list[0]["resolved_us"].is_null());
    let (_, metrics) = http(addr, "GET", "/metrics", &[], &[]).await.unwrap();
    let samples = vantage_tests::parse_exposition(&metrics);
    for r in REGIONS {
        assert_eq!(
            vantage_tests::value(
                &samples,
                "vantage_incident_active",
                &[
                    ("incident_id", "1"),
                    ("scope", "target"),
                    ("src_region", r),
                    ("target", "db")
                ]
            ),
            Some(1.0),
            "{r}"
        );
    }
    vantage_tests::promtool_check_metrics(&metrics);

    // Alertmanager asks about an alert: the evidence for its window comes
    // back and is kept; bad payloads change nothing.
    let started =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() - Duration::from_secs(60));
    let hook = serde_json::json!({
        "version": "4", "status": "firing", "receiver": "vantage", "groupKey": "{}:{}",
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "DbDown", "instance": format!("127.0.0.1:{}", db.addr.port())},
             "annotations": {}, "startsAt": started.to_string(), "endsAt": "0001-01-01T00:00:00Z",
             "generatorURL": "", "fingerprint": "f1"},
            {"status": "firing", "labels": {"alertname": "Other", "service": "nothing-we-probe"},
             "annotations": {}, "startsAt": started.to_string(), "fingerprint": "f2"}
        ]
    });
    let auth = format!("Bearer {}", token("lab-b"));
    let post = |body: Vec<u8>, auth: Option<String>| async move {
        let mut headers = vec![("Content-Type", "application/json".to_string())];
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, text) = http(addr, "POST", "/api/v1/alertmanager", &headers, &body)
            .await
            .unwrap();
        (
            status,
            serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default(),
        )
    };
    let (status, answer) = post(serde_json::to_vec(&hook).unwrap(), Some(auth.clone())).await;
    assert_eq!(status, 200, "{answer:#}");
    let a = &answer["alerts"][0];
    assert_eq!(a["matched"], serde_json::json!(["db"]), "{a:#}");
    assert_eq!(a["matched_by"], "instance");
    assert_eq!(a["regions"].as_array().unwrap().len(), 3);
    assert!(
        a["regions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "failing"),
        "{a:#}"
    );
    assert!(
        a["summary"]
            .as_str()
            .unwrap()
            .contains("every region saw connects fail"),
        "{a:#}"
    );
    assert_eq!(a["now"][0]["verdict"], "down");
    let b = &answer["alerts"][1];
    assert_eq!(b["matched"], serde_json::json!([]));
    assert!(
        b["summary"].as_str().unwrap().starts_with("No evidence"),
        "{b:#}"
    );
    let mut wrong = hook.clone();
    wrong["version"] = "3".into();
    let (status, body) = post(serde_json::to_vec(&wrong).unwrap(), Some(auth.clone())).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (422, Some("unknown_version"))
    );
    let (status, body) = post(b"{not json".to_vec(), Some(auth.clone())).await;
    assert_eq!((status, body["reason"].as_str()), (400, Some("malformed")));
    let (status, _) = post(serde_json::to_vec(&hook).unwrap(), None).await;
    assert_eq!(status, 401);
    let (_, kept) = get(addr, "/api/v1/alertmanager").await;
    assert_eq!(
        kept.as_array().unwrap().len(),
        2,
        "only the accepted payload is kept: {kept:#}"
    );

    // The backend comes back: the incident resolves.
    let port = db.addr.port();
    drop(db);
    let _db = Accepting::bind(SocketAddr::new(LO, port)).await.unwrap();
    let one = wait_for(addr, "/api/v1/incidents/1", Duration::from_secs(15), |b| {
        !b["resolved_us"].is_null()
    })
    .await;
    let kinds: Vec<&str> = one["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    // Each region's onset is on the timeline (a region whose results came
    // in a batch later joins with a "regions" line), and regions may
    // recover one by one before the incident resolves.
    assert_eq!(
        kinds.iter().filter(|k| **k == "onset").count(),
        3,
        "{one:#}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "opened").count(),
        1,
        "{one:#}"
    );
    assert_eq!(kinds.last(), Some(&"resolved"), "{one:#}");
    assert!(
        kinds
            .iter()
            .all(|k| ["onset", "opened", "regions", "resolved"].contains(k)),
        "{one:#}"
    );
    let (_, metrics) = http(addr, "GET", "/metrics", &[], &[]).await.unwrap();
    assert!(!metrics.contains("vantage_incident_active{"), "{metrics}");
    let (_, db_view) = get(addr, "/api/v1/reachability?target=db").await;
    assert_eq!(db_view["verdict"], "reachable", "{db_view:#}");

    // History survives a restart; an unknown incident is a 404.
    stop.cancel();
    task.await.unwrap().unwrap();
    let (stop, task) = start_collector(&config, addr).await;
    let (status, again) = get(addr, "/api/v1/incidents/1").await;
    assert_eq!(status, 200);
    assert_eq!(again["timeline"], one["timeline"]);
    assert_eq!(again["resolved_us"], one["resolved_us"]);
    let (status, body) = get(addr, "/api/v1/incidents/99").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (404, Some("no_such_incident"))
    );

    for (control, task) in probes {
        control.send(Control::Shutdown).await.unwrap();
        task.await.unwrap().unwrap();
    }
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// The findings API and reachability show the evaluation loop's judgment,
/// dated, and never judge the fleet for a request: a finding a reader is
/// shown is one the incidents were judged on, and no token holder can
/// keep a core busy by asking. Here the loop's period is an hour, so
/// readers keep being shown the one judgment made before its first, while
/// results from a refusing backend pour in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_are_shown_the_loops_judgment_not_one_of_their_own() {
    let web = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let db = Refusing::bind(LO).unwrap();
    let dir = Scratch::new("evidence-snapshot");
    let addr = SocketAddr::new(LO, free_port());
    let (stop, task) = start_collector(&collector_config(&dir, addr, "1h", "1h"), addr).await;
    let auth = format!("Bearer {}", token("lab-a"));
    let findings = async || {
        let (status, head, body) = vantage_tests::http_with_head(
            addr,
            "GET",
            "/api/v1/findings",
            &[("Authorization", &auth)],
            &[],
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let at = vantage_tests::header_value(&head, "vantage-judged-at")
            .unwrap_or_else(|| panic!("no vantage-judged-at in {head}"))
            .to_string();
        humantime::parse_rfc3339(&at).unwrap();
        (
            at,
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        )
    };
    let (first_at, first) = findings().await;
    assert_eq!(first, serde_json::json!([]), "no data yet");

    let probes = start_probes(&dir, addr, web.addr.port(), db.addr.port()).await;
    // Enough of db's refusals stored from every region that any judgment
    // made now would find it down (two failures from each of three).
    vantage_tests::wait_until("refusals stored", Duration::from_secs(20), async || {
        let (_, metrics) = http(addr, "GET", "/metrics", &[], &[]).await.unwrap();
        let samples = vantage_tests::parse_exposition(&metrics);
        vantage_tests::value(&samples, "vantage_collector_results_total", &[])
            .is_some_and(|n| n >= 60.0)
    })
    .await;
    for _ in 0..5 {
        let (at, now) = findings().await;
        assert_eq!((&at, &now), (&first_at, &first), "a request judged again");
    }
    let (_, view) = get(addr, "/api/v1/reachability?target=db").await;
    assert_eq!(
        view["judged_at"].as_str(),
        Some(first_at.as_str()),
        "{view:#}"
    );
    assert_eq!(view["verdict"], "unknown", "{view:#}");
    let (_, metrics) = http(addr, "GET", "/metrics", &[], &[]).await.unwrap();
    let samples = vantage_tests::parse_exposition(&metrics);
    assert_eq!(
        vantage_tests::value(
            &samples,
            "vantage_evidence_evaluations_total",
            &[("result", "ok")]
        ),
        None,
        "the loop has not evaluated yet"
    );

    for (control, task) in probes {
        control.send(Control::Shutdown).await.unwrap();
        task.await.unwrap().unwrap();
    }
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// The value of the counter `name` with `labels` on the collector at
/// `addr` (0 when it has none yet).
async fn counter(addr: SocketAddr, name: &str, labels: &[(&str, &str)]) -> f64 {
    let (_, metrics) = http(addr, "GET", "/metrics", &[], &[]).await.unwrap();
    let samples = vantage_tests::parse_exposition(&metrics);
    vantage_tests::value(&samples, name, labels).unwrap_or(0.0)
}

/// A hard fault that starts between two of the loop's ticks opens its
/// incident as the batches that show it are stored, not at the ticks: a
/// loop that judged only on its period (30 s here) would need two ticks
/// after the fault, 30 s at least, to find it and then confirm its scope.
/// The first page is still the whole fault: the second look waited for
/// every region's attempts, so the incident opens target-side from all
/// three regions, not as one region's path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_fault_opens_its_incident_as_its_batches_land_not_at_the_tick() {
    let web = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let db = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let dir = Scratch::new("evidence-early");
    let addr = SocketAddr::new(LO, free_port());
    let config = collector_config(&dir, addr, "30s", "30s");
    let (stop, task) = start_collector(&config, addr).await;
    let probes = start_probes(&dir, addr, web.addr.port(), db.addr.port()).await;

    // The loop's first tick has judged a healthy fleet.
    let ok = [("result", "ok")];
    vantage_tests::wait_until("the first tick", Duration::from_secs(45), async || {
        counter(addr, "vantage_evidence_evaluations_total", &ok).await >= 1.0
    })
    .await;
    let (_, none) = get(addr, "/api/v1/incidents").await;
    assert_eq!(none, serde_json::json!([]));
    let ticks = counter(addr, "vantage_evidence_evaluations_total", &ok).await;

    let faulted = Instant::now();
    let _db = db.refuse().await.unwrap();
    let list = wait_for(addr, "/api/v1/incidents", Duration::from_secs(25), |b| {
        b.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let opened_after = faulted.elapsed();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:#?}");
    let f = &list[0]["finding"];
    assert_eq!(f["scope"], "target", "{f:#}");
    assert_eq!(f["targets"], serde_json::json!(["db"]));
    assert_eq!(f["src_regions"], serde_json::json!(REGIONS), "{f:#}");
    let early = counter(addr, "vantage_evidence_early_evaluations_total", &[]).await;
    let all = counter(addr, "vantage_evidence_evaluations_total", &ok).await;
    assert!(
        early >= 2.0,
        "found and confirmed by stored batches: {early}"
    );
    assert!(
        all - ticks <= early + 1.0,
        "at most one tick since the fault: {all} evaluations, {ticks} before it, {early} early"
    );
    // Bounded: a fault already found asks for no more evaluations.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = counter(addr, "vantage_evidence_early_evaluations_total", &[]).await;
    assert!(
        later <= early + 1.0,
        "{early} early evaluations, then {later}"
    );
    eprintln!("incident open {opened_after:?} after the fault, {early} early evaluations");

    for (control, task) in probes {
        control.send(Control::Shutdown).await.unwrap();
        task.await.unwrap().unwrap();
    }
    stop.cancel();
    task.await.unwrap().unwrap();
}
