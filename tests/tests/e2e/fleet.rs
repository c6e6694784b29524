//! Probes and the collector together on loopback: every round a probe makes
//! reaches the store exactly once, through collector outages, with spool
//! overflow counted rather than silent.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vantage_collector::Collector;
use vantage_collector::config::Config as CollectorConfig;
use vantage_probe::config::{Config, Overrides};
use vantage_probe::stats::{Family, StatsRegistry};
use vantage_probe::{Accepting, Control, Metrics, Refusing, Service};
use vantage_tests::{
    Scratch, free_port, http, http_get, parse_exposition, value, wait_for, wait_for_200, wait_until,
};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const TOKEN: &str = "fleet-test-token-0123456789";

type Running = (
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
);

async fn collector(dir: &Scratch, listen: SocketAddr) -> Running {
    let c = collector_with(dir, listen, "").await;
    wait_for_200(listen, "/-/ready", Duration::from_secs(5)).await;
    c
}

/// A collector with extra `[server]` settings (TLS); not waited for.
async fn collector_with(dir: &Scratch, listen: SocketAddr, server_extra: &str) -> Running {
    collector_limited(dir, listen, server_extra, "").await
}

/// A collector with extra `[server]` and `[limits]` settings; not waited for.
async fn collector_limited(
    dir: &Scratch,
    listen: SocketAddr,
    server_extra: &str,
    limits_extra: &str,
) -> Running {
    let text = format!(
        "[server]\nlisten = \"{listen}\"\ndata_dir = \"data\"\n{server_extra}\n[[tokens]]\ntoken = \"{TOKEN}\"\n\
         src_region = \"lab-a\"\n[limits]\nmax_batches_per_second = 10000\n{limits_extra}\n"
    );
    let path = dir.write("collector.toml", &text);
    let c = Collector::bind(CollectorConfig::load(&path).unwrap())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(c.run(stop.clone()));
    (stop, task)
}

struct Probe {
    admin: SocketAddr,
    metrics: Metrics,
    stats: std::sync::Arc<StatsRegistry>,
    control: mpsc::Sender<Control>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn probe(
    dir: &Scratch,
    collector: SocketAddr,
    web: u16,
    closed: u16,
    spool_max: u64,
    extra_targets: usize,
) -> Probe {
    probe_with(
        dir,
        &format!("http://{collector}"),
        "",
        web,
        closed,
        spool_max,
        extra_targets,
    )
    .await
}

async fn probe_with(
    dir: &Scratch,
    url: &str,
    collector_extra: &str,
    web: u16,
    closed: u16,
    spool_max: u64,
    extra_targets: usize,
) -> Probe {
    let mut text = format!(
        r#"
[probe]
src_region = "lab-a"
id = "p1"
[admin]
listen = "127.0.0.1:0"
[collector]
url = "{url}"
{collector_extra}
token = "{TOKEN}"
spool_dir = "spool"
spool_max_bytes = {spool_max}
flush_interval = "100ms"
timeout = "2s"
[defaults]
interval = "100ms"
timeout = "50ms"
[[targets]]
name = "web"
host = "127.0.0.1"
port = {web}
[[targets]]
name = "db"
host = "127.0.0.1"
port = {closed}
"#
    );
    for i in 0..extra_targets {
        text.push_str(&format!(
            "[[targets]]\nname = \"web-{i}\"\nhost = \"127.0.0.1\"\nport = {web}\n"
        ));
    }
    let path = dir.write("probe.toml", &text);
    let config = Config::parse(&text, &path, &Overrides::default()).unwrap();
    let service = Service::with_config(path, Overrides::default(), config)
        .await
        .unwrap();
    let (admin, metrics, stats) = (service.admin_addr(), service.metrics(), service.stats());
    let (control, rx) = mpsc::channel(1);
    let task = tokio::spawn(service.run(rx));
    Probe {
        admin,
        metrics,
        stats,
        control,
        task,
    }
}

impl Probe {
    /// Stops the probe (it flushes) and returns its attempts per target.
    async fn stop(self) -> (Metrics, Vec<(String, u64)>) {
        self.control.send(Control::Shutdown).await.unwrap();
        self.task.await.unwrap().unwrap();
        let attempts = self
            .stats
            .all()
            .iter()
            .map(|t| {
                (
                    t.name.to_string(),
                    t.family(Family::V4).map_or(0, |f| f.attempts()),
                )
            })
            .collect();
        (self.metrics, attempts)
    }
}

/// Attempts per target stored by the collector.
async fn stored(addr: SocketAddr) -> Vec<(String, u64)> {
    let auth = format!("Bearer {TOKEN}");
    let (status, text) = http(
        addr,
        "GET",
        "/api/v1/rollups",
        &[("Authorization", &auth)],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{text}");
    let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out: std::collections::BTreeMap<String, u64> = Default::default();
    for r in rows.as_array().unwrap() {
        *out.entry(r["target"].as_str().unwrap().to_string())
            .or_default() += r["count"].as_u64().unwrap();
    }
    out.into_iter().collect()
}

async fn spool_batches(admin: SocketAddr) -> f64 {
    let (_, body) = http_get(admin, "/metrics").await.unwrap();
    value(&parse_exposition(&body), "vantage_probe_spool_batches", &[]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_round_reaches_the_store_exactly_once() {
    let web = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let closed = Refusing::bind(LO).unwrap();
    let dir = Scratch::new("fleet-exact");
    let addr = SocketAddr::new(LO, free_port());
    let (stop, task) = collector(&dir, addr).await;
    let p = probe(&dir, addr, web.addr.port(), closed.addr.port(), 64 << 20, 0).await;
    wait_for_200(p.admin, "/-/ready", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (metrics, mut sent) = p.stop().await;
    sent.sort();
    assert!(sent.iter().all(|(_, n)| *n >= 8), "{sent:?}");
    assert_eq!(
        stored(addr).await,
        sent,
        "the store holds exactly what the probe measured"
    );
    assert_eq!(
        metrics.spool_batches.get(),
        0,
        "everything acknowledged, spool empty"
    );
    assert_eq!(
        metrics.results_dropped.get() + metrics.spool_dropped.get(),
        0
    );
    // The first batch goes as JSON (again only if its answer was lost);
    // the collector's answer offers the binary encoding, and the rest go
    // in it.
    let (_, body) = http_get(addr, "/metrics").await.unwrap();
    let m = parse_exposition(&body);
    let bodies = |f: &str| {
        value(
            &m,
            "vantage_collector_bodies_decoded_total",
            &[("format", f)],
        )
        .unwrap_or(0.0)
    };
    let (json, binary) = (bodies("json"), bodies("binary"));
    assert!(
        json >= 1.0 && binary >= 5.0 && json < binary,
        "{json} JSON bodies, {binary} binary"
    );
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// A collector as those before the binary encoding were, for the probe's
/// side of the negotiation: it reads every body as gzipped JSON, whatever
/// its `Content-Type`, and answers with no `Accept-Post`, unless told to
/// offer binary (and then reads it), as a newer collector does. What it
/// acknowledged: (binary, seq, results).
#[derive(Default)]
struct Older {
    offer: std::sync::atomic::AtomicBool,
    acked: std::sync::Mutex<Vec<(bool, u64, usize)>>,
    refused_binary: std::sync::atomic::AtomicUsize,
}

async fn older_collector(
    state: std::sync::Arc<Older>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;
    use std::sync::atomic::Ordering;
    use vantage_probe::wire::{ACCEPT_POST_HEADER, Ack, RESULTS_PATH, binary};
    let handler = async |axum::extract::State(s): axum::extract::State<std::sync::Arc<Older>>,
                         headers: HeaderMap,
                         body: axum::body::Bytes| {
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&body[..]), &mut raw)
            .unwrap();
        let is_binary = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v == binary::CONTENT_TYPE);
        let offer = s.offer.load(Ordering::SeqCst);
        let batch: Result<vantage_probe::wire::Batch, String> = if is_binary && offer {
            let bounds = binary::Bounds {
                max_rounds: 100_000,
                max_attempts_per_round: 64,
                max_attempts: usize::MAX,
            };
            binary::decode(&raw, bounds).map_err(|e| e.to_string())
        } else {
            serde_json::from_slice(&raw).map_err(|e| e.to_string())
        };
        let mut answer = match batch {
            Ok(b) => {
                s.acked
                    .lock()
                    .unwrap()
                    .push((is_binary, b.seq, b.results.len()));
                let ack = Ack {
                    seq: b.seq,
                    stored: b.results.len() as u32,
                    duplicate: false,
                };
                (StatusCode::OK, serde_json::to_string(&ack).unwrap()).into_response()
            }
            Err(e) => {
                if is_binary {
                    s.refused_binary.fetch_add(1, Ordering::SeqCst);
                }
                let refusal = serde_json::json!({"reason": "malformed", "message": format!("not a batch: {e}")});
                (StatusCode::BAD_REQUEST, refusal.to_string()).into_response()
            }
        };
        if offer {
            answer.headers_mut().insert(
                ACCEPT_POST_HEADER,
                header::HeaderValue::from_static(binary::CONTENT_TYPE),
            );
        }
        answer
    };
    let app = axum::Router::new()
        .route(RESULTS_PATH, axum::routing::post(handler))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(LO, 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, task)
}

/// Any probe works with any collector: with one that does not offer the
/// binary encoding it sends JSON; when one offers it, binary; and when a
/// collector rolled back refuses a binary batch as malformed, that batch
/// goes again as JSON, and every round still arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_speaks_json_to_an_older_collector_and_binary_to_one_that_offers_it() {
    use std::sync::atomic::Ordering;
    let web = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let closed = Refusing::bind(LO).unwrap();
    let dir = Scratch::new("fleet-older");
    let older = std::sync::Arc::new(Older::default());
    let (addr, server) = older_collector(older.clone()).await;
    let p = probe_with(
        &dir,
        &format!("http://{addr}"),
        "",
        web.addr.port(),
        closed.addr.port(),
        64 << 20,
        0,
    )
    .await;
    let acked = |binary: bool| {
        let older = older.clone();
        move || {
            older
                .acked
                .lock()
                .unwrap()
                .iter()
                .filter(|a| a.0 == binary)
                .count()
        }
    };
    let (json, bin) = (acked(false), acked(true));
    wait_until("JSON batches", Duration::from_secs(10), async || {
        json() >= 5
    })
    .await;
    assert_eq!(bin(), 0, "no binary to a collector that does not offer it");
    older.offer.store(true, Ordering::SeqCst);
    wait_until("binary batches", Duration::from_secs(10), async || {
        bin() >= 5
    })
    .await;
    // Rolled back: binary bodies are malformed to it again.
    older.offer.store(false, Ordering::SeqCst);
    let json_before = json();
    wait_until("JSON again", Duration::from_secs(10), async || {
        json() >= json_before + 5
    })
    .await;
    let (metrics, sent) = p.stop().await;
    server.abort();
    let acked = older.acked.lock().unwrap().clone();
    let seqs: Vec<u64> = acked.iter().map(|a| a.1).collect();
    let first = seqs[0];
    assert_eq!(
        seqs,
        (first..first + seqs.len() as u64).collect::<Vec<_>>(),
        "every batch acknowledged once, in order"
    );
    let rounds: usize = acked.iter().map(|a| a.2).sum();
    let measured: u64 = sent.iter().map(|(_, n)| n).sum();
    assert_eq!(rounds as u64, measured, "every round arrived");
    assert_eq!(
        metrics
            .push_rejected
            .with_label_values(&["malformed"])
            .get(),
        0,
        "no batch set aside"
    );
    assert!(
        older.refused_binary.load(Ordering::SeqCst) <= 1,
        "one binary batch refused, then JSON"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_backfilled_when_the_collector_returns() {
    let web = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let closed = Refusing::bind(LO).unwrap();
    let dir = Scratch::new("fleet-outage");
    let addr = SocketAddr::new(LO, free_port());
    // The collector is not there yet: the probe measures and spools.
    let p = probe(&dir, addr, web.addr.port(), closed.addr.port(), 64 << 20, 0).await;
    wait_for_200(p.admin, "/-/ready", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let waiting = spool_batches(p.admin).await;
    assert!(
        waiting >= 5.0,
        "{waiting} batches spooled during the outage"
    );
    assert!(p.metrics.push_batches.with_label_values(&["failed"]).get() > 0);

    let (stop, task) = collector(&dir, addr).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while spool_batches(p.admin).await > 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the backlog did not drain"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (metrics, mut sent) = p.stop().await;
    sent.sort();
    assert_eq!(
        stored(addr).await,
        sent,
        "nothing lost within spool capacity"
    );
    assert_eq!(metrics.spool_dropped.get(), 0);
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// A cap refusal is the collector's to lift, not a reason to lose data:
/// the probe keeps the refused batches in its spool (none set aside in
/// rejected/), counts them deferred by reason, and once the cap is raised
/// every round reaches the store. Before, `too_many_targets` was a 422 that
/// the probe took as final: its batches went to rejected/, lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_probe_keeps_its_results_until_the_cap_is_lifted() {
    let web = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let closed = Refusing::bind(LO).unwrap();
    let dir = Scratch::new("fleet-capped");
    let addr = SocketAddr::new(LO, free_port());
    // The probe has two targets; the collector allows one.
    let (stop, task) = collector_limited(&dir, addr, "", "max_targets_per_probe = 1").await;
    wait_for_200(addr, "/-/ready", Duration::from_secs(5)).await;
    let p = probe(&dir, addr, web.addr.port(), closed.addr.port(), 64 << 20, 0).await;
    wait_for_200(p.admin, "/-/ready", Duration::from_secs(5)).await;
    let admin = p.admin;
    wait_for(
        "batches waiting behind the cap",
        Duration::from_secs(10),
        async || {
            let n = spool_batches(admin).await;
            (n >= 3.0, n)
        },
    )
    .await;
    let (first, mut sent) = p.stop().await;
    assert!(
        first
            .push_deferred
            .with_label_values(&["too_many_targets"])
            .get()
            >= 1
    );
    assert_eq!(first.push_batches.with_label_values(&["rejected"]).get(), 0);
    assert_eq!(first.push_batches.with_label_values(&["stored"]).get(), 0);
    assert!(
        stored(addr).await.is_empty(),
        "nothing past the cap was stored"
    );
    stop.cancel();
    task.await.unwrap().unwrap();

    // The cap lifted (the default), the same probe starts again and sends
    // its backlog first.
    let (stop, task) = collector(&dir, addr).await;
    let p = probe(&dir, addr, web.addr.port(), closed.addr.port(), 64 << 20, 0).await;
    let admin = p.admin;
    wait_for(
        "the backlog delivered",
        Duration::from_secs(30),
        async || {
            let n = spool_batches(admin).await;
            (n <= 1.0, n)
        },
    )
    .await;
    let (second, more) = p.stop().await;
    let mut both: std::collections::BTreeMap<String, u64> = sent.drain(..).collect();
    for (name, n) in more {
        *both.entry(name).or_default() += n;
    }
    let both: Vec<(String, u64)> = both.into_iter().collect();
    assert_eq!(stored(addr).await, both, "every round of both runs stored");
    assert_eq!(second.spool_batches.get(), 0);
    assert_eq!(first.spool_dropped.get() + second.spool_dropped.get(), 0);
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_file_from_an_older_copy_costs_a_new_stream_not_the_results() {
    let web = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let closed = Refusing::bind(LO).unwrap();
    let dir = Scratch::new("fleet-seq-reused");
    let addr = SocketAddr::new(LO, free_port());
    let (stop, task) = collector(&dir, addr).await;
    let spool = dir.path.join("spool");
    let read = |name: &str| std::fs::read_to_string(spool.join(name)).unwrap_or_default();
    let seq = |text: &str| text.trim().parse::<u64>().unwrap_or(0);

    let p = probe(&dir, addr, web.addr.port(), closed.addr.port(), 64 << 20, 0).await;
    wait_for_200(p.admin, "/-/ready", Duration::from_secs(5)).await;
    // The copy an operator later restores: a few batches in.
    let older = wait_for(
        "three batches sealed",
        Duration::from_secs(10),
        async || {
            let text = read("seq");
            (seq(&text) >= 3, text)
        },
    )
    .await;
    let stream = read("stream");
    wait_for(
        "five batches past the copy",
        Duration::from_secs(10),
        async || {
            let now = seq(&read("seq"));
            (now >= seq(&older) + 5, now)
        },
    )
    .await;
    let (first, mut before) = p.stop().await;
    assert_eq!(first.spool_batches.get(), 0, "everything acknowledged");
    std::fs::write(spool.join("seq"), &older).unwrap();

    // The same stream, a seq gone back: every new batch reuses a stored key.
    let p = probe(&dir, addr, web.addr.port(), closed.addr.port(), 64 << 20, 0).await;
    wait_for_200(p.admin, "/-/ready", Duration::from_secs(5)).await;
    wait_until(
        "the probe restreamed",
        Duration::from_secs(10),
        async || p.metrics.push_restreamed.get() == 1,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (second, after) = p.stop().await;
    let new_stream = read("stream");
    assert_ne!(new_stream, stream, "a new stream id is on disk");
    assert_eq!(second.push_restreamed.get(), 1, "one new stream was enough");
    assert_eq!(second.spool_batches.get(), 0, "everything acknowledged");
    assert_eq!(
        second.push_batches.with_label_values(&["rejected"]).get(),
        0,
        "no batch set aside"
    );

    before.sort();
    let mut measured = before.clone();
    for (target, n) in after {
        let (_, total) = measured.iter_mut().find(|(t, _)| *t == target).unwrap();
        *total += n;
    }
    assert_eq!(
        stored(addr).await,
        measured,
        "the store holds what the probe measured in both runs"
    );
    let (_, body) = http_get(addr, "/metrics").await.unwrap();
    assert_eq!(
        value(
            &parse_exposition(&body),
            "vantage_collector_refused_total",
            &[("reason", "seq_reused")]
        ),
        Some(1.0),
        "the collector refused the first reused seq, once"
    );
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_drops_the_oldest_and_counts_them() {
    let web = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let closed = Refusing::bind(LO).unwrap();
    let dir = Scratch::new("fleet-overflow");
    let addr = SocketAddr::new(LO, free_port());
    let p = probe(
        &dir,
        addr,
        web.addr.port(),
        closed.addr.port(),
        64 << 10,
        60,
    )
    .await;
    wait_for_200(p.admin, "/-/ready", Duration::from_secs(5)).await;
    // Run until the 64 KiB spool overflows.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while p.metrics.spool_dropped.get() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the spool never filled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(p.metrics.spool_bytes.get() <= 64 << 10);
    let (stop, task) = collector(&dir, addr).await;
    let (metrics, sent) = p.stop().await;
    // Whatever is left after the final flush stays spooled for next time.
    let left = metrics.spool_results.get() as u64;
    let measured: u64 = sent.iter().map(|(_, n)| n).sum();
    let stored: u64 = stored(addr).await.iter().map(|(_, n)| n).sum();
    assert_eq!(
        stored + metrics.spool_dropped.get() + left,
        measured,
        "every result is stored, counted as dropped, or still spooled"
    );
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_demo_shows_every_region_within_seconds() {
    let addr = SocketAddr::new(LO, free_port());
    let mut cmd = std::process::Command::new(vantage_tests::bin("vantage-collector"));
    cmd.args([
        "demo",
        "--log-level",
        "warn",
        "--listen",
        &addr.to_string(),
        "--for",
        "60s",
    ]);
    let p = vantage_tests::Proc::spawn(&mut cmd);
    wait_for_200(addr, "/-/ready", Duration::from_secs(10)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = http_get(addr, "/metrics").await.unwrap();
        let s = parse_exposition(&body);
        let reached = ["us-east-2", "us-west-1", "onprem"].iter().all(|r| {
            value(
                &s,
                "vantage_connect_attempts_total",
                &[("src_region", r), ("target", "api")],
            )
            .is_some_and(|v| v > 0.0)
                && value(
                    &s,
                    "vantage_connect_failures_total",
                    &[("src_region", r), ("target", "db"), ("reason", "refused")],
                )
                .is_some_and(|v| v > 0.0)
        });
        if reached {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not every region reported:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    p.stop_cleanly("INT", Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_over_tls_only_to_a_collector_the_probe_trusts() {
    let web = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let closed = Refusing::bind(LO).unwrap();
    let dir = Scratch::new("fleet-tls");
    let (ca, cert, key) = vantage_tests::test_certificates(&dir.path);
    let addr = SocketAddr::new(LO, free_port());
    let tls = format!(
        "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"",
        cert.display(),
        key.display()
    );
    let (stop, task) = collector_with(&dir, addr, &tls).await;

    // Plain HTTP to the TLS port gets no HTTP answer at all.
    let plain = http_get(addr, "/-/ready").await;
    assert!(!matches!(plain, Ok((200, _))), "{plain:?}");

    // A probe pinned to the test CA pushes over TLS; everything arrives.
    let pinned = format!("ca_file = \"{}\"", ca.display());
    let url = format!("https://127.0.0.1:{}", addr.port());
    let p = probe_with(
        &dir,
        &url,
        &pinned,
        web.addr.port(),
        closed.addr.port(),
        64 << 20,
        0,
    )
    .await;
    wait_for_200(p.admin, "/-/ready", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (metrics, mut sent) = p.stop().await;
    sent.sort();
    assert!(metrics.push_batches.with_label_values(&["stored"]).get() > 0);

    // A probe that does not trust the CA sends nothing (its results stay
    // spooled, the failures counted).
    let other = Scratch::new("fleet-tls-untrusted");
    let q = probe_with(
        &other,
        &url,
        "",
        web.addr.port(),
        closed.addr.port(),
        64 << 20,
        0,
    )
    .await;
    wait_for_200(q.admin, "/-/ready", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (untrusted, _) = q.stop().await;
    assert_eq!(
        untrusted.push_batches.with_label_values(&["stored"]).get(),
        0
    );
    assert!(untrusted.push_batches.with_label_values(&["failed"]).get() > 0);
    assert!(
        untrusted.spool_batches.get() > 0,
        "kept for when trust is fixed"
    );

    // The store holds exactly the trusted probe's rounds (read over TLS).
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap()])
        .build()
        .unwrap();
    let rows: serde_json::Value = client
        .get(format!("{url}/api/v1/rollups"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut stored: std::collections::BTreeMap<String, u64> = Default::default();
    for r in rows.as_array().unwrap() {
        *stored
            .entry(r["target"].as_str().unwrap().to_string())
            .or_default() += r["count"].as_u64().unwrap();
    }
    assert_eq!(stored.into_iter().collect::<Vec<_>>(), sent);
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// The `vantage-probe run` binary as probe `id` of region lab-a, pushing to
/// the collector at `listen` every 200 ms and measuring the collector's own
/// port; `env` is added to its environment.
fn probe_process(
    dir: &Scratch,
    id: &str,
    listen: SocketAddr,
    env: &[(&str, &std::path::Path)],
) -> vantage_tests::Proc {
    probe_process_in(dir, ("lab-a", TOKEN), id, listen, env)
}

/// A `vantage-probe run` process in `region`, pushing with `token`.
fn probe_process_in(
    dir: &Scratch,
    (region, token): (&str, &str),
    id: &str,
    listen: SocketAddr,
    env: &[(&str, &std::path::Path)],
) -> vantage_tests::Proc {
    let admin = SocketAddr::from((LO, free_port()));
    let config = dir.write(
        &format!("{id}.toml"),
        &format!(
            "[probe]\nsrc_region = \"{region}\"\nid = \"{id}\"\n[admin]\nlisten = \"{admin}\"\n\
             [collector]\nurl = \"http://{listen}\"\ntoken = \"{token}\"\nspool_dir = \"spool-{id}\"\n\
             flush_interval = \"200ms\"\n[[targets]]\nname = \"collector\"\nhost = \"127.0.0.1\"\n\
             port = {}\ninterval = \"500ms\"\ntimeout = \"400ms\"\n",
            listen.port()
        ),
    );
    let mut cmd = std::process::Command::new(vantage_tests::bin("vantage-probe"));
    cmd.args(["run", "--log-level", "warn", "--config"])
        .arg(&config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    vantage_tests::Proc::spawn(&mut cmd)
}

/// A plain-HTTP collector needs no CA bundle on the probe's host (a scratch
/// image has none): a probe whose system trust store is empty still pushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_collector_needs_no_ca_bundle_on_the_probe_host() {
    let dir = Scratch::new("fleet-no-ca");
    let listen = SocketAddr::from((LO, free_port()));
    let (stop, task) = collector(&dir, listen).await;
    let empty = dir.write("empty.pem", "");
    let no_certs = dir.path.join("no-certs");
    std::fs::create_dir_all(&no_certs).unwrap();
    let mut p = probe_process(
        &dir,
        "no-ca-1",
        listen,
        &[("SSL_CERT_FILE", &empty), ("SSL_CERT_DIR", &no_certs)],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if probe_states(listen).await.contains_key("no-ca-1") {
            break;
        }
        assert!(
            p.child.try_wait().unwrap().is_none(),
            "the probe exited without a CA bundle"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the probe never reported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// A probe stopped with SIGTERM (a rollout, a removed host) says so in its
/// last batch: the collector shows it `stopped`, not `silent`, and opens no
/// silent-probe finding for it. A probe that dies without a word is still
/// silent. A stopped probe that starts again is reporting again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_that_stops_cleanly_is_stopped_not_silent() {
    let dir = Scratch::new("fleet-stopped");
    let listen = SocketAddr::from((LO, free_port()));
    let (stop, task) = collector_with(
        &dir,
        listen,
        "[probes]\nsilent_after = \"2s\"\n[evidence]\nevaluate_every = \"1s\"\n",
    )
    .await;
    wait_for_200(listen, "/-/ready", Duration::from_secs(5)).await;
    let start = |id: &str| probe_process(&dir, id, listen, &[]);
    let states = || probe_states(listen);
    let wait_states = |want: [(&'static str, &'static str); 2]| async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let now = states().await;
            if want
                .iter()
                .all(|(id, s)| now.get(*id).map(String::as_str) == Some(*s))
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "wanted {want:?}, have {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let mut stops = start("stops-1");
    let mut dies = start("dies-1");
    wait_states([("stops-1", "reporting"), ("dies-1", "reporting")]).await;

    let status = std::process::Command::new("kill")
        .args(["-TERM", &stops.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(stops.child.wait().unwrap().success());
    dies.child.kill().unwrap();
    dies.child.wait().unwrap();
    wait_states([("stops-1", "stopped"), ("dies-1", "silent")]).await;

    let (_, text) = http_get(listen, "/metrics").await.unwrap();
    let samples = parse_exposition(&text);
    for (id, silent, stopped) in [("stops-1", 0.0, 1.0), ("dies-1", 1.0, 0.0)] {
        let want = [("probe_id", id)];
        assert_eq!(
            value(&samples, "vantage_fleet_probe_silent", &want),
            Some(silent),
            "{id}"
        );
        assert_eq!(
            value(&samples, "vantage_fleet_probe_stopped", &want),
            Some(stopped),
            "{id}"
        );
    }
    // The evidence names only the probe that died.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let silent = loop {
        let auth = format!("Bearer {TOKEN}");
        let (_, body) = http(
            listen,
            "GET",
            "/api/v1/findings",
            &[("Authorization", &auth)],
            b"",
        )
        .await
        .unwrap();
        let f: serde_json::Value = serde_json::from_str(&body).unwrap();
        let silent: Vec<String> = f
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["scope"] == "silent")
            .flat_map(|f| f["probe_ids"].as_array().cloned().unwrap_or_default())
            .map(|id| id.as_str().unwrap_or_default().to_string())
            .collect();
        if !silent.is_empty() {
            break silent;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no silent finding: {f:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(silent, ["dies-1"]);

    // Started again, it reports again.
    let _again = start("stops-1");
    wait_states([("stops-1", "reporting"), ("dies-1", "silent")]).await;
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// A second region's token, for the tests with two regions.
const TOKEN_B: &str = "fleet-test-token-b-0123456789";

/// `GET path` with the fleet's token, as JSON.
async fn get_json(listen: SocketAddr, path: &str) -> serde_json::Value {
    let auth = format!("Bearer {TOKEN}");
    let (status, body) = http(listen, "GET", path, &[("Authorization", &auth)], b"")
        .await
        .unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Each probe's state in `/api/v1/probes`, by probe id.
async fn probe_states(listen: SocketAddr) -> std::collections::BTreeMap<String, String> {
    get_json(listen, "/api/v1/probes")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["probe_id"].as_str().unwrap().to_string(),
                p["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// (region, quorum, probe ids) of a silent finding or incident.
type Silence = (String, String, Vec<String>);

fn silence(f: &serde_json::Value) -> Silence {
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    (
        strings(&f["src_regions"]).join(","),
        f["quorum"].as_str().unwrap_or_default().to_string(),
        strings(&f["probe_ids"]),
    )
}

/// Probes killed with SIGKILL (an OOM kill, a DaemonSet rollout: no last
/// batch) are one silent finding and one incident per region, naming N of
/// M, however many fall silent; a probe that starts under a new id in the
/// region (the pod back under another name) ends one old probe's silence,
/// and once every one is replaced the region's incident resolves; another
/// region's silence is an incident of its own throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_probes_are_one_incident_per_region_and_replacements_end_it() {
    let dir = Scratch::new("fleet-silent-region");
    let listen = SocketAddr::from((LO, free_port()));
    let (stop, task) = collector_with(
        &dir,
        listen,
        &format!(
            "[probes]\nsilent_after = \"2s\"\n[evidence]\nevaluate_every = \"1s\"\n\
             resolve_after = \"1s\"\n[[tokens]]\ntoken = \"{TOKEN_B}\"\nsrc_region = \"lab-b\"\n"
        ),
    )
    .await;
    wait_for_200(listen, "/-/ready", Duration::from_secs(5)).await;
    let start = |region: &str, id: &str| {
        let token = if region == "lab-a" { TOKEN } else { TOKEN_B };
        probe_process_in(&dir, (region, token), id, listen, &[])
    };
    let states = || probe_states(listen);
    let findings = || async move {
        let mut out: Vec<Silence> = get_json(listen, "/api/v1/findings")
            .await
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["scope"] == "silent")
            .map(silence)
            .collect();
        out.sort();
        out
    };
    // Every incident given (open or resolved): (id, open, its silence).
    let incidents = || async move {
        let mut out: Vec<(u64, bool, Silence)> = get_json(listen, "/api/v1/incidents")
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["id"].as_u64().unwrap(),
                    i["resolved_us"].is_null(),
                    silence(&i["finding"]),
                )
            })
            .collect();
        out.sort();
        out
    };
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let silence_of = |region: &str, quorum: &str, ids: &[&str]| -> Silence {
        (region.into(), quorum.into(), s(ids))
    };
    let mut a: Vec<vantage_tests::Proc> = ["a-1", "a-2", "a-3"]
        .iter()
        .map(|id| start("lab-a", id))
        .collect();
    let mut b: Vec<vantage_tests::Proc> =
        ["b-1", "b-2"].iter().map(|id| start("lab-b", id)).collect();
    // Every probe has reported since the last one started, so none of
    // them can be taken for another's replacement.
    wait_for(
        "five probes reporting since the last one started",
        Duration::from_secs(30),
        async || {
            let probes = get_json(listen, "/api/v1/probes").await;
            let list = probes.as_array().unwrap();
            let at = |p: &serde_json::Value, k: &str| p[k].as_str().unwrap().to_string();
            let newest_start = list.iter().map(|p| at(p, "first_report")).max();
            let ok = list.len() == 5
                && list.iter().all(|p| {
                    p["state"] == "reporting" && Some(at(p, "last_report")) > newest_start
                });
            (ok, probes)
        },
    )
    .await;

    // Two of lab-a's three and one of lab-b's two die without a word.
    for p in a[..2].iter_mut().chain(&mut b[..1]) {
        p.child.kill().unwrap();
        p.child.wait().unwrap();
    }
    let both = vec![
        silence_of("lab-a", "2 of 3 probes", &["a-1", "a-2"]),
        silence_of("lab-b", "1 of 2 probes", &["b-1"]),
    ];
    wait_for(
        "one silent finding per region",
        Duration::from_secs(30),
        async || {
            let f = findings().await;
            (f == both, (f, states().await))
        },
    )
    .await;
    let open = wait_for(
        "one silent incident per region",
        Duration::from_secs(30),
        async || {
            let i = incidents().await;
            let silences: Vec<Silence> = i.iter().map(|(_, _, s)| s.clone()).collect();
            let mut sorted = silences.clone();
            sorted.sort();
            (sorted == both && i.iter().all(|(_, open, _)| *open), i)
        },
    )
    .await;
    let id_of = |region: &str| {
        open.iter()
            .find(|(_, _, (r, _, _))| r == region)
            .map(|(id, _, _)| *id)
            .unwrap()
    };
    let (id_a, id_b) = (id_of("lab-a"), id_of("lab-b"));
    // One vantage_incident_active series per region, not per probe.
    let (_, text) = http_get(listen, "/metrics").await.unwrap();
    let mut active: Vec<(String, String)> = parse_exposition(&text)
        .into_iter()
        .filter(|m| m.name == "vantage_incident_active" && m.labels["scope"] == "silent")
        .map(|m| {
            (
                m.labels["src_region"].clone(),
                m.labels["incident_id"].clone(),
            )
        })
        .collect();
    active.sort();
    assert_eq!(
        active,
        [
            ("lab-a".to_string(), id_a.to_string()),
            ("lab-b".to_string(), id_b.to_string())
        ]
    );

    // lab-a's pod comes back under a new name: one silence ends (the one
    // whose last batch is older), in the same incident.
    a.push(start("lab-a", "a-4"));
    let (left, gone) = wait_for(
        "one of a-1 and a-2 replaced",
        Duration::from_secs(30),
        async || {
            let (f, st) = (findings().await, states().await);
            let pair = match (st["a-1"].as_str(), st["a-2"].as_str()) {
                ("replaced", "silent") => Some(("a-2", "a-1")),
                ("silent", "replaced") => Some(("a-1", "a-2")),
                _ => None,
            };
            let ok = pair.is_some_and(|(left, _)| {
                f == [
                    silence_of("lab-a", "1 of 3 probes", &[left]),
                    silence_of("lab-b", "1 of 2 probes", &["b-1"]),
                ]
            });
            (ok, (pair.unwrap_or_default(), (f, st)))
        },
    )
    .await
    .0;
    wait_for(
        "lab-a's incident narrowed",
        Duration::from_secs(30),
        async || {
            let i = incidents().await;
            let ok = i.iter().any(|(id, open, s)| {
                *id == id_a && *open && *s == silence_of("lab-a", "1 of 3 probes", &[left])
            });
            (ok, i)
        },
    )
    .await;
    let (_, text) = http_get(listen, "/metrics").await.unwrap();
    let samples = parse_exposition(&text);
    assert_eq!(
        value(
            &samples,
            "vantage_fleet_probe_silent",
            &[("probe_id", gone)]
        ),
        Some(0.0),
        "a replaced probe is not silent"
    );

    // A second comes back: lab-a has no silence left and its incident
    // resolves; lab-b's stays open, and no other incident was ever opened.
    a.push(start("lab-a", "a-5"));
    let all = wait_for(
        "lab-a resolved, lab-b open",
        Duration::from_secs(30),
        async || {
            let i = incidents().await;
            let ok = i.len() == 2
                && i.iter().any(|(id, open, _)| *id == id_a && !*open)
                && i.iter().any(|(id, open, _)| *id == id_b && *open);
            (ok, i)
        },
    )
    .await;
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(
        findings().await,
        [silence_of("lab-b", "1 of 2 probes", &["b-1"])]
    );
    let st = states().await;
    assert_eq!(
        (st["a-1"].as_str(), st["a-2"].as_str()),
        ("replaced", "replaced")
    );
    assert_eq!(st["b-1"], "silent");
    stop.cancel();
    task.await.unwrap().unwrap();
}

/// A probe is silent after a few of its own gaps between batches, not after
/// one figure for every probe: at the default `silent_after` (60 s), a
/// probe pushing every half second that is SIGKILLed is silent after the 30 s floor, before
/// a minute, and a live one never flaps to silent meanwhile. Before, it
/// took `silent_after` whatever the probe's cadence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_probe_is_silent_after_a_few_of_its_own_gaps() {
    let dir = Scratch::new("fleet-cadence");
    let listen = SocketAddr::from((LO, free_port()));
    let (stop, task) = collector(&dir, listen).await;
    let mut dying = probe_process_in(&dir, ("lab-a", TOKEN), "dying", listen, &[]);
    let _living = probe_process_in(&dir, ("lab-a", TOKEN), "living", listen, &[]);
    // Both report, for long enough that their cadence is known (and past
    // the 30 s floor, so a flap to silent would show).
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(32) {
        let states = probe_states(listen).await;
        if states.len() == 2 {
            assert!(states.values().all(|s| s == "reporting"), "{states:?}");
        } else {
            assert!(started.elapsed() < Duration::from_secs(5), "{states:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    dying.child.kill().unwrap();
    let killed = std::time::Instant::now();
    let states = wait_for(
        "the killed probe silent well before silent_after (60 s)",
        Duration::from_secs(52),
        async || {
            let states = probe_states(listen).await;
            (
                states.get("dying").map(String::as_str) == Some("silent"),
                states,
            )
        },
    )
    .await;
    assert_eq!(states["living"], "reporting", "{states:?}");
    eprintln!(
        "silent {:.1} s after the kill",
        killed.elapsed().as_secs_f64()
    );
    stop.cancel();
    task.await.unwrap().unwrap();
}
