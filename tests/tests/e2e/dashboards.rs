//! `dashboards/`: the rules pass promtool's checks and unit tests, the
//! dashboards are well-formed, and against a live fleet on loopback a real
//! Prometheus, loading the rules, answers every panel's and variable's
//! query with data while a real fault fires its alert.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vantage_collector::Collector;
use vantage_collector::config::Config as CollectorConfig;
use vantage_probe::config::{Config, Overrides};
use vantage_probe::{Accepting, Answer, Control, DnsServer, Refusing, Service};
use vantage_tests::{Proc, Scratch, free_port, http, http_get, wait_for_200};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const REGIONS: [&str; 3] = ["lab-a", "lab-b", "lab-c"];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards")
}

fn dashboards() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir()).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
            out.push((name, v));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(out.len(), 4, "the four dashboards");
    out
}

fn panels(d: &Value) -> Vec<&Value> {
    d["panels"].as_array().unwrap().iter().collect()
}

/// Every query a dashboard runs: (where, expr, legend).
fn queries(name: &str, d: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                format!("{name}: panel {:?}", p["title"].as_str().unwrap_or("")),
                t["expr"].as_str().unwrap().to_string(),
                t["legendFormat"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(e) = a["expr"].as_str() {
            out.push((
                format!("{name}: annotation {:?}", a["name"].as_str().unwrap_or("")),
                e.to_string(),
                String::new(),
            ));
        }
    }
    out
}

#[test]
fn the_rules_pass_promtool_checks_and_unit_tests() {
    let rules = dir().join("rules");
    let check = Command::new("promtool")
        .args(["check", "rules", "vantage.rules.yml"])
        .current_dir(&rules)
        .output()
        .expect("promtool not found: run the tests with tests/run, which installs it");
    assert!(check.status.success(), "{check:?}");
    let test = Command::new("promtool")
        .args(["test", "rules", "vantage.rules.test.yml"])
        .current_dir(&rules)
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stdout)
    );
    // Every alert has a unit test that expects it to fire.
    let rules_text = std::fs::read_to_string(rules.join("vantage.rules.yml")).unwrap();
    let tests_text = std::fs::read_to_string(rules.join("vantage.rules.test.yml")).unwrap();
    for line in rules_text.lines() {
        if let Some(alert) = line.trim().strip_prefix("- alert: ") {
            assert!(
                tests_text.contains(&format!(
                    "alertname: {alert}\n        exp_alerts:\n          - exp_labels:"
                )),
                "{alert} has no test that fires it"
            );
            // ... and a runbook section.
            let readme = std::fs::read_to_string(dir().join("README.md")).unwrap();
            assert!(
                readme.contains(&format!("### {alert}\n")),
                "{alert} has no runbook in dashboards/README.md"
            );
        }
    }
}

#[test]
fn the_dashboards_are_well_formed() {
    let mut uids = BTreeSet::new();
    for (name, d) in dashboards() {
        assert!(
            uids.insert(d["uid"].as_str().unwrap().to_string()),
            "{name}: uid reused"
        );
        assert!(
            d.get("__inputs").is_none(),
            "{name}: use a datasource variable, not __inputs"
        );
        let vars = d["templating"]["list"].as_array().unwrap();
        assert!(
            vars.iter()
                .any(|v| v["name"] == "datasource" && v["type"] == "datasource"),
            "{name}: no datasource variable"
        );
        let mut ids = BTreeSet::new();
        let mut boxes: Vec<(i64, i64, i64, i64, String)> = Vec::new();
        for p in panels(&d) {
            let title = p["title"].as_str().unwrap_or("");
            assert!(!title.is_empty(), "{name}: a panel without a title");
            assert!(
                ids.insert(p["id"].as_i64().unwrap()),
                "{name}: panel id {} reused",
                p["id"]
            );
            let g = &p["gridPos"];
            let b = (
                g["x"].as_i64().unwrap(),
                g["y"].as_i64().unwrap(),
                g["w"].as_i64().unwrap(),
                g["h"].as_i64().unwrap(),
            );
            assert!(b.0 + b.2 <= 24, "{name}: {title:?} is wider than the grid");
            for o in &boxes {
                let overlap =
                    b.0 < o.0 + o.2 && o.0 < b.0 + b.2 && b.1 < o.1 + o.3 && o.1 < b.1 + b.3;
                assert!(!overlap, "{name}: {title:?} overlaps {:?}", o.4);
            }
            boxes.push((b.0, b.1, b.2, b.3, title.to_string()));
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{name}: {title:?} datasource"
            );
            assert!(
                p["description"].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: {title:?} says nothing about what it shows"
            );
            let exprs: Vec<&str> = p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["expr"].as_str().unwrap())
                .collect();
            assert!(!exprs.is_empty(), "{name}: {title:?} has no query");
            let timed = exprs
                .iter()
                .any(|e| e.contains("rate(") || e.contains("_seconds") || e.contains("ratio"));
            if timed {
                assert!(
                    p["fieldConfig"]["defaults"]["unit"]
                        .as_str()
                        .is_some_and(|u| !u.is_empty()),
                    "{name}: {title:?} shows times or rates without a unit"
                );
            }
        }
    }
}

struct Fleet {
    collector: SocketAddr,
    probes: Vec<SocketAddr>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    controls: Vec<(
        mpsc::Sender<Control>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )>,
}

/// Three regions probing `web` (accepting), `api` (a name resolved by a
/// local DNS server) and `queue` (refusing everywhere: a target-side fault).
async fn fleet(dir: &Scratch, web: u16, queue: u16, dns: SocketAddr) -> Fleet {
    let addr = SocketAddr::new(LO, free_port());
    let mut text = format!(
        "[server]\nfleet = \"dashboards-test\"\nlisten = \"{addr}\"\ndata_dir = \"data\"\n\
         [limits]\nmax_batches_per_second = 1000\n[evidence]\nevaluate_every = \"1s\"\nresolve_after = \"5s\"\n"
    );
    for r in REGIONS {
        text.push_str(&format!(
            "[[tokens]]\ntoken = \"dash-{r}-0123456789\"\nsrc_region = \"{r}\"\n"
        ));
    }
    let path = dir.write("collector.toml", &text);
    let c = Collector::bind(CollectorConfig::load(&path).unwrap())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(c.run(stop.clone()));
    wait_for_200(addr, "/-/ready", Duration::from_secs(5)).await;

    let mut probes = Vec::new();
    let mut controls = Vec::new();
    for (i, r) in REGIONS.iter().enumerate() {
        let source = format!("127.0.0.{}", 21 + i);
        let text = format!(
            r#"
[probe]
src_region = "{r}"
id = "{r}-1"
[admin]
listen = "127.0.0.1:0"
[dns]
servers = ["{dns}"]
timeout = "100ms"
[collector]
url = "http://{addr}"
token = "dash-{r}-0123456789"
spool_dir = "spool-{r}"
flush_interval = "200ms"
[defaults]
interval = "400ms"
timeout = "200ms"
families = ["ipv4"]
[[targets]]
name = "web"
host = "127.0.0.1"
port = {web}
source_address = "{source}"
labels = {{ provider = "lab-aws", service = "web" }}
[[targets]]
name = "api"
host = "api.lab.test"
port = {web}
source_address = "{source}"
labels = {{ provider = "lab-gcp", service = "api" }}
[[targets]]
name = "queue"
host = "127.0.0.1"
port = {queue}
source_address = "{source}"
labels = {{ provider = "lab-gcp", service = "queue" }}
"#
        );
        let path = dir.write(&format!("probe-{r}.toml"), &text);
        let config = Config::load(&path, &Overrides::default()).unwrap();
        let service = Service::with_config(path, Overrides::default(), config)
            .await
            .unwrap();
        probes.push(service.admin_addr());
        let (control, rx) = mpsc::channel(1);
        controls.push((control, tokio::spawn(service.run(rx))));
    }
    Fleet {
        collector: addr,
        probes,
        stop,
        task,
        controls,
    }
}

/// Grafana's variables, as a live fleet would fill them. `.+` rather than
/// `.*`: a matcher on a label vantage does not export then matches nothing.
fn substitute(expr: &str) -> String {
    let mut e = expr.to_string();
    for v in ["src_region", "provider", "target"] {
        e = e.replace(&format!("${{{v}:regex}}"), ".+");
    }
    e.replace("$__rate_interval", "10s")
        .replace("$__range", "1m")
}

async fn query(prom: SocketAddr, expr: &str) -> Value {
    let url = format!("/api/v1/query?query={}", urlencode(expr));
    let (status, body) = http_get(prom, &url).await.unwrap();
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(status, 200, "{expr}: {body}");
    assert_eq!(v["status"], "success", "{expr}: {body}");
    v["data"]["result"].clone()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_has_data_from_a_live_fleet_and_the_fault_alerts() {
    let web = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let queue = Refusing::bind(LO).unwrap();
    let zone = HashMap::from([("api.lab.test".to_string(), Answer::Addresses(vec![LO]))]);
    let dns = DnsServer::bind(SocketAddr::new(LO, 0), zone).await.unwrap();
    let scratch = Scratch::new("dashboards");
    let f = fleet(&scratch, web.addr.port(), queue.addr.port(), dns.addr).await;
    // One refused request, so the refusals panel has a series.
    let (status, _) = http(f.collector, "POST", "/api/v1/results", &[], b"{}")
        .await
        .unwrap();
    assert_eq!(status, 401);

    let prom = SocketAddr::new(LO, free_port());
    let probes: Vec<String> = f.probes.iter().map(|a| format!("'{a}'")).collect();
    let cfg = scratch.write(
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: vantage-collector\n    static_configs:\n      - targets: ['{}']\n\
             \x20 - job_name: vantage-probe\n    static_configs:\n      - targets: [{}]\n",
            dir().join("rules/vantage.rules.yml").display(),
            f.collector,
            probes.join(", ")
        ),
    );
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            scratch.path.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={prom}"));
    let _prom = Proc::spawn(&mut cmd);
    wait_for_200(prom, "/-/ready", Duration::from_secs(30)).await;

    // The refusing backend opens a target-side incident, and its alert fires.
    let started = Instant::now();
    let alert = loop {
        let (_, body) = http_get(prom, "/api/v1/alerts").await.unwrap();
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        let firing = v["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["labels"]["alertname"] == "VantageIncident" && a["state"] == "firing");
        if let Some(a) = firing {
            break a.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no VantageIncident alert: {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(alert["labels"]["scope"], "target", "{alert:#}");
    assert_eq!(alert["labels"]["target"], "queue", "{alert:#}");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("target fault (incident ")
    );
    // Every query, until all have data (a rate needs two scrapes in its
    // window, a recording rule an evaluation after them) or 30 s pass.
    let started = Instant::now();
    loop {
        let (checked, empty) = check_queries(prom).await;
        if empty.is_empty() {
            assert!(checked >= 40, "only {checked} queries checked");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "queries without data against a live fleet:\n{}",
            empty.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The matrix recording rule shows the refusing column red and the rest 0.
    // A cell is NaN (0/0) until two scrapes in its window saw its attempts
    // grow: on a loaded machine a probe's first batches can land after the
    // first scrapes, so wait (bounded) until every cell is a number.
    let by_target: BTreeMap<String, f64> = vantage_tests::wait_for(
        "every matrix cell a number",
        Duration::from_secs(30),
        async || {
            let matrix = query(
                prom,
                "src_region_target:vantage_connect_failure_ratio:rate5m",
            )
            .await;
            let cells: BTreeMap<String, f64> = matrix
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        format!(
                            "{} {}",
                            s["metric"]["src_region"].as_str().unwrap(),
                            s["metric"]["target"].as_str().unwrap()
                        ),
                        s["value"][1].as_str().unwrap().parse().unwrap(),
                    )
                })
                .collect();
            let whole =
                cells.len() == REGIONS.len() * 3 && cells.values().all(|v: &f64| !v.is_nan());
            (whole, cells)
        },
    )
    .await;
    for r in REGIONS {
        assert_eq!(by_target[&format!("{r} queue")], 1.0, "{by_target:?}");
        assert_eq!(by_target[&format!("{r} web")], 0.0, "{by_target:?}");
    }

    for (control, task) in f.controls {
        control.send(Control::Shutdown).await.unwrap();
        task.await.unwrap().unwrap();
    }
    f.stop.cancel();
    f.task.await.unwrap().unwrap();
}

/// Runs every panel, annotation and variable query of every dashboard;
/// how many ran, and those that returned no data. A legend naming a label
/// the returned series lack fails at once.
async fn check_queries(prom: SocketAddr) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut empty = Vec::new();
    for (name, d) in dashboards() {
        for (at, expr, legend) in queries(&name, &d) {
            let result = query(prom, &substitute(&expr)).await;
            let series = result.as_array().cloned().unwrap_or_default();
            if series.is_empty() {
                empty.push(format!("{at}: {expr}"));
                continue;
            }
            // Every label the legend names is on every series.
            let wanted: Vec<&str> = legend
                .split("{{")
                .skip(1)
                .filter_map(|s| s.split_once("}}").map(|(l, _)| l.trim()))
                .collect();
            for s in &series {
                for l in &wanted {
                    assert!(
                        s["metric"].get(*l).is_some(),
                        "{at}: the legend names {l:?}, not on {s}"
                    );
                }
            }
            checked += 1;
        }
        for v in d["templating"]["list"].as_array().unwrap() {
            let Some(def) = v["definition"].as_str() else {
                continue;
            };
            // label_values(selector, label)
            let inner = def
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
                .unwrap();
            let (selector, label) = inner.rsplit_once(',').unwrap();
            let result = query(prom, &substitute(selector.trim())).await;
            let values: BTreeSet<String> = result
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["metric"][label.trim()].as_str().map(str::to_string))
                .collect();
            if values.is_empty() {
                empty.push(format!("{name}: variable {}: {def}", v["name"]));
            }
            checked += 1;
        }
    }
    (checked, empty)
}
