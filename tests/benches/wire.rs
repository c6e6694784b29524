//! Accuracy against the wire and cost per probe, side by side with the
//! peer: Prometheus blackbox_exporter (`tcp_connect` module) driven as
//! Prometheus drives it, one `/probe` request per probe.
//!
//! In a WAN lab (one region namespace, one backend namespace, the core
//! between them), for each condition: added RTT 0 or 20 ms (the lab's delay
//! link), and the machine idle or with a CPU hog spinning on one core.
//!
//! - **Accuracy.** `tcpdump` captures the region's interface while
//!   `vantage-probe check` (the probe's own connect path) and
//!   blackbox_exporter each make `ATTEMPTS` probes, 100 ms apart, at the
//!   same time, to different ports. Each vantage attempt is found in the
//!   capture by its local port; each blackbox probe by the one handshake
//!   that began during its `/probe` request. The error is the absolute
//!   difference between the reported connect time and the captured
//!   SYN -> SYN-ACK time. vantage reports `rtt_us`; blackbox reports
//!   `probe_duration_seconds`, its only timing for a TCP probe.
//! - **Cost.** Each tool alone, `RATE` probes/s for `WINDOW` after a 3 s
//!   warm-up: `vantage-probe run` with 12 targets every 100 ms, and
//!   blackbox_exporter with requests paced at the same rate. CPU is the sum
//!   of the process's threads' run time (`/proc/<pid>/task/*/schedstat`);
//!   RSS is `VmRSS` at the end and `VmHWM`.
//!
//! ```sh
//! cargo bench -p vantage-tests --bench wire                # all four conditions
//! cargo bench -p vantage-tests --bench wire -- idle "+20"  # the conditions named
//! ```
//!
//! Needs root, `ip`, `nft`, `tcpdump` and `prometheus-blackbox-exporter`
//! (Debian packages iproute2, nftables, tcpdump, prometheus-blackbox-exporter).
//! Traffic stays inside the lab's namespaces; every loop is bounded by its
//! count or window.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vantage_probe::outcome::ConnectOutcome;
use vantage_tests::lab::capture::{Capture, Handshake, WireAnswer, matched};
use vantage_tests::lab::delay::Delay;
use vantage_tests::lab::{Lab, get, in_ns};
use vantage_tests::{Scratch, bin, parse_exposition};

const ATTEMPTS: u32 = 200;
const RATE: u32 = 120;
const WINDOW: Duration = Duration::from_secs(10);
const BLACKBOX: &str = "prometheus-blackbox-exporter";
const BLACKBOX_ADDR: &str = "127.0.0.1:9115";
const PROBE_ADMIN: &str = "127.0.0.1:9650";

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// p50, p99 and max of absolute errors in microseconds.
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.5), at(0.99), v[v.len() - 1])
}

/// Nanoseconds of CPU the process's threads have run.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// `VmRSS` and `VmHWM` in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One blackbox probe: when its request was sent and answered, and what
/// it reported.
struct BlackboxProbe {
    sent_ns: u64,
    answered_ns: u64,
    success: bool,
    duration_us: f64,
}

fn blackbox_probe(target: &str) -> BlackboxProbe {
    let sent_ns = now_ns();
    let (status, body) = get(
        BLACKBOX_ADDR.parse().unwrap(),
        &format!("/probe?module=tcp_connect&target={target}"),
        "",
    );
    let answered_ns = now_ns();
    let samples = parse_exposition(&body);
    let value = |name: &str| samples.iter().find(|s| s.name == name).map(|s| s.value);
    BlackboxProbe {
        sent_ns,
        answered_ns,
        success: status == 200 && value("probe_success") == Some(1.0),
        duration_us: value("probe_duration_seconds").unwrap_or(f64::NAN) * 1e6,
    }
}

/// Runs `f` every `1/rate` s, `n` times, from a thread in `ns`.
fn paced<T: Send + 'static>(
    ns: &str,
    n: u32,
    every: Duration,
    f: impl Fn() -> T + Send + 'static,
) -> Vec<T> {
    in_ns(ns, move || {
        let start = Instant::now();
        (0..n)
            .map(|i| {
                let due = start + every * i;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                f()
            })
            .collect()
    })
}

/// One tool's errors against the wire.
struct Errors {
    /// p50, p99 and max, in microseconds.
    spread: (f64, f64, f64),
    /// Probes matched to one clean handshake.
    matched: usize,
}

impl Errors {
    fn of(errors: Vec<f64>) -> Errors {
        Errors {
            matched: errors.len(),
            spread: spread(errors),
        }
    }
}

struct Accuracy {
    vantage: Errors,
    blackbox: Errors,
    unmatched: usize,
}

fn accuracy(lab: &Lab, label: &str) -> Accuracy {
    let ns = lab.regions[0].ns.clone();
    let capture = Capture::start(&ns, "eth0", &lab.dir, label);
    capture.wait_until_seen(&ns, "10.20.0.2:8003".parse().unwrap());
    let (attempts, probes) = std::thread::scope(|s| {
        let v = s.spawn(|| {
            lab.check(
                0,
                "10.20.0.2:8000",
                &[
                    "--count",
                    &ATTEMPTS.to_string(),
                    "--interval",
                    "100ms",
                    "--timeout",
                    "3s",
                ],
            )
        });
        let b = paced(&ns, ATTEMPTS, Duration::from_millis(100), || {
            blackbox_probe("10.20.0.2:8001")
        });
        (v.join().unwrap(), b)
    });
    capture.wait_until_seen(&ns, "10.20.0.2:8003".parse().unwrap());
    let wire = capture.stop();
    let clean = |h: &Handshake| h.syns == 1 && matches!(h.answer, Some((WireAnswer::SynAck, _)));

    let mut unmatched = 0;
    let mut vantage = Vec::new();
    for (a, h) in matched(&attempts, &wire) {
        match (a.outcome, a.rtt_us, h) {
            (ConnectOutcome::Ok, Some(rtt), Some(h)) if clean(h) => {
                vantage.push((rtt as f64 - h.answer_us().unwrap()).abs());
            }
            _ => {
                if std::env::var_os("VANTAGE_BENCH_DEBUG").is_some() {
                    eprintln!("unmatched vantage attempt {a:?}: {h:?}");
                }
                unmatched += 1
            }
        }
    }
    let to_blackbox: Vec<&Handshake> = wire.iter().filter(|h| h.remote.port() == 8001).collect();
    let mut blackbox = Vec::new();
    for p in &probes {
        let during: Vec<&&Handshake> = to_blackbox
            .iter()
            .filter(|h| (p.sent_ns..=p.answered_ns).contains(&h.first_syn_ns))
            .collect();
        match during.as_slice() {
            [h] if p.success && clean(h) => {
                blackbox.push((p.duration_us - h.answer_us().unwrap()).abs());
            }
            _ => {
                if std::env::var_os("VANTAGE_BENCH_DEBUG").is_some() {
                    eprintln!(
                        "unmatched blackbox probe at {} (success {}, {} us): {during:?}",
                        p.sent_ns, p.success, p.duration_us
                    );
                }
                unmatched += 1
            }
        }
    }
    Accuracy {
        vantage: Errors::of(vantage),
        blackbox: Errors::of(blackbox),
        unmatched,
    }
}

struct Cost {
    probes: u64,
    cpu_us_per_probe: f64,
    rss: (f64, f64),
}

fn attempts_total(ns: &str) -> u64 {
    let (_, body) = in_ns(ns, || get(PROBE_ADMIN.parse().unwrap(), "/metrics", ""));
    parse_exposition(&body)
        .iter()
        .filter(|s| s.name == "vantage_probe_connect_attempts_total")
        .map(|s| s.value as u64)
        .sum()
}

fn vantage_cost(lab: &mut Lab) -> Cost {
    let ns = lab.regions[0].ns.clone();
    let mut config = format!(
        "[probe]\nsrc_region = \"bench\"\nid = \"bench-1\"\n[admin]\nlisten = \"{PROBE_ADMIN}\"\n\
         [defaults]\ninterval = \"{}ms\"\ntimeout = \"90ms\"\nfamilies = [\"ipv4\"]\n",
        12_000 / RATE
    );
    for host in 2..=4 {
        for port in 8000..8004 {
            config.push_str(&format!(
                "[[targets]]\nname = \"t{host}-{port}\"\nhost = \"10.20.0.{host}\"\nport = {port}\n"
            ));
        }
    }
    let path = lab.dir.join("probe.toml");
    std::fs::write(&path, config).unwrap();
    lab.spawn(
        "probe",
        &ns,
        &bin("vantage-probe"),
        &["run", "--config", path.to_str().unwrap()],
    );
    let pid = lab.pid("probe").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let (cpu0, n0) = (cpu_ns(pid), attempts_total(&ns));
    std::thread::sleep(WINDOW);
    let (cpu1, n1) = (cpu_ns(pid), attempts_total(&ns));
    let rss = rss_mib(pid);
    lab.kill("probe");
    let probes = n1 - n0;
    Cost {
        probes,
        cpu_us_per_probe: (cpu1 - cpu0) as f64 / 1e3 / probes.max(1) as f64,
        rss,
    }
}

fn blackbox_cost(lab: &Lab, pid: u32) -> Cost {
    let ns = lab.regions[0].ns.clone();
    let every = Duration::from_secs(1) / RATE;
    let n = RATE * WINDOW.as_secs() as u32;
    let target = |i: u32| format!("10.20.0.{}:{}", 2 + i % 3, 8000 + (i / 3) % 4);
    paced(&ns, 3 * RATE, every, move || {
        blackbox_probe(&target(fastrand::u32(..)))
    });
    let cpu0 = cpu_ns(pid);
    let probes = paced(&ns, n, every, move || {
        blackbox_probe(&target(fastrand::u32(..)))
    });
    let cpu1 = cpu_ns(pid);
    let failed = probes.iter().filter(|p| !p.success).count();
    if failed > 0 {
        println!("(blackbox_exporter: {failed} of {n} cost probes failed)");
    }
    Cost {
        probes: u64::from(n),
        cpu_us_per_probe: (cpu1 - cpu0) as f64 / 1e3 / f64::from(n),
        rss: rss_mib(pid),
    }
}

/// Whether a condition runs: every argument not starting with `-` must
/// appear in its label (`cargo bench ... -- idle`, `-- "+20"`).
fn selected(label: &str) -> bool {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .all(|a| label.contains(&a))
}

/// One table row: a tool's errors and cost in one condition.
fn row(label: &str, tool: &str, e: &Errors, c: &Cost) {
    let us = |v: f64| format!("{v:.1} µs");
    println!(
        "| {label} | {tool} | {} | {} | {} | {}/{ATTEMPTS} | {:.0} ({} probes) | {:.1} MiB ({:.1}) |",
        us(e.spread.0),
        us(e.spread.1),
        us(e.spread.2),
        e.matched,
        c.cpu_us_per_probe,
        c.probes,
        c.rss.0,
        c.rss.1
    );
}

fn require() -> Result<(), String> {
    let has = |cmd: &str, arg: &str| Command::new(cmd).arg(arg).output().is_ok();
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    let root = unsafe { libc::geteuid() } == 0;
    let missing: Vec<&str> = [
        (!root).then_some("root"),
        (!has("ip", "-V")).then_some("ip (iproute2)"),
        (!has("nft", "--version")).then_some("nft (nftables)"),
        (!has("tcpdump", "--version")).then_some("tcpdump"),
        (!has(BLACKBOX, "--version")).then_some(BLACKBOX),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("the wire benchmark needs {}", missing.join(", ")))
    }
}

fn main() {
    if let Err(e) = require() {
        eprintln!("{e}");
        std::process::exit(2);
    }
    let version = Command::new(BLACKBOX)
        .arg("--version")
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            text.lines().next().unwrap_or("").to_string()
        })
        .unwrap_or_default();
    // Built now, not in the middle of the first measurement.
    bin("vantage-probe");
    let scratch = Scratch::new("bench-wire");
    let mut lab = Lab::build(
        &scratch.path,
        &["bench"],
        &[("backend", &[8000, 8001, 8002, 8003])],
    );
    let ns = lab.regions[0].ns.clone();
    let bb_config = lab.dir.join("blackbox.yml");
    std::fs::write(
        &bb_config,
        "modules:\n  tcp_connect:\n    prober: tcp\n    timeout: 5s\n    tcp:\n      preferred_ip_protocol: ip4\n",
    )
    .unwrap();
    lab.spawn(
        "blackbox",
        &ns,
        std::path::Path::new(BLACKBOX),
        &[
            &format!("--config.file={}", bb_config.display()),
            &format!("--web.listen-address={BLACKBOX_ADDR}"),
        ],
    );
    let bb_pid = lab.pid("blackbox").unwrap();
    lab.wait_for("blackbox_exporter up", Duration::from_secs(10), || {
        let addr: SocketAddr = BLACKBOX_ADDR.parse().unwrap();
        (in_ns(&ns, move || get(addr, "/-/healthy", "")).0 == 200).then_some(())
    });
    println!("peer: {version}");
    println!(
        "accuracy: {ATTEMPTS} probes per tool per condition, 100 ms apart; cost: {RATE} probes/s for {} s",
        WINDOW.as_secs()
    );
    println!(
        "\n| condition | tool | error p50 | error p99 | error max | matched | CPU µs/probe | RSS (peak) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (delay_ms, hog) in [(0u64, false), (0, true), (20, false), (20, true)] {
        let label = format!(
            "+{delay_ms} ms{}",
            if hog { ", one core hogged" } else { ", idle" }
        );
        if !selected(&label) {
            continue;
        }
        lab.set_delay(
            0,
            0,
            (delay_ms > 0).then(|| Delay {
                delay: Duration::from_millis(delay_ms),
                jitter: Duration::ZERO,
            }),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let spinner = hog.then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        });
        let acc = accuracy(&lab, &format!("d{delay_ms}h{}", hog as u8));
        let v = vantage_cost(&mut lab);
        let b = blackbox_cost(&lab, bb_pid);
        stop.store(true, Ordering::Relaxed);
        if let Some(t) = spinner {
            t.join().unwrap();
        }
        row(&label, "vantage", &acc.vantage, &v);
        row(&label, "blackbox_exporter", &acc.blackbox, &b);
        if acc.unmatched > 0 {
            println!(
                "|  | ({} probes not matched to one clean handshake) | | | | | | |",
                acc.unmatched
            );
        }
    }
}
