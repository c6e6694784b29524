//! The fleet inventory: the collector serves each region its target list,
//! probes fetch it, cache it, follow its changes, let local targets win,
//! and keep probing from the cache while the collector is away.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vantage_collector::Collector;
use vantage_collector::config::Config as CollectorConfig;
use vantage_probe::config::{Config, Overrides};
use vantage_probe::stats::{Family, StatsRegistry};
use vantage_probe::{Accepting, Control, Service};
use vantage_tests::{
    Scratch, free_port, header_value, http, http_with_head, parse_exposition, value, wait_for_200,
    wait_until,
};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const EAST: &str = "inventory-east-0123456789";
const WEST: &str = "inventory-west-0123456789";
const PATH: &str = "/api/v1/targets";

fn fleet_json(web: u16, east: u16, west: u16, extra: Option<u16>) -> String {
    let mut groups = vec![
        format!(
            r#"{{"targets": ["127.0.0.1:{web}"], "labels": {{"name": "web", "provider": "gcp"}}}}"#
        ),
        format!(
            r#"{{"targets": ["127.0.0.1:{east}"], "labels": {{"name": "east-only", "src_region": "lab-a"}}}}"#
        ),
        format!(
            r#"{{"targets": ["127.0.0.1:{west}"], "labels": {{"name": "west-only", "src_region": "lab-b"}}}}"#
        ),
    ];
    if let Some(p) = extra {
        groups.push(format!(
            r#"{{"targets": ["127.0.0.1:{p}"], "labels": {{"name": "api", "provider": "aws"}}}}"#
        ));
    }
    format!("[\n{}\n]\n", groups.join(",\n"))
}

async fn collector(
    dir: &Scratch,
    listen: SocketAddr,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let text = format!(
        "[server]\nlisten = \"{listen}\"\ndata_dir = \"data\"\n\
         [[tokens]]\ntoken = \"{EAST}\"\nsrc_region = \"lab-a\"\n\
         [[tokens]]\ntoken = \"{WEST}\"\nsrc_region = \"lab-b\"\n\
         [limits]\nmax_batches_per_second = 10000\n\
         [inventory]\nfile_sd = [\"fleet.json\"]\n"
    );
    let path = dir.write("collector.toml", &text);
    let c = Collector::bind(CollectorConfig::load(&path).unwrap())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(c.run(stop.clone()));
    wait_for_200(listen, "/-/ready", Duration::from_secs(5)).await;
    (stop, task)
}

struct Probe {
    stats: std::sync::Arc<StatsRegistry>,
    admin: SocketAddr,
    control: mpsc::Sender<Control>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// A probe in lab-a with one local target, `web`, that overrides the
/// inventory's `web`.
async fn probe(dir: &Scratch, collector: SocketAddr, local_web: u16) -> Probe {
    let text = format!(
        r#"
[probe]
src_region = "lab-a"
id = "p1"
[admin]
listen = "127.0.0.1:0"
[collector]
url = "http://{collector}"
token = "{EAST}"
spool_dir = "spool"
flush_interval = "100ms"
timeout = "1s"
inventory = true
inventory_refresh = "1s"
[defaults]
interval = "100ms"
timeout = "50ms"
[[targets]]
name = "web"
host = "127.0.0.1"
port = {local_web}
labels = {{ owner = "local" }}
"#
    );
    let path = dir.write("probe.toml", &text);
    let config = Config::load(&path, &Overrides::default()).unwrap();
    let service = Service::with_config(path, Overrides::default(), config)
        .await
        .unwrap();
    let (stats, admin) = (service.stats(), service.admin_addr());
    let (control, rx) = mpsc::channel(1);
    let task = tokio::spawn(service.run(rx));
    Probe {
        stats,
        admin,
        control,
        task,
    }
}

impl Probe {
    /// Names of targets probed since `since` attempts counts were taken.
    fn attempts(&self) -> Vec<(String, u64, Option<String>)> {
        self.stats
            .all()
            .iter()
            .map(|t| {
                (
                    t.name.to_string(),
                    t.family(Family::V4).map_or(0, |f| f.attempts()),
                    t.labels.get("owner").cloned(),
                )
            })
            .collect()
    }

    /// Waits until exactly `want` targets are being probed (each gaining
    /// attempts), or panics after 10 s.
    async fn wait_for_targets(&self, want: &[&str]) {
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let before = self.attempts();
            tokio::time::sleep(Duration::from_millis(400)).await;
            let after = self.attempts();
            let active: BTreeSet<String> = after
                .iter()
                .filter(|(n, a, _)| {
                    before.iter().any(|(m, b, _)| m == n && a > b)
                        || !before.iter().any(|(m, ..)| m == n) && *a > 0
                })
                .map(|(n, ..)| n.clone())
                .collect();
            if active == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "probing {active:?}, want {want:?}"
            );
        }
    }

    async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let (_, body) = http(self.admin, "GET", "/metrics", &[], &[]).await.unwrap();
        value(&parse_exposition(&body), name, labels)
    }

    async fn stop(self) {
        self.control.send(Control::Shutdown).await.unwrap();
        self.task.await.unwrap().unwrap();
    }
}

async fn get(
    addr: SocketAddr,
    query: &str,
    token: Option<&str>,
    etag: Option<&str>,
) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = Vec::new();
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    if let Some(e) = etag {
        headers.push(("If-None-Match", e));
    }
    http(addr, "GET", &format!("{PATH}{query}"), &headers, &[])
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_serves_each_region_its_list_and_nothing_else() {
    let dir = Scratch::new("inventory-api");
    dir.write("fleet.json", &fleet_json(1001, 1002, 1003, None));
    let addr = SocketAddr::new(LO, free_port());
    let (stop, task) = collector(&dir, addr).await;

    let (status, body) = get(addr, "?src_region=lab-a", None, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("missing_token"), "{body}");
    let (status, body) = get(addr, "?src_region=lab-b", Some(EAST), None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("wrong_region"), "{body}");
    let (status, body) = get(addr, "", Some(EAST), None).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("src_region is required"), "{body}");
    let (status, body) = get(addr, "?src_region=lab-a&x=1", Some(EAST), None).await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = get(addr, "?src_region=lab-a", Some(EAST), None).await;
    assert_eq!(status, 200, "{body}");
    let groups: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["labels"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "east-only"]);
    assert!(
        !body.contains("src_region"),
        "the region label is not passed on: {body}"
    );
    let (_, west) = get(addr, "?src_region=lab-b", Some(WEST), None).await;
    assert!(
        west.contains("west-only") && !west.contains("east-only"),
        "{west}"
    );

    // The same list again: 304 against its tag.
    let (status, head, again) = http_with_head(
        addr,
        "GET",
        &format!("{PATH}?src_region=lab-a"),
        &[("Authorization", &format!("Bearer {EAST}"))],
        &[],
    )
    .await
    .unwrap();
    assert_eq!((status, again.as_str()), (200, body.as_str()));
    let tag = header_value(&head, "etag").expect("an ETag").to_string();
    let (status, _) = get(addr, "?src_region=lab-a", Some(EAST), Some(&tag)).await;
    assert_eq!(status, 304);
    let (status, _) = get(addr, "?src_region=lab-a", Some(EAST), Some("\"stale\"")).await;
    assert_eq!(status, 200);

    let (_, metrics) = http(addr, "GET", "/metrics", &[], &[]).await.unwrap();
    let samples = parse_exposition(&metrics);
    let count = |r: &str| {
        value(
            &samples,
            "vantage_collector_inventory_requests_total",
            &[("result", r)],
        )
    };
    assert_eq!(count("refused"), Some(4.0));
    assert_eq!(count("not_modified"), Some(1.0));
    assert_eq!(count("served"), Some(4.0));
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_follow_the_inventory_and_keep_it_while_the_collector_is_away() {
    let local_web = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let web = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let east = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let west = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let api = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let dir = Scratch::new("inventory-probe");
    let fleet = fleet_json(web.addr.port(), east.addr.port(), west.addr.port(), None);
    dir.write("fleet.json", &fleet);
    let addr = SocketAddr::new(LO, free_port());
    let (stop, task) = collector(&dir, addr).await;

    let p = probe(&dir, addr, local_web.addr.port()).await;
    // The first fetch adds east-only; web stays the local one.
    p.wait_for_targets(&["east-only", "web"]).await;
    let web_stats = p.attempts().into_iter().find(|(n, ..)| n == "web").unwrap();
    assert_eq!(web_stats.2.as_deref(), Some("local"), "the local web wins");
    assert_eq!(
        p.metric("vantage_probe_inventory_targets", &[]).await,
        Some(1.0)
    );
    assert!(
        p.metric(
            "vantage_probe_inventory_fetches_total",
            &[("result", "updated")]
        )
        .await
            >= Some(1.0)
    );
    let cached = std::fs::read_to_string(dir.path.join("spool/inventory.json")).unwrap();
    assert!(
        cached.contains("east-only") && !cached.contains("west-only"),
        "{cached}"
    );

    // A change to the inventory reaches the probe within a refresh or two.
    std::fs::write(
        dir.path.join("fleet.json"),
        fleet_json(
            web.addr.port(),
            east.addr.port(),
            west.addr.port(),
            Some(api.addr.port()),
        ),
    )
    .unwrap();
    p.wait_for_targets(&["api", "east-only", "web"]).await;
    assert_eq!(
        p.metric("vantage_probe_inventory_targets", &[]).await,
        Some(2.0)
    );

    // Results of inventory targets reach the collector like any others;
    // meanwhile the next fetch finds nothing new.
    wait_until(
        "a fetch that finds nothing new",
        Duration::from_secs(5),
        async || {
            p.metric(
                "vantage_probe_inventory_fetches_total",
                &[("result", "unchanged")],
            )
            .await
                >= Some(1.0)
        },
    )
    .await;
    wait_until(
        "inventory targets' results at the collector",
        Duration::from_secs(5),
        async || {
            let (_, metrics) = http(addr, "GET", "/metrics", &[], &[]).await.unwrap();
            let samples = parse_exposition(&metrics);
            ["api", "east-only"].iter().all(|target| {
                value(
                    &samples,
                    "vantage_connect_attempts_total",
                    &[("src_region", "lab-a"), ("target", target)],
                )
                .is_some_and(|n| n > 0.0)
            })
        },
    )
    .await;
    assert!(
        p.metric(
            "vantage_probe_inventory_fetches_total",
            &[("result", "unchanged")]
        )
        .await
            >= Some(1.0)
    );
    let (_, metrics) = http(addr, "GET", "/metrics", &[], &[]).await.unwrap();
    let samples = parse_exposition(&metrics);
    for target in ["api", "east-only"] {
        let n = value(
            &samples,
            "vantage_connect_attempts_total",
            &[("src_region", "lab-a"), ("target", target)],
        );
        assert!(n.is_some_and(|n| n > 0.0), "{target}: {n:?}");
    }

    // The collector goes away; a restarted probe runs from its cache.
    stop.cancel();
    task.await.unwrap().unwrap();
    p.stop().await;
    let p = probe(&dir, addr, local_web.addr.port()).await;
    p.wait_for_targets(&["api", "east-only", "web"]).await;
    wait_until("a failed fetch", Duration::from_secs(5), async || {
        p.metric(
            "vantage_probe_inventory_fetches_total",
            &[("result", "failed")],
        )
        .await
            >= Some(1.0)
    })
    .await;
    assert!(
        p.metric(
            "vantage_probe_inventory_fetches_total",
            &[("result", "failed")]
        )
        .await
            >= Some(1.0)
    );
    assert_eq!(
        p.metric("vantage_probe_inventory_targets", &[]).await,
        Some(2.0)
    );
    p.stop().await;
}
