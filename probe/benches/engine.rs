//! Probe engine benchmark: the real `vantage-probe` binary against loopback
//! listeners at 1k and 10k targets, beside two references measured in the
//! same run: a bare blocking connect+close loop, and a single-threaded loop
//! making the probe's own syscalls (non-blocking connect, poll, TCP_INFO,
//! close) without tokio or the scheduler.
//!
//! Prints figures; asserts nothing about speed. Run:
//!
//! ```sh
//! cargo bench -p vantage-probe --bench engine              # everything
//! cargo bench -p vantage-probe --bench engine -- 1k        # one scenario
//! cargo bench -p vantage-probe --bench engine -- ref 10k   # several
//! ```
//!
//! Selectors: `ref`, `1k`, `10k`; anything starting with `-` is ignored.
//!
//! Traffic: loopback only (listeners on 127.0.0.1-127.0.0.32); every loop is
//! bounded in count and time, and the probe child is stopped on any exit.

// Unsafe is needed for the thread CPU clock (clock_gettime), sysconf,
// kill(2), prctl(PR_SET_PDEATHSIG), poll(2) and getsockopt(TCP_INFO): std
// has no safe equivalents.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Listener addresses 127.0.0.1..=127.0.0.N ...
const ADDRESSES: u8 = 32;
/// ... each with this many ports. Hundreds of thousands of connects leave
/// their 4-tuples in TIME_WAIT; with few destinations, connect(2) would spend
/// its time searching for a free ephemeral port and the figures would
/// measure that search, in whichever phase came later, not the probe.
const PORTS_PER_ADDRESS: usize = 4;
const WARMUP: Duration = Duration::from_secs(3);
const WINDOW: Duration = Duration::from_secs(10);
const REFERENCE_CONNECTS: usize = 100_000;
/// A reference loop gives up after this long whatever its count.
const REFERENCE_DEADLINE: Duration = Duration::from_secs(30);

struct Scenario {
    label: &'static str,
    targets: usize,
    interval_ms: u64,
    timeout_ms: u64,
}

// timeout must be shorter than the interval (config validation).
const SCENARIOS: [Scenario; 2] = [
    Scenario {
        label: "1k",
        targets: 1_000,
        interval_ms: 50,
        timeout_ms: 40,
    },
    Scenario {
        label: "10k",
        targets: 10_000,
        interval_ms: 500,
        timeout_ms: 400,
    },
];

struct Figures {
    demand_per_s: f64,
    probes_per_s: f64,
    rounds_per_s: f64,
    skipped: f64,
    cpu_us_per_probe: f64,
    cores: f64,
    rss_mib: f64,
    lag_p50: String,
    lag_p99: String,
    failures: f64,
    failure_reasons: BTreeMap<String, f64>,
}

struct Reference {
    cpu_us: f64,
    per_s: f64,
    done: usize,
    errors: usize,
}

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let runs = |label: &str| wanted.is_empty() || wanted.iter().any(|w| w == label);
    let backends = start_backends();

    let command = std::iter::once("cargo bench -p vantage-probe --bench engine".to_string())
        .chain((!wanted.is_empty()).then(|| format!("-- {}", wanted.join(" "))))
        .collect::<Vec<_>>()
        .join(" ");
    println!("command: {command}");
    println!("nproc: {}", nproc());
    println!(
        "loadavg at start: {} (other load on the machine skews every figure)",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!("probe binary: {}", env!("CARGO_BIN_EXE_vantage-probe"));
    println!(
        "backends: {} listeners on 127.0.0.1-127.0.0.{ADDRESSES} (accept + close, one thread each)",
        backends.len()
    );
    println!(
        "window: warm-up {}s, measure {}s",
        WARMUP.as_secs(),
        WINDOW.as_secs()
    );

    // A probe connecting at these rates lives with the kernel's TIME_WAIT
    // table full (tcp_max_tw_buckets), and connect/close cost more then.
    // Bring it there first so that every phase, references included, is
    // measured in that steady state rather than in whichever came first.
    let tw_cap = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_max_tw_buckets")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(131_072);
    println!("filling TIME_WAIT to its cap ({tw_cap}) with unmeasured connects ...");
    fill_time_wait(&backends, tw_cap + tw_cap / 10);

    let bare = runs("ref").then(|| {
        println!("reference: bare blocking connect+close x {REFERENCE_CONNECTS} ...");
        bare_loop(&backends)
    });
    let syscalls = runs("ref").then(|| {
        println!("reference: probe syscalls x {REFERENCE_CONNECTS} ...");
        probe_syscalls(&backends)
    });
    let mut rows = Vec::new();
    for s in SCENARIOS.iter().filter(|s| runs(s.label)) {
        println!(
            "scenario {}: {} targets every {}ms ...",
            s.label, s.targets, s.interval_ms
        );
        rows.push((s, run_scenario(s, &backends)));
    }

    println!();
    println!(
        "{:<8} | {:>7} | {:>8} | {:>8} | {:>8} | {:>8} | {:>12} | {:>9} | {:>7} | {:>9} | {:>9} | {:>8} | {:>7}",
        "scenario",
        "targets",
        "interval",
        "demand/s",
        "probes/s",
        "rounds/s",
        "cpu us/probe",
        "cpu cores",
        "rss MiB",
        "lag p50",
        "lag p99",
        "failures",
        "skipped"
    );
    for (s, f) in &rows {
        println!(
            "{:<8} | {:>7} | {:>6}ms | {:>8.0} | {:>8.0} | {:>8.0} | {:>12.2} | {:>9.2} | {:>7.1} | {:>9} | {:>9} | {:>8.0} | {:>7.0}",
            s.label,
            s.targets,
            s.interval_ms,
            f.demand_per_s,
            f.probes_per_s,
            f.rounds_per_s,
            f.cpu_us_per_probe,
            f.cores,
            f.rss_mib,
            f.lag_p50,
            f.lag_p99,
            f.failures,
            f.skipped
        );
    }
    println!(
        "(lag: scheduler_lag histogram delta over the window, linear interpolation inside the bucket; \
         cpu: probe process utime+stime from /proc; failures/skipped: deltas over the window)"
    );
    for (s, f) in &rows {
        if !f.failure_reasons.is_empty() {
            let reasons: Vec<String> = f
                .failure_reasons
                .iter()
                .map(|(r, n)| format!("{r}={n:.0}"))
                .collect();
            println!("  {} failures by reason: {}", s.label, reasons.join(", "));
        }
    }
    if let Some(r) = &bare {
        println!(
            "reference bare blocking connect+close (one thread): {:.2} cpu us/connect, {:.0} connects/s ({} done, {} errors)",
            r.cpu_us, r.per_s, r.done, r.errors
        );
    }
    if let Some(r) = &syscalls {
        println!(
            "reference probe syscalls, no tokio (nonblocking connect, poll, TCP_INFO, close): \
             {:.2} cpu us/connect, {:.0} connects/s ({} done, {} errors)",
            r.cpu_us, r.per_s, r.done, r.errors
        );
    }
    for (s, f) in &rows {
        let mut line = format!("ratio {}:", s.label);
        if let Some(r) = &bare {
            line += &format!(
                " probe/bare = {:.2}x cpu per connect",
                f.cpu_us_per_probe / r.cpu_us
            );
        }
        if let Some(r) = &syscalls {
            line += &format!(", probe/syscalls = {:.2}x", f.cpu_us_per_probe / r.cpu_us);
        }
        if bare.is_some() || syscalls.is_some() {
            println!("{line}");
        }
    }
}

fn nproc() -> String {
    Command::new("nproc")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(0, |n| n.get())
                .to_string()
        })
}

/// Loopback listeners that accept and close, on 127.0.0.1..=127.0.0.8.
fn start_backends() -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for i in 1..=ADDRESSES {
        for _ in 0..PORTS_PER_ADDRESS {
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)), 0);
            assert!(addr.ip().is_loopback());
            let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
            socket.set_reuse_address(true).unwrap();
            socket.bind(&SockAddr::from(addr)).unwrap();
            socket.listen(4096).unwrap();
            let listener: TcpListener = socket.into();
            out.push(listener.local_addr().unwrap());
            // Lives as long as the bench process.
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    drop(stream);
                }
            });
        }
    }
    out
}

/// The probe child; stopped however the bench leaves (panics included).
struct Probe {
    child: Child,
    dir: PathBuf,
}

impl Drop for Probe {
    fn drop(&mut self) {
        stop(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run_scenario(s: &Scenario, backends: &[SocketAddr]) -> Figures {
    let dir =
        std::env::temp_dir().join(format!("vantage-bench-{}-{}", std::process::id(), s.label));
    std::fs::create_dir_all(&dir).unwrap();
    // Pick a free port and hand it to the probe (a small race, fine here).
    let admin_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = format!(
        "[probe]\nsrc_region = \"bench\"\nid = \"bench-1\"\n\n\
         [admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\n\
         [limits]\nmax_in_flight = 256\nmax_connects_per_second = 100000\nmax_dns_lookups_per_second = 10\n\n\
         [defaults]\ninterval = \"{}ms\"\ntimeout = \"{}ms\"\nfamilies = [\"ipv4\"]\n",
        s.interval_ms, s.timeout_ms
    );
    // The target list is a Prometheus file_sd file, as an inventory of
    // thousands of targets would be; BENCHMARKS.md also gives the start-up
    // peak of the same list written inline as [[targets]] tables.
    let groups: Vec<String> = (0..s.targets)
        .map(|i| {
            let b = backends[i % backends.len()];
            assert!(b.ip().is_loopback());
            format!("{{\"targets\": [\"{b}\"], \"labels\": {{\"name\": \"t{i:05}\"}}}}")
        })
        .collect();
    std::fs::write(
        dir.join("targets.json"),
        format!("[{}]", groups.join(",\n")),
    )
    .unwrap();
    cfg.push_str("\n[[file_sd]]\npath = \"targets.json\"\n");
    let path = dir.join("bench.toml");
    std::fs::write(&path, cfg).unwrap();
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));

    let mut command = Command::new(env!("CARGO_BIN_EXE_vantage-probe"));
    command
        .args(["run", "--log-level", "warn", "--config"])
        .arg(&path)
        .stdout(Stdio::null());
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between
    // fork and exec. The child gets SIGTERM if the bench dies without
    // running its destructors (SIGKILL, a timeout), so no probe outlives it.
    unsafe {
        let parent = libc::getpid();
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let child = command.spawn().expect("starting vantage-probe");
    let mut probe = Probe { child, dir };
    let pid = probe.child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(admin, "/-/ready").is_none() {
        if let Some(status) = probe.child.try_wait().unwrap() {
            panic!("vantage-probe exited early: {status}");
        }
        assert!(Instant::now() < deadline, "vantage-probe not ready in 20s");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(WARMUP);
    // The window runs from the start of one scrape to the start of the
    // next: counters are read as a scrape begins (the registry at once, the
    // per-target chunks shortly after), and a scrape of 10k targets streams
    // for a while when the probe is busy. The CPU figure so includes one
    // scrape per window, as a real deployment pays for.
    let (c0, t0) = (cpu_ticks(pid), Instant::now());
    let m0 = get(admin, "/metrics").expect("scrape at window start");
    std::thread::sleep(WINDOW.saturating_sub(t0.elapsed()));
    let (c1, t1) = (cpu_ticks(pid), Instant::now());
    let m1 = get(admin, "/metrics").expect("scrape at window end");
    let rss_kib = status_field(pid, "VmHWM:");
    drop(probe);

    let secs = (t1 - t0).as_secs_f64();
    let delta = |name: &str| sum(&m1, name) - sum(&m0, name);
    let attempts = delta("vantage_probe_connect_attempts_total");
    let failures = delta("vantage_probe_connect_failures_total");
    let mut failure_reasons = by_reason(&m1);
    for (r, n) in by_reason(&m0) {
        *failure_reasons.entry(r).or_default() -= n;
    }
    failure_reasons.retain(|_, n| *n > 0.0);
    let cpu_us = (c1 - c0) as f64 * 1e6 / clk_tck();
    let (lag_p50, lag_p99) = lag_quantiles(&m0, &m1);
    Figures {
        demand_per_s: s.targets as f64 * 1000.0 / s.interval_ms as f64,
        probes_per_s: attempts / secs,
        rounds_per_s: delta("vantage_probe_rounds_total") / secs,
        skipped: delta("vantage_probe_rounds_skipped_total"),
        cpu_us_per_probe: cpu_us / attempts.max(1.0),
        cores: cpu_us / 1e6 / secs,
        rss_mib: rss_kib as f64 / 1024.0,
        lag_p50,
        lag_p99,
        failures,
        failure_reasons,
    }
}

/// Blocking connects, unmeasured, bounded by `count` and by time.
fn fill_time_wait(backends: &[SocketAddr], count: usize) {
    let start = Instant::now();
    for i in 0..count {
        if start.elapsed() > REFERENCE_DEADLINE {
            break;
        }
        let _ = TcpStream::connect(backends[i % backends.len()]);
    }
}

/// Bare blocking connect + close, the cheapest way to open a connection.
fn bare_loop(backends: &[SocketAddr]) -> Reference {
    let (c0, t0) = (thread_cpu(), Instant::now());
    let (mut done, mut errors) = (0, 0);
    for i in 0..REFERENCE_CONNECTS {
        if t0.elapsed() > REFERENCE_DEADLINE {
            break;
        }
        match TcpStream::connect(backends[i % backends.len()]) {
            Ok(s) => drop(s),
            Err(_) => errors += 1,
        }
        done += 1;
    }
    reference(c0, t0, done, errors)
}

/// What the probe asks of the kernel per attempt, in a plain loop:
/// socket, non-blocking connect, poll for writable, SO_ERROR, TCP_INFO, close.
fn probe_syscalls(backends: &[SocketAddr]) -> Reference {
    let (c0, t0) = (thread_cpu(), Instant::now());
    let (mut done, mut errors) = (0, 0);
    for i in 0..REFERENCE_CONNECTS {
        if t0.elapsed() > REFERENCE_DEADLINE {
            break;
        }
        done += 1;
        let addr = backends[i % backends.len()];
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        s.set_nonblocking(true).unwrap();
        match s.connect(&SockAddr::from(addr)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(_) => {
                errors += 1;
                continue;
            }
        }
        let mut pfd = libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid, initialised pollfd; bounded 1 s timeout.
        let ready = unsafe { libc::poll(&mut pfd, 1, 1000) };
        if ready != 1 || !matches!(s.take_error(), Ok(None)) {
            errors += 1;
            continue;
        }
        if vantage_probe::read_tcp_info(&s).is_err() {
            errors += 1;
        }
    }
    reference(c0, t0, done, errors)
}

fn reference(c0: Duration, t0: Instant, done: usize, errors: usize) -> Reference {
    let (c1, t1) = (thread_cpu(), Instant::now());
    let n = done.max(1) as f64;
    Reference {
        cpu_us: (c1 - c0).as_secs_f64() * 1e6 / n,
        per_s: n / (t1 - t0).as_secs_f64(),
        done,
        errors,
    }
}

/// SIGTERM, wait up to 15 s for the drain, then SIGKILL.
fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    // SAFETY: signalling our own, not yet reaped, child by its pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(15);
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() > deadline {
            eprintln!("vantage-probe did not exit in 15s after SIGTERM; killing it");
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.wait();
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after "pid (comm) " start at field 3, so utime (14) and stime
    // (15) are at indexes 11 and 12.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// A `kB` field of /proc/<pid>/status.
fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A plain HTTP/1.0 GET of `path`; the body, or `None` unless 200.
fn get(addr: SocketAddr, path: &str) -> Option<String> {
    assert!(addr.ip().is_loopback());
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.lines().next()?;
    (status.starts_with("HTTP/1.") && status.split_whitespace().nth(1) == Some("200"))
        .then(|| body.to_string())
}

/// Sample lines of metric `name` (any label set).
fn samples<'a>(exposition: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> {
    exposition
        .lines()
        .filter(move |l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
}

fn value(line: &str) -> Option<f64> {
    line.rsplit_once(' ')?.1.parse().ok()
}

/// Sum of every sample of `name` (all label sets).
fn sum(exposition: &str, name: &str) -> f64 {
    samples(exposition, name).filter_map(value).sum()
}

/// Connect failures summed per `reason` label.
fn by_reason(exposition: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for l in samples(exposition, "vantage_probe_connect_failures_total") {
        let reason = l
            .split("reason=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?");
        *out.entry(reason.to_string()).or_default() += value(l).unwrap_or(0.0);
    }
    out
}

/// p50 and p99 of the scheduler lag over the window, linearly interpolated
/// inside the bucket the quantile falls in (like PromQL's
/// histogram_quantile); beyond the last finite bound it is "> bound".
fn lag_quantiles(before: &str, after: &str) -> (String, String) {
    let buckets = |text: &str| -> Vec<(f64, f64)> {
        samples(text, "vantage_probe_scheduler_lag_seconds_bucket")
            .filter_map(|l| {
                let le = l.split("le=\"").nth(1)?.split('"').next()?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, value(l)?))
            })
            .collect()
    };
    let (b0, b1) = (buckets(before), buckets(after));
    let delta: Vec<(f64, f64)> = b1
        .iter()
        .zip(&b0)
        .map(|((le, a), (_, b))| (*le, a - b))
        .collect();
    let total = delta.last().map_or(0.0, |d| d.1);
    let q = |p: f64| -> String {
        if total <= 0.0 {
            return "-".into();
        }
        let rank = p * total;
        let mut prev = (0.0, 0.0);
        for &(le, count) in &delta {
            if count >= rank {
                if le.is_infinite() {
                    return format!(">{}ms", prev.0 * 1000.0);
                }
                let in_bucket = count - prev.1;
                let frac = if in_bucket > 0.0 {
                    (rank - prev.1) / in_bucket
                } else {
                    1.0
                };
                let secs = prev.0 + (le - prev.0) * frac;
                return format!("{:.3}ms", secs * 1000.0);
            }
            prev = (le, count);
        }
        "-".into()
    };
    (q(0.5), q(0.99))
}
