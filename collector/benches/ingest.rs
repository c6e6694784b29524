//! Collector ingest benchmark: the real `vantage-collector` binary takes a
//! simulated fleet's batches over HTTP on loopback, as probes send them
//! (gzipped, in the binary encoding, one batch per probe every 2 s of
//! probing), and the same batches as gzipped JSON for reference.
//!
//! The fleet: `REGIONS` regions with one probe each, every probe measuring the
//! same `TARGETS` targets once a second (half of them names with a DNS lookup,
//! 1% of connects timing out), for `MINUTES` minutes of probe time. Batches are
//! built and compressed before the clock starts; senders replay them on
//! keep-alive connections as fast as the collector acknowledges.
//!
//! Printed, in one run:
//! - the wire: bytes per result, gzipped binary beside gzipped JSON;
//! - the decode floor: the same bodies gunzipped and decoded in this
//!   process on one thread, binary beside JSON, which every ingest pays
//!   before storing anything;
//! - ingest: results/s from first send to last acknowledgement, collector
//!   CPU per result (from /proc), peak RSS; sent binary, then as JSON for
//!   reference;
//! - disk: bytes per stored result after a checkpoint;
//! - read: one hour of rollups for the whole fleet through the store's read
//!   path, in a second store filled with one result per series per minute;
//!   and one evidence evaluation (every cell's recent window and baseline);
//!   the reports over the hour; a restart on the stored hour;
//! - day: a day of the fleet (at one round per target an hour, or every
//!   `VANTAGE_BENCH_DAY_EVERY` seconds), the reports over it, of the whole
//!   fleet and of one target, and a restart on it.
//!
//! ```sh
//! cargo bench -p vantage-collector --bench ingest            # 100 regions x 1k targets, 1 minute
//! VANTAGE_BENCH_REGIONS=10 cargo bench -p vantage-collector --bench ingest
//! VANTAGE_BENCH_EVALUATE_EVERY=1h cargo bench -p vantage-collector --bench ingest -- ingest   # ingest alone
//! VANTAGE_BENCH_EVALUATIONS=100 cargo bench -p vantage-collector --bench ingest -- read   # evaluations to profile
//! ```
//!
//! Selectors: `ingest`, `read`, `day`; anything starting with `-` is ignored.
//! Traffic: loopback only; every loop is bounded by the data built up front.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use vantage_collector::Store;
use vantage_collector::Window;
use vantage_collector::config::Retention;
use vantage_probe::outcome::{ConnectOutcome, DnsOutcome};
use vantage_probe::result::{ConnectAttempt, DnsObservation, Identity, RoundResult, Timestamp};
use vantage_probe::wire::{Batch, RESULTS_PATH, SCHEMA_VERSION, binary};

use common::Collector;
use common::fleet::{TargetSpec, targets};

const TOKEN_PREFIX: &str = "bench-token-0123456789-";
/// Seconds of probing per batch (the probe's default flush interval).
const BATCH_SECONDS: u64 = 2;
/// Connections sending at once (a fleet has a probe per region, each with
/// its own connection; more than the writer's group needs to fill up).
const SENDERS: usize = 16;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Fleet {
    regions: usize,
    targets: usize,
    minutes: usize,
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |s: &str| args.is_empty() || args.iter().any(|a| a == s);
    let fleet = Fleet {
        regions: env_or("VANTAGE_BENCH_REGIONS", 100),
        targets: env_or("VANTAGE_BENCH_TARGETS", 1_000),
        minutes: env_or("VANTAGE_BENCH_MINUTES", 1),
    };
    println!(
        "fleet: {} regions x {} targets, 1 s interval; evidence evaluated every {}; host: {} cores",
        fleet.regions,
        fleet.targets,
        evaluate_every(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if want("ingest") {
        ingest(&fleet);
    }
    if want("read") {
        read_hour(&fleet);
    }
    if want("day") {
        read_day(&fleet);
    }
}

/// One round of `t` at `at`, deterministic in `seed`.
fn round(t: &TargetSpec, at: SystemTime, rng: &mut fastrand::Rng) -> RoundResult {
    let started = Timestamp::from(at);
    let timeout = rng.u32(..100) == 0;
    let rtt = rng.u32(500..30_000);
    RoundResult {
        target: t.name.clone(),
        host: t.host.clone(),
        port: 443,
        labels: t.labels.clone(),
        started_at: started,
        dns: t.dns.then(|| DnsObservation {
            outcome: DnsOutcome::Ok,
            duration_us: rng.u64(300..3_000),
            addresses: 1,
        }),
        attempts: vec![ConnectAttempt {
            address: t.address,
            local: Some(SocketAddr::from(([10, 9, 0, 1], rng.u16(32_768..60_999)))),
            started_at: started,
            outcome: if timeout {
                ConnectOutcome::Timeout
            } else {
                ConnectOutcome::Ok
            },
            duration_us: if timeout {
                5_000_000
            } else {
                u64::from(rtt) + rng.u64(20..200)
            },
            rtt_us: (!timeout).then_some(rtt),
            syn_retransmits: if timeout { 3 } else { 0 },
            errno: timeout.then_some(110),
            icmp_from: None,
        }],
    }
}

struct Body {
    region: usize,
    results: usize,
    /// Gzipped JSON, as probes before the binary encoding send it.
    json: Vec<u8>,
    /// Gzipped binary, as probes send it to a collector that offers it.
    binary: Vec<u8>,
}

/// The encoding a run sends its bodies in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Binary,
    Json,
}

impl Body {
    fn bytes(&self, format: Format) -> &[u8] {
        match format {
            Format::Binary => &self.binary,
            Format::Json => &self.json,
        }
    }
}

/// Gzipped at `level`, as each sender does it: probes before the binary
/// encoding at the fastest level, probes now at the default.
fn gzip(bytes: &[u8], level: flate2::Compression) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 8), level);
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Every probe's batches for `seconds` of probing ending a minute ago,
/// `every` seconds between two rounds of a target, in send order (all
/// probes' first batch, then their second, ...). Built on every core.
fn build(fleet: &Fleet, seconds: u64, every: u64, per_batch: u64) -> Vec<Body> {
    let start = SystemTime::now() - Duration::from_secs(seconds + 60);
    // Align to a minute so that rollup rows fill whole minutes.
    let start = start
        - Duration::from_secs(
            start
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                % 60,
        );
    let specs = Arc::new(targets(fleet.targets));
    let batches_per_probe = seconds.div_ceil(per_batch) as usize;
    let jobs: Vec<(usize, usize)> = (0..batches_per_probe)
        .flat_map(|b| (0..fleet.regions).map(move |r| (b, r)))
        .collect();
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (jobs, next, specs) = (jobs.clone(), next.clone(), specs.clone());
            std::thread::spawn(move || {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(b, r)) = jobs.get(i) else { break };
                    let mut rng = fastrand::Rng::with_seed((b * 1_000_003 + r) as u64);
                    let mut results = Vec::new();
                    let first = b as u64 * per_batch;
                    let mut s = first;
                    while s < (first + per_batch).min(seconds) {
                        for (t, spec) in specs.iter().enumerate() {
                            // Staggered across the second, as the scheduler does.
                            let offset = Duration::from_micros(
                                (t as u64 * 1_000_000 / specs.len() as u64) % 1_000_000,
                            );
                            let at = start + Duration::from_secs(s) + offset;
                            results.push(round(spec, at, &mut rng));
                        }
                        s += every;
                    }
                    let n = results.len();
                    let batch = Batch {
                        schema: SCHEMA_VERSION,
                        probe: Identity {
                            src_region: format!("region-{r:03}"),
                            zone: None,
                            probe_id: format!("probe-{r:03}"),
                        },
                        stream: "bench".into(),
                        seq: b as u64 + 1,
                        sent_at: Timestamp::now(),
                        results,
                        last: false,
                    };
                    let json = gzip(
                        &serde_json::to_vec(&batch).unwrap(),
                        flate2::Compression::fast(),
                    );
                    let binary = gzip(&binary::encode(&batch), flate2::Compression::default());
                    out.push((
                        i,
                        Body {
                            region: r,
                            results: n,
                            json,
                            binary,
                        },
                    ));
                }
                out
            })
        })
        .collect();
    let mut all: Vec<(usize, Body)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, b)| b).collect()
}

/// How often the collector judges the evidence while it ingests: the
/// shipped default, 10 s, unless VANTAGE_BENCH_EVALUATE_EVERY says
/// otherwise (e.g. 1h, to measure ingest alone).
fn evaluate_every() -> String {
    std::env::var("VANTAGE_BENCH_EVALUATE_EVERY").unwrap_or_else(|_| "10s".into())
}

fn config(listen: SocketAddr, regions: usize) -> String {
    let mut text = format!(
        "[server]\nlisten = \"{listen}\"\ndata_dir = \"data\"\n\
         [limits]\nmax_batches_per_second = 100000\nmax_body_bytes = 67108864\n\
         max_results_per_batch = 1000000\n\
         [retention]\nrollups = \"30d\"\nfailures = \"90d\"\nreceipts = \"7d\"\n\
         [evidence]\nevaluate_every = \"{every}\"\nresolve_after = \"{every}\"\n",
        every = evaluate_every()
    );
    for r in 0..regions {
        text.push_str(&format!(
            "[[tokens]]\ntoken = \"{TOKEN_PREFIX}{r:03}\"\nsrc_region = \"region-{r:03}\"\n"
        ));
    }
    text
}

/// A keep-alive HTTP/1.1 connection to the collector.
struct Conn {
    stream: BufReader<TcpStream>,
    addr: SocketAddr,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        assert!(addr.ip().is_loopback());
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        Conn {
            stream: BufReader::new(s),
            addr,
        }
    }

    /// Posts one batch; returns the status.
    fn post(&mut self, token: &str, body: &[u8], format: Format) -> u16 {
        let content_type = match format {
            Format::Binary => binary::CONTENT_TYPE,
            Format::Json => "application/json",
        };
        let head = format!(
            "POST {RESULTS_PATH} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: {content_type}\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let s = self.stream.get_mut();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut line = String::new();
        self.stream.read_line(&mut line).unwrap();
        let status = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut length = 0;
        loop {
            line.clear();
            self.stream.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).unwrap();
        status
    }
}

/// Sends every body on `SENDERS` connections, as `format`; returns the
/// wall time.
fn send_all(addr: SocketAddr, bodies: &Arc<Vec<Body>>, format: Format) -> Duration {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (bodies, next) = (bodies.clone(), next.clone());
            std::thread::spawn(move || {
                let mut conn = Conn::new(addr);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(b) = bodies.get(i) else { break };
                    let token = format!("{TOKEN_PREFIX}{:03}", b.region);
                    let status = conn.post(&token, b.bytes(format), format);
                    assert_eq!(status, 200, "batch {i} refused");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    start.elapsed()
}

/// Folds the WAL into the database file, so that the size on disk is what
/// the data takes rather than where the last checkpoint happened to be.
fn checkpoint(dir: &Path) {
    let conn = rusqlite::Connection::open(dir.join("vantage.db")).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn scratch(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vantage-bench-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ingest(fleet: &Fleet) {
    // A first minute fills the dictionaries (targets, series) and is
    // measured apart; the figures are for the minutes after it, which is
    // what a running collector does all day.
    let seconds = (fleet.minutes as u64 + 1) * 60;
    let t = Instant::now();
    let mut bodies = build(fleet, seconds, 1, BATCH_SECONDS);
    let first_minute = fleet.regions * (60 / BATCH_SECONDS as usize);
    let rest = Arc::new(bodies.split_off(first_minute));
    let first = Arc::new(bodies);
    let results: usize = rest.iter().map(|b| b.results).sum();
    let per_result =
        |f: Format| rest.iter().map(|b| b.bytes(f).len()).sum::<usize>() as f64 / results as f64;
    println!(
        "built {} batches ({results} results measured after a first minute) in {:.1} s",
        first.len() + rest.len(),
        t.elapsed().as_secs_f64()
    );
    println!(
        "wire: {:.1} B/result gzipped binary; reference: {:.1} B/result gzipped JSON",
        per_result(Format::Binary),
        per_result(Format::Json)
    );

    // What decoding alone costs, one thread: the binary encoding, and the
    // JSON one as the reference.
    let sample = rest.len().min(200);
    let decode = |f: Format| {
        let t = Instant::now();
        let mut decoded = 0;
        for b in &rest[..sample] {
            let mut raw = Vec::new();
            flate2::read::GzDecoder::new(b.bytes(f))
                .read_to_end(&mut raw)
                .unwrap();
            let batch: Batch = match f {
                Format::Json => serde_json::from_slice(&raw).unwrap(),
                Format::Binary => binary::decode(
                    &raw,
                    binary::Bounds {
                        max_rounds: usize::MAX,
                        max_attempts_per_round: 64,
                        max_attempts: usize::MAX,
                    },
                )
                .unwrap(),
            };
            decoded += batch.results.len();
        }
        t.elapsed().as_secs_f64() / decoded as f64
    };
    let (bin, json) = (decode(Format::Binary), decode(Format::Json));
    println!(
        "decode: gunzip + binary decode only, 1 thread: {:.2} us/result, {:.0} results/s; reference: gunzip + JSON decode: {:.2} us/result, {:.0} results/s",
        bin * 1e6,
        1.0 / bin,
        json * 1e6,
        1.0 / json
    );

    for format in [Format::Binary, Format::Json] {
        ingest_as(fleet, &first, &rest, results, format);
    }
}

/// Ingest of `first` (measured apart) then `rest` (`results` results), all
/// sent as `format`.
fn ingest_as(
    fleet: &Fleet,
    first: &Arc<Vec<Body>>,
    rest: &Arc<Vec<Body>>,
    results: usize,
    format: Format,
) {
    let (label, dir) = match format {
        Format::Binary => ("ingest", scratch("ingest")),
        Format::Json => ("reference: ingest as JSON", scratch("ingest-json")),
    };
    let collector = Collector::start(&dir, |listen| config(listen, fleet.regions));
    let wall = send_all(collector.addr, first, format);
    let n: usize = first.iter().map(|b| b.results).sum();
    println!(
        "{label}: first minute (new targets and series): {n} results in {:.2} s: {:.0} results/s",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64()
    );
    collector.stop();
    checkpoint(&dir.join("data"));
    let before = dir_bytes(&dir.join("data"));

    let collector = Collector::start(&dir, |listen| config(listen, fleet.regions));
    let cpu0 = collector.cpu();
    let wall = send_all(collector.addr, rest, format);
    let cpu = collector.cpu() - cpu0;
    let hwm = collector.status_kib("VmHWM:");
    let rss = collector.status_kib("VmRSS:");
    println!(
        "{label}: {results} results in {:.2} s: {:.0} results/s, collector CPU {:.2} us/result ({:.2} cores), RSS {:.1} MiB (peak {:.1} MiB)",
        wall.as_secs_f64(),
        results as f64 / wall.as_secs_f64(),
        cpu / results as f64 * 1e6,
        cpu / wall.as_secs_f64(),
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    collector.stop();
    if format == Format::Binary {
        checkpoint(&dir.join("data"));
        let after = dir_bytes(&dir.join("data"));
        println!(
            "disk: {:.1} MiB after the first minute, {:.1} MiB after all: {:.2} bytes per result after rollup",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            (after - before) as f64 / results as f64
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `/proc/self/status` field in KiB (0 if absent).
fn self_status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn read_hour(fleet: &Fleet) {
    // One result per series per minute for an hour: every rollup row an
    // hour of the whole fleet has, at a sixtieth of the results.
    let t = Instant::now();
    let bodies = Arc::new(build(fleet, 3600, 60, 600));
    let results: usize = bodies.iter().map(|b| b.results).sum();
    println!(
        "read: built an hour of {} series-minutes in {:.1} s",
        results,
        t.elapsed().as_secs_f64()
    );
    let dir = scratch("read");
    let collector = Collector::start(&dir, |listen| config(listen, fleet.regions));
    let wall = send_all(collector.addr, &bodies, Format::Binary);
    println!(
        "read: stored in {:.1} s ({:.0} results/s at one per series-minute)",
        wall.as_secs_f64(),
        results as f64 / wall.as_secs_f64()
    );
    collector.stop();

    let store = Store::open(
        &dir.join("data"),
        Retention {
            rollups: Duration::from_secs(30 * 86_400),
            failures: Duration::from_secs(90 * 86_400),
            receipts: Duration::from_secs(7 * 86_400),
        },
    )
    .unwrap();
    let window = Window {
        from: Some(SystemTime::now() - Duration::from_secs(3 * 3600)),
        to: Some(SystemTime::now()),
        src_region: None,
        target: None,
        limit: usize::MAX,
    };
    let t = Instant::now();
    let rows = store.rollups(&window).unwrap();
    let took = t.elapsed();
    println!(
        "read: one hour of rollups for the whole fleet: {} rows in {:.2} s ({:.2} us/row)",
        rows.len(),
        took.as_secs_f64(),
        took.as_secs_f64() / rows.len().max(1) as f64 * 1e6
    );
    // The evidence evaluation reads the same rows (recent window and
    // baseline) every evaluate_every.
    let t = Instant::now();
    let assessment = vantage_collector::assess(
        &store,
        &[],
        SystemTime::now(),
        vantage_collector::Params::default(),
        &vantage_collector::Held::default(),
    )
    .unwrap();
    println!(
        "reference: one evaluation from the store: {} cells ({} findings) in {:.2} s",
        assessment.cells.len(),
        assessment.findings.len(),
        t.elapsed().as_secs_f64()
    );
    drop(assessment);
    // The collector's way: the cells kept in memory as batches are
    // stored, loaded from the store once at start.
    let rss0 = self_status_kib("RssAnon:");
    let t = Instant::now();
    let book = vantage_collector::Book::from_store(
        &store,
        vantage_collector::Params::default(),
        SystemTime::now(),
    )
    .unwrap();
    let (series, bytes) = book.size();
    println!(
        "evidence: the cells loaded from the store in {:.2} s: {series} series, {:.1} MiB of minutes ({:.0} bytes per series), heap +{:.1} MiB (RssAnon)",
        t.elapsed().as_secs_f64(),
        bytes as f64 / 1048576.0,
        bytes as f64 / series.max(1) as f64,
        (self_status_kib("RssAnon:").saturating_sub(rss0)) as f64 / 1024.0
    );
    // Three by default; more to profile them (VANTAGE_BENCH_EVALUATIONS).
    // Each as the loop makes it: judged, then what readers are shown of it
    // (each target's view from every region) made before the cells go.
    for i in 0..env_or("VANTAGE_BENCH_EVALUATIONS", 3) {
        let t = Instant::now();
        let a = book.assess(SystemTime::now(), &vantage_collector::Held::default());
        let judged = t.elapsed();
        let (cells, findings) = (a.cells.len(), a.findings.len());
        drop(vantage_collector::Judgment::of(a));
        let took = t.elapsed();
        println!(
            "evidence: one evaluation from memory ({}): {cells} cells ({findings} findings) in {:.1} ms ({:.1} ms judging, {:.1} ms making what readers are shown and freeing the cells)",
            if i == 0 { "first" } else { "again" },
            took.as_secs_f64() * 1e3,
            judged.as_secs_f64() * 1e3,
            (took - judged).as_secs_f64() * 1e3,
        );
    }
    let mut window = window;
    window.src_region = Some("region-000".into());
    let t = Instant::now();
    let rows = store.rollups(&window).unwrap();
    println!(
        "read: one hour of one region: {} rows in {:.3} s",
        rows.len(),
        t.elapsed().as_secs_f64()
    );
    drop((rows, book, store));
    let (from, to) = (
        SystemTime::now() - Duration::from_secs(2 * 3600),
        SystemTime::now(),
    );
    reports(&dir, "the hour", from, to);
    start_up(&dir, fleet, "an hour");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The report over `from`..`to` of the store of `dir`, as the command
/// line makes it (a process of its own, reading the data directory): of
/// the whole fleet (its region x group matrix, and per region and minute
/// every target), and of one target (the matrix, and that target's
/// minutes: what an incident's report reads).
fn reports(dir: &Path, what: &str, from: SystemTime, to: SystemTime) {
    for target in [None, Some("svc-0001")] {
        let t = Instant::now();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vantage-collector"));
        cmd.args(["report", "--format", "json", "--data-dir"])
            .arg(dir.join("data"))
            .arg("--from")
            .arg(humantime::format_rfc3339_seconds(from).to_string())
            .arg("--to")
            .arg(humantime::format_rfc3339_seconds(to).to_string());
        if let Some(target) = target {
            cmd.args(["--target", target]);
        }
        let out = cmd.output().unwrap();
        let took = t.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let count = |key: &str| report[key].as_array().map_or(0, Vec::len);
        let attempts: u64 = report["matrix"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["attempts"].as_u64())
            .sum();
        println!(
            "report: {what} of {}, from the command line: {:.3} s ({} matrix cells over {attempts} attempts; {} regions' minutes)",
            target.unwrap_or("the whole fleet"),
            took.as_secs_f64(),
            count("matrix"),
            count("series"),
        );
    }
}

/// A day of the fleet at one round per target an hour, before the hour
/// `read` builds at one a minute: every hour of the day has rows in every
/// region and group, as a day of any density has. The reports of the day
/// read its 24 hours' rows of each region and group, and the minutes of
/// one target's series (looked up one by one, whether stored or not).
fn read_day(fleet: &Fleet) {
    // Seconds between two rounds of a target: 3600 by default; 60 for a
    // day at full density (every minute row a day of the fleet has).
    let every = env_or("VANTAGE_BENCH_DAY_EVERY", 3600) as u64;
    let t = Instant::now();
    let day = build(fleet, 24 * 3600, every, (4 * every).max(600));
    let results: usize = day.iter().map(|b| b.results).sum();
    let dir = scratch("day");
    let collector = Collector::start(&dir, |listen| config(listen, fleet.regions));
    send_all(collector.addr, &Arc::new(day), Format::Binary);
    println!(
        "day: built and stored a day at one round per target every {every} s ({results} results) in {:.1} s",
        t.elapsed().as_secs_f64(),
    );
    collector.stop();
    let to = SystemTime::now();
    reports(&dir, "the day", to - Duration::from_secs(24 * 3600), to);
    start_up(&dir, fleet, "a day");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A collector started on the store of `dir` (`stored` of the fleet): how
/// long until it listens, answers `/-/healthy`, is ready (its evidence
/// has loaded the recent window) and has judged once (its first tick).
fn start_up(dir: &std::path::Path, fleet: &Fleet, stored: &str) {
    let t = Instant::now();
    let collector = Collector::start(dir, |listen| config(listen, fleet.regions));
    let listening = t.elapsed();
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(300);
        while !done() {
            assert!(Instant::now() < deadline, "{what} within 5 min");
            std::thread::sleep(Duration::from_millis(20));
        }
        t.elapsed()
    };
    let ok = |path: &str| common::get(collector.addr, path).is_some_and(|(s, _)| s == 200);
    let healthy = until("healthy", &|| ok("/-/healthy"));
    let ready = until("ready", &|| ok("/-/ready"));
    let judged = until("the first evaluation", &|| {
        common::get(collector.addr, "/metrics").is_some_and(|(_, m)| {
            m.lines().any(|l| {
                l.starts_with("vantage_evidence_evaluations_total{result=\"ok\"} ")
                    && !l.ends_with(" 0")
            })
        })
    });
    println!(
        "start-up on {stored} of the fleet: listening in {:.2} s, healthy in {:.2} s, ready (the evidence loaded) in {:.2} s, judged (the first tick, evaluate_every {}) in {:.2} s; RSS {:.0} MiB",
        listening.as_secs_f64(),
        healthy.as_secs_f64(),
        ready.as_secs_f64(),
        evaluate_every(),
        judged.as_secs_f64(),
        collector.status_kib("VmRSS:") as f64 / 1024.0
    );
    collector.stop();
}
