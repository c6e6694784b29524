//! The fleet load test: 1,000 probe streams x 100 targets each against one
//! real `vantage-collector serve`, in real time, with the evidence loop on
//! and the collector killed with SIGKILL twice.
//!
//! - **The collector:** the binary as cargo builds it for the bench, on
//!   127.0.0.1, its own scratch data dir, the evidence loop at its default
//!   `evaluate_every`, one token per region, `max_batches_per_second = 5`
//!   per probe (a probe sends one batch per 2 s, so a refusal would be a
//!   finding). At 1/3 and 2/3 of the run it is killed with SIGKILL and
//!   started again at once on the same data dir and port.
//! - **The streams:** `VANTAGE_LOAD_STREAMS` probes (default 1,000) spread
//!   over `VANTAGE_LOAD_REGIONS` regions (default 10); each has its own
//!   stream id and seq from 1 and probes the same `VANTAGE_LOAD_TARGETS`
//!   targets as its region's other probes (default 100; half of them names
//!   with a DNS lookup). One round per target per second, sealed every 2 s
//!   (the probe's default flush interval) into a `Batch` gzipped as the
//!   probe's spool does, and posted as the probe's sender does: bearer
//!   token, `Content-Encoding: gzip`, the sent-at header, the oldest
//!   unacknowledged batch first, again (same seq) after a backoff until it
//!   is acknowledged, `Retry-After` honoured on 429 and 503. Outcomes are
//!   mostly ok, 1% timeouts, 0.5% failed lookups, and one path (region 0 to
//!   the first target) refused for part of the run, so the evidence loop has
//!   an incident to open.
//! - **Connections:** one tokio runtime on two threads runs every stream;
//!   `CONNECTIONS` (48) requests are in flight at most, on keep-alive
//!   connections of the probe's own HTTP client. A real fleet has one per
//!   probe; on a 2-core machine shared with the collector, 1,000 mostly idle
//!   sockets would measure the sockets, not the ingest.
//! - **Printed:** each collector incarnation's peak (`VmHWM`) and final RSS
//!   and its RSS every 10 s; acknowledgement latency (request sent to 200)
//!   p50/p99/max for the first minute (the reference: before any kill), for
//!   each third of the run and the whole run, and sealed-to-acknowledged
//!   (which includes the outages); results/s; every response by status and
//!   reason; then, from the store opened after a clean stop: results sent
//!   against stored, lost and doubled.
//!
//! ```sh
//! cargo bench -p vantage-tests --bench load                 # 10 min, 1,000 streams x 100 targets
//! VANTAGE_LOAD_EVALUATE_EVERY=1h cargo bench -p vantage-tests --bench load   # ingest alone
//! VANTAGE_LOAD_SECONDS=90 VANTAGE_LOAD_STREAMS=200 cargo bench -p vantage-tests --bench load
//! ```
//!
//! Exits 1 naming what failed when the collector does not come back within
//! 30 s, the streams' backlog does not drain within 120 s of the end,
//! a batch stays unacknowledged, a result is lost or doubled, or a batch is
//! refused for anything but a rate limit. Traffic: loopback only; every
//! loop is bounded by the run's length plus those limits.

/// The simulated fleet the collector's benchmarks use too.
#[path = "../../collector/benches/common/fleet.rs"]
mod fleet;

use fleet::{TargetSpec, targets};

use std::collections::{BTreeMap, VecDeque};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Semaphore;
use vantage_collector::Store;
use vantage_collector::Window;
use vantage_collector::config::Retention;
use vantage_probe::outcome::{ConnectOutcome, DnsOutcome};
use vantage_probe::result::{ConnectAttempt, DnsObservation, Identity, RoundResult, Timestamp};
use vantage_probe::wire::{Ack, Batch, RESULTS_PATH, Refusal, SCHEMA_VERSION, SENT_AT_HEADER};
use vantage_tests::{Scratch, bin, free_port, gzip, procfs};

const TOKEN_PREFIX: &str = "load-token-0123456789-";
/// Seconds of probing per batch (the probe's default flush interval).
const BATCH_SECONDS: u64 = 2;
/// Per probe; a probe sends one batch per `BATCH_SECONDS`, a few more
/// while it backfills.
const MAX_BATCHES_PER_SECOND: u32 = 5;
/// Requests in flight at once, each on a keep-alive connection.
const CONNECTIONS: usize = 48;
/// The probe's default `collector.timeout`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The probe's backoff bounds.
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// How long a killed collector may take to listen again.
const RESTART_LIMIT: Duration = Duration::from_secs(30);
/// How long after the last batch is sealed every stream must be drained.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// The reference: acknowledgements in the first minute (before any kill).
const REFERENCE: Duration = Duration::from_secs(60);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The fleet and the run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    seconds: u64,
    regions: usize,
    streams: usize,
    targets: usize,
}

impl Plan {
    fn from_env() -> Plan {
        let plan = Plan {
            seconds: env_or("VANTAGE_LOAD_SECONDS", 600).max(6 * BATCH_SECONDS),
            regions: env_or("VANTAGE_LOAD_REGIONS", 10).max(1) as usize,
            streams: env_or("VANTAGE_LOAD_STREAMS", 1_000).max(1) as usize,
            targets: env_or("VANTAGE_LOAD_TARGETS", 100).max(1) as usize,
        };
        assert!(plan.streams >= plan.regions, "fewer streams than regions");
        plan
    }

    fn windows(&self) -> u64 {
        self.seconds / BATCH_SECONDS
    }

    /// The moments of the two kills, from the start.
    fn kills(&self) -> [Duration; 2] {
        let s = self.seconds;
        [Duration::from_secs(s / 3), Duration::from_secs(2 * s / 3)]
    }

    /// When region 0's probes find the first target refusing: from 10% to
    /// 50% of the run, across the first kill.
    fn fault(&self) -> (Duration, Duration) {
        let s = self.seconds as f64;
        (
            Duration::from_secs_f64(s * 0.1),
            Duration::from_secs_f64(s * 0.5),
        )
    }
}

fn region_name(r: usize) -> String {
    format!("region-{r:02}")
}

/// Rounds, connect attempts and DNS lookups: what a batch carries and what
/// the store must hold of it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    rounds: u64,
    attempts: u64,
    lookups: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.rounds += o.rounds;
        self.attempts += o.attempts;
        self.lookups += o.lookups;
    }
}

/// One round of `t` at `at`.
fn round(t: &TargetSpec, at: SystemTime, refused: bool, rng: &mut fastrand::Rng) -> RoundResult {
    let started = Timestamp::from(at);
    let dns = t.dns.then(|| {
        let failed = rng.u32(..200) == 0;
        let outcome = match (failed, rng.bool()) {
            (false, _) => DnsOutcome::Ok,
            (true, true) => DnsOutcome::Timeout,
            (true, false) => DnsOutcome::Servfail,
        };
        DnsObservation {
            outcome,
            duration_us: if outcome == DnsOutcome::Timeout {
                2_000_000
            } else {
                rng.u64(300..3_000)
            },
            addresses: u32::from(outcome == DnsOutcome::Ok),
        }
    });
    let resolved = dns.as_ref().is_none_or(|d| d.outcome == DnsOutcome::Ok);
    let timeout = !refused && rng.u32(..100) == 0;
    let rtt = rng.u32(500..30_000);
    let outcome = if refused {
        ConnectOutcome::Refused
    } else if timeout {
        ConnectOutcome::Timeout
    } else {
        ConnectOutcome::Ok
    };
    let ok = outcome == ConnectOutcome::Ok;
    let attempts = resolved
        .then(|| ConnectAttempt {
            address: t.address,
            local: Some(SocketAddr::from(([10, 9, 0, 1], rng.u16(32_768..60_999)))),
            started_at: started,
            outcome,
            duration_us: match outcome {
                ConnectOutcome::Timeout => 5_000_000,
                ConnectOutcome::Refused => u64::from(rtt),
                _ => u64::from(rtt) + rng.u64(20..200),
            },
            rtt_us: ok.then_some(rtt),
            syn_retransmits: if timeout { 3 } else { 0 },
            errno: match outcome {
                ConnectOutcome::Timeout => Some(110),
                ConnectOutcome::Refused => Some(111),
                _ => None,
            },
            icmp_from: None,
        })
        .into_iter()
        .collect();
    RoundResult {
        target: t.name.clone(),
        host: t.host.clone(),
        port: 443,
        labels: t.labels.clone(),
        started_at: started,
        dns,
        attempts,
    }
}

/// A sealed batch waiting for its acknowledgement.
struct Pending {
    seq: u64,
    body: Vec<u8>,
    counts: Counts,
    sealed: Instant,
}

/// What one stream saw; merged at the end.
#[derive(Default)]
struct Tally {
    /// Responses by "status reason" (`200 stored`, `429 rate_limited`,
    /// `error connect`, ...).
    responses: BTreeMap<String, u64>,
    /// (seconds from the start at the acknowledgement, request latency µs).
    latency: Vec<(f32, u32)>,
    /// Sealed to acknowledged, µs.
    waited: Vec<u32>,
    sealed: Counts,
    acked: Counts,
    /// The sum of the acknowledgements' `stored`.
    ack_stored: u64,
    batches_sealed: u64,
    batches_acked: u64,
    duplicates: u64,
    /// Refused for good (a 4xx that sending again cannot help).
    rejected: u64,
    unacked_at_end: u64,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        for (k, v) in o.responses {
            *self.responses.entry(k).or_default() += v;
        }
        self.latency.extend(o.latency);
        self.waited.extend(o.waited);
        self.sealed += o.sealed;
        self.acked += o.acked;
        self.ack_stored += o.ack_stored;
        self.batches_sealed += o.batches_sealed;
        self.batches_acked += o.batches_acked;
        self.duplicates += o.duplicates;
        self.rejected += o.rejected;
        self.unacked_at_end += o.unacked_at_end;
    }
}

/// What the streams share: the fleet, the client, the clock.
struct Shared {
    plan: Plan,
    targets: Vec<TargetSpec>,
    url: String,
    client: reqwest::Client,
    connections: Semaphore,
    /// Batches sealed and acknowledged so far, for the progress lines.
    sealed: AtomicU64,
    acked: AtomicU64,
    start: Instant,
    wall_start: SystemTime,
}

/// One probe: seals a batch every 2 s of its schedule and sends its
/// oldest unacknowledged batch until the collector takes it.
async fn stream(shared: Arc<Shared>, index: usize) -> Tally {
    let plan = shared.plan;
    let region = index % plan.regions;
    let identity = Identity {
        src_region: region_name(region),
        zone: None,
        probe_id: format!("probe-{:04}", index / plan.regions),
    };
    let auth = format!("Bearer {TOKEN_PREFIX}{:02}", region);
    let stream_id = format!("load-{index:04}-{:08x}", fastrand::u32(..));
    let mut rng = fastrand::Rng::with_seed(index as u64);
    // Streams start staggered across a batch interval, as probes do.
    let stagger = Duration::from_secs(BATCH_SECONDS) * index as u32 / plan.streams as u32;
    let epoch = shared.start + stagger;
    let (fault_from, fault_to) = plan.fault();
    let drain_end = shared.start + Duration::from_secs(plan.seconds) + stagger + DRAIN_LIMIT;
    let mut tally = Tally::default();
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut window = 0;
    let mut retry_at = Instant::now();
    let mut backoff = Duration::ZERO;
    loop {
        let now = Instant::now();
        // Seal every window that has ended (more than one when a post held
        // this task up: the batches are the same, only sealed later).
        while window < plan.windows()
            && epoch + Duration::from_secs((window + 1) * BATCH_SECONDS) <= now
        {
            let mut results = Vec::with_capacity(plan.targets * BATCH_SECONDS as usize);
            let mut counts = Counts::default();
            for s in window * BATCH_SECONDS..(window + 1) * BATCH_SECONDS {
                for (t, spec) in shared.targets.iter().enumerate() {
                    let offset = stagger
                        + Duration::from_secs(s)
                        + Duration::from_secs(1) * t as u32 / plan.targets as u32;
                    let refused =
                        region == 0 && t == 0 && offset >= fault_from && offset < fault_to;
                    let r = round(spec, shared.wall_start + offset, refused, &mut rng);
                    counts.rounds += 1;
                    counts.attempts += r.attempts.len() as u64;
                    counts.lookups += u64::from(r.dns.is_some());
                    results.push(r);
                }
            }
            window += 1;
            let batch = Batch {
                schema: SCHEMA_VERSION,
                probe: identity.clone(),
                stream: stream_id.clone(),
                seq: window,
                sent_at: Timestamp::now(),
                results,
                last: false,
            };
            queue.push_back(Pending {
                seq: window,
                body: gzip(&serde_json::to_vec(&batch).unwrap()),
                counts,
                sealed: Instant::now(),
            });
            tally.batches_sealed += 1;
            tally.sealed += counts;
            shared.sealed.fetch_add(1, Ordering::Relaxed);
        }
        if window == plan.windows() && queue.is_empty() {
            break;
        }
        if now >= drain_end {
            tally.unacked_at_end = queue.len() as u64;
            break;
        }
        let next_seal = epoch + Duration::from_secs((window + 1) * BATCH_SECONDS);
        let Some(front) = queue.front() else {
            tokio::time::sleep_until(next_seal.into()).await;
            continue;
        };
        if now < retry_at {
            let until = if window < plan.windows() {
                retry_at.min(next_seal)
            } else {
                retry_at
            };
            tokio::time::sleep_until(until.min(drain_end).into()).await;
            continue;
        }
        let permit = shared.connections.acquire().await.unwrap();
        let sent = Instant::now();
        let response = shared
            .client
            .post(&shared.url)
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .header(SENT_AT_HEADER, Timestamp::now().to_string())
            .body(front.body.clone())
            .send()
            .await;
        let answer = match response {
            Ok(r) => {
                let status = r.status().as_u16();
                let retry_after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                r.text().await.map(|text| (status, retry_after, text))
            }
            Err(e) => Err(e),
        };
        let took = sent.elapsed();
        drop(permit);
        let now = Instant::now();
        let mut count = |key: String| *tally.responses.entry(key).or_default() += 1;
        match answer {
            Err(e) => {
                let kind = if e.is_connect() {
                    "connect"
                } else if e.is_timeout() {
                    "timeout"
                } else {
                    "other"
                };
                count(format!("error {kind}"));
                backoff = (backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                retry_at = now + backoff;
            }
            Ok((200, _, text)) => match serde_json::from_str::<Ack>(&text) {
                Ok(ack) if ack.seq == front.seq => {
                    count(format!(
                        "200 {}",
                        if ack.duplicate { "duplicate" } else { "stored" }
                    ));
                    let p = queue.pop_front().unwrap();
                    tally.batches_acked += 1;
                    shared.acked.fetch_add(1, Ordering::Relaxed);
                    tally.duplicates += u64::from(ack.duplicate);
                    tally.ack_stored += u64::from(ack.stored);
                    tally.acked += p.counts;
                    tally
                        .latency
                        .push(((now - shared.start).as_secs_f32(), took.as_micros() as u32));
                    tally
                        .waited
                        .push((now - p.sealed).as_micros().min(u32::MAX as u128) as u32);
                    backoff = Duration::ZERO;
                    retry_at = now;
                }
                _ => {
                    count("200 unreadable".into());
                    backoff = (backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                    retry_at = now + backoff;
                }
            },
            Ok((status, retry_after, text)) => {
                let reason = serde_json::from_str::<Refusal>(&text)
                    .map_or_else(|_| "unknown".to_string(), |r| r.reason);
                count(format!("{status} {reason}"));
                match status {
                    400 | 413 | 415 | 422 => {
                        // Refused for good: the probe sets it aside.
                        queue.pop_front();
                        tally.rejected += 1;
                        backoff = Duration::ZERO;
                        retry_at = now;
                    }
                    429 | 503 => {
                        let doubled = (backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                        backoff =
                            retry_after.map_or(doubled, |r| r.clamp(MIN_BACKOFF, MAX_RETRY_AFTER));
                        retry_at = now + backoff;
                    }
                    _ => {
                        backoff = (backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                        retry_at = now + backoff;
                    }
                }
            }
        }
    }
    tally
}

/// How often the collector judges the evidence: its default (10 s) unless
/// VANTAGE_LOAD_EVALUATE_EVERY says otherwise (e.g. 1h, for ingest alone).
fn evaluate_every() -> Option<String> {
    std::env::var("VANTAGE_LOAD_EVALUATE_EVERY").ok()
}

fn config(dir: &Path, listen: SocketAddr, regions: usize) -> PathBuf {
    let mut text = format!(
        "[server]\nlisten = \"{listen}\"\ndata_dir = \"data\"\n\
         [limits]\nmax_batches_per_second = {MAX_BATCHES_PER_SECOND}\n"
    );
    if let Some(every) = evaluate_every() {
        text.push_str(&format!(
            "[evidence]\nevaluate_every = \"{every}\"\nresolve_after = \"{every}\"\n"
        ));
    }
    for r in 0..regions {
        text.push_str(&format!(
            "[[tokens]]\ntoken = \"{TOKEN_PREFIX}{r:02}\"\nsrc_region = \"{}\"\n",
            region_name(r)
        ));
    }
    let path = dir.join("collector.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// One run of the collector process, from start to its kill or stop.
struct Incarnation {
    child: Child,
    started: Instant,
    /// (seconds from the run's start, VmRSS KiB).
    samples: Vec<(u64, u64)>,
}

/// A collector incarnation's figures once it ended.
struct Ended {
    how: String,
    lived: Duration,
    peak_kib: u64,
    final_kib: u64,
    cpu: f64,
    samples: Vec<(u64, u64)>,
}

fn start(
    binary: &Path,
    config: &Path,
    log: &Path,
    addr: SocketAddr,
) -> Result<Incarnation, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = Command::new(binary)
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting vantage-collector: {e}"))?;
    let mut inc = Incarnation {
        child,
        started: Instant::now(),
        samples: Vec::new(),
    };
    let deadline = inc.started + RESTART_LIMIT;
    while TcpStream::connect(addr).is_err() {
        if let Some(status) = inc.child.try_wait().unwrap() {
            return Err(format!("the collector exited at start: {status}"));
        }
        if Instant::now() > deadline {
            let _ = inc.child.kill();
            let _ = inc.child.wait();
            return Err(format!(
                "the collector did not listen within {RESTART_LIMIT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(inc)
}

impl Incarnation {
    /// Its figures now, just before it ends.
    fn figures(&self, how: &str) -> Ended {
        let pid = self.child.id();
        Ended {
            how: how.to_string(),
            lived: self.started.elapsed(),
            peak_kib: procfs::status_kib(pid, "VmHWM:").unwrap_or(0),
            final_kib: procfs::status_kib(pid, "VmRSS:").unwrap_or(0),
            cpu: procfs::cpu_seconds(pid).unwrap_or(0.0),
            samples: self.samples.clone(),
        }
    }

    fn kill_9(mut self) -> Ended {
        let mut e = self.figures("killed with SIGKILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
        e.samples = std::mem::take(&mut self.samples);
        e
    }

    /// SIGTERM, then up to a minute for a clean exit.
    fn stop(mut self) -> Result<Ended, String> {
        let e = self.figures("stopped with SIGTERM");
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return if status.success() {
                    Ok(e)
                } else {
                    Err(format!("the collector exited {status} on SIGTERM"))
                };
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err("the collector did not stop within 60 s of SIGTERM".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// p50, p99 and max of `v` (µs) in ms.
fn spread(mut v: Vec<u32>) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.sort_unstable();
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} acks)",
        at(0.5) as f64 / 1e3,
        at(0.99) as f64 / 1e3,
        v[v.len() - 1] as f64 / 1e3,
        v.len()
    )
}

fn main() {
    let plan = Plan::from_env();
    let mut failures: Vec<String> = Vec::new();
    println!(
        "load: {} streams in {} regions x {} targets, 1 round/s per target ({} results/s), \
         a batch per {BATCH_SECONDS} s, {} s; {CONNECTIONS} connections; kills at {:?}; \
         evidence evaluated every {}; load average {} on {} cores",
        plan.streams,
        plan.regions,
        plan.targets,
        plan.streams * plan.targets,
        plan.seconds,
        plan.kills(),
        evaluate_every().unwrap_or_else(|| "10s (the default)".into()),
        procfs::load_average(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let binary = bin("vantage-collector");
    let dir = Scratch::new("load");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    assert!(addr.ip().is_loopback());
    let config = config(&dir.path, addr, plan.regions);
    let log = dir.path.join("collector.log");
    let mut current = match start(&binary, &config, &log, addr) {
        Ok(c) => c,
        Err(e) => fail(vec![e], &log),
    };
    let mut ended: Vec<Ended> = Vec::new();

    let shared = Arc::new(Shared {
        plan,
        targets: targets(plan.targets),
        url: format!("http://{addr}{RESULTS_PATH}"),
        client: vantage_probe::http_client(REQUEST_TIMEOUT, None, false).unwrap(),
        connections: Semaphore::new(CONNECTIONS),
        sealed: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        start: Instant::now(),
        wall_start: SystemTime::now(),
    });
    let done = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let streams = {
        let (shared, done, tally) = (shared.clone(), done.clone(), tally.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let tasks: Vec<_> = (0..shared.plan.streams)
                    .map(|i| tokio::spawn(stream(shared.clone(), i)))
                    .collect();
                for t in tasks {
                    let t = t.await.unwrap();
                    tally.lock().unwrap().merge(t);
                }
            });
            done.store(true, Ordering::Release);
        })
    };

    // The supervisor: RSS every 10 s, the two kills, a crash noticed.
    let start_at = shared.start;
    let hard_end =
        start_at + Duration::from_secs(plan.seconds) + DRAIN_LIMIT + Duration::from_secs(30);
    let mut kills = plan.kills().into_iter().peekable();
    let mut next_sample = start_at;
    let mut outages = Vec::new();
    while !done.load(Ordering::Acquire) {
        let now = Instant::now();
        if now > hard_end {
            failures.push("the streams did not end within their bound".into());
            break;
        }
        if now >= next_sample {
            let rss = procfs::status_kib(current.child.id(), "VmRSS:").unwrap_or(0);
            current.samples.push(((now - start_at).as_secs(), rss));
            let (sealed, acked) = (
                shared.sealed.load(Ordering::Relaxed),
                shared.acked.load(Ordering::Relaxed),
            );
            println!(
                "  {:>4} s: collector RSS {:.0} MiB, {acked} batches acknowledged, {} waiting",
                (now - start_at).as_secs(),
                mib(rss),
                sealed.saturating_sub(acked)
            );
            next_sample += SAMPLE_EVERY;
        }
        if let Some(status) = current.child.try_wait().unwrap() {
            failures.push(format!(
                "the collector died on its own at {:.0} s: {status}",
                (now - start_at).as_secs_f64()
            ));
            ended.push(Ended {
                how: format!("died: {status}"),
                lived: current.started.elapsed(),
                peak_kib: 0,
                final_kib: 0,
                cpu: 0.0,
                samples: std::mem::take(&mut current.samples),
            });
            match start(&binary, &config, &log, addr) {
                Ok(c) => current = c,
                Err(e) => fail(vec![e], &log),
            }
        }
        if kills.peek().is_some_and(|k| now >= start_at + *k) {
            kills.next();
            let at = Instant::now();
            ended.push(current.kill_9());
            match start(&binary, &config, &log, addr) {
                Ok(c) => current = c,
                Err(e) => fail(vec![e], &log),
            }
            outages.push(((at - start_at).as_secs(), at.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    streams.join().unwrap();
    let elapsed = start_at.elapsed();
    match current.stop() {
        Ok(e) => ended.push(e),
        Err(e) => failures.push(e),
    }
    let tally = std::mem::take(&mut *tally.lock().unwrap());

    println!("\ncollector incarnations:");
    for (i, e) in ended.iter().enumerate() {
        let rss: Vec<String> = e
            .samples
            .iter()
            .map(|(t, kib)| format!("{t}s:{:.0}", mib(*kib)))
            .collect();
        println!(
            "  #{}: {} after {:.0} s: peak RSS {:.1} MiB, final {:.1} MiB, CPU {:.1} s ({:.2} cores)\n    RSS MiB every 10 s: {}",
            i + 1,
            e.how,
            e.lived.as_secs_f64(),
            mib(e.peak_kib),
            mib(e.final_kib),
            e.cpu,
            e.cpu / e.lived.as_secs_f64(),
            rss.join(" ")
        );
    }
    for (at, took) in &outages {
        println!(
            "  killed at {at} s: listening again {:.2} s later",
            took.as_secs_f64()
        );
    }

    let [k1, k2] = plan.kills();
    let between = |from: Duration, to: Duration| -> Vec<u32> {
        tally
            .latency
            .iter()
            .filter(|(t, _)| *t >= from.as_secs_f32() && *t < to.as_secs_f32())
            .map(|(_, us)| *us)
            .collect()
    };
    let end = Duration::from_secs(u64::MAX / 4);
    println!("\nacknowledgement latency (request sent to 200):");
    println!(
        "  reference, first minute (before any kill): {}",
        spread(between(Duration::ZERO, REFERENCE.min(k1)))
    );
    println!("  first third:  {}", spread(between(Duration::ZERO, k1)));
    println!("  second third: {}", spread(between(k1, k2)));
    println!("  last third and drain: {}", spread(between(k2, end)));
    println!("  whole run:    {}", spread(between(Duration::ZERO, end)));
    println!(
        "  sealed to acknowledged, whole run (backlog and outages included): {}",
        spread(tally.waited.clone())
    );
    println!(
        "\nthroughput: {} results acknowledged in {:.1} s: {:.0} results/s (offered {} results/s)",
        tally.acked.rounds,
        elapsed.as_secs_f64(),
        tally.acked.rounds as f64 / elapsed.as_secs_f64(),
        plan.streams * plan.targets
    );
    println!("\nresponses by status and reason:");
    for (k, v) in &tally.responses {
        println!("  {k}: {v}");
    }
    for k in tally.responses.keys() {
        let ok = k.starts_with("200 ") || k == "429 rate_limited" || k.starts_with("error ");
        if !ok {
            failures.push(format!("responses other than rate limits: {k}"));
        }
    }

    // What the store holds, opened after the clean stop.
    let store = Store::open(
        &dir.path.join("data"),
        Retention {
            rollups: Duration::from_secs(30 * 86_400),
            failures: Duration::from_secs(90 * 86_400),
            receipts: Duration::from_secs(7 * 86_400),
        },
    )
    .unwrap();
    let mut stored = Counts::default();
    let mut batches_stored = 0;
    for p in store.probes().unwrap() {
        stored.rounds += p.results;
        batches_stored += p.batches;
    }
    for r in 0..plan.regions {
        let window = Window {
            src_region: Some(region_name(r)),
            limit: usize::MAX,
            ..Window::default()
        };
        for row in store.rollups(&window).unwrap() {
            match row.address {
                Some(_) => stored.attempts += row.count,
                None => stored.lookups += row.count,
            }
        }
    }
    let incidents = store.read(|s| s.incidents_since(0, 1_000)).unwrap();
    drop(store);

    println!(
        "\nbatches: {} sealed, {} acknowledged ({} as duplicates: stored before the kill, \
         unanswered), {} refused for good, {} unacknowledged at the end; {} in the store",
        tally.batches_sealed,
        tally.batches_acked,
        tally.duplicates,
        tally.rejected,
        tally.unacked_at_end,
        batches_stored
    );
    println!(
        "acknowledgements' stored results: {} of {} sent (a duplicate's answer says 0: \
         its first send was stored before the kill)",
        tally.ack_stored, tally.sealed.rounds
    );
    for (what, sent, acked, kept) in [
        (
            "rounds (probes table)",
            tally.sealed.rounds,
            tally.acked.rounds,
            stored.rounds,
        ),
        (
            "connect attempts (rollups)",
            tally.sealed.attempts,
            tally.acked.attempts,
            stored.attempts,
        ),
        (
            "DNS lookups (rollups)",
            tally.sealed.lookups,
            tally.acked.lookups,
            stored.lookups,
        ),
    ] {
        let lost = acked.saturating_sub(kept);
        let doubled = kept.saturating_sub(acked);
        println!(
            "{what}: sent {sent}, acknowledged {acked}, stored {kept}: lost {lost}, doubled {doubled}"
        );
        if lost > 0 || doubled > 0 {
            failures.push(format!("{what}: lost {lost}, doubled {doubled}"));
        }
    }
    println!(
        "incidents written by the evidence loop: {}",
        incidents.len()
    );
    if tally.batches_acked + tally.rejected != tally.batches_sealed {
        failures.push(format!(
            "{} of {} batches never acknowledged",
            tally.batches_sealed - tally.batches_acked - tally.rejected,
            tally.batches_sealed
        ));
    }
    // A duplicate's first send was stored too (its answer was lost in a
    // kill): the store holds one batch per acknowledged seq.
    if tally.batches_acked != batches_stored {
        failures.push(format!(
            "{} batches acknowledged, {batches_stored} in the store",
            tally.batches_acked
        ));
    }
    println!("load average at the end: {}", procfs::load_average());
    if !failures.is_empty() {
        fail(failures, &log);
    }
}

/// Prints what failed and the end of the collector's log; exits 1.
fn fail(failures: Vec<String>, log: &Path) -> ! {
    for f in &failures {
        eprintln!("FAIL: {f}");
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(20).collect();
    eprintln!("collector log, last lines:");
    for l in tail.into_iter().rev() {
        eprintln!("  {l}");
    }
    std::process::exit(1);
}
