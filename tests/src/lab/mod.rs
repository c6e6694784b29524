//! The WAN lab: a small WAN of network namespaces on this machine, with
//! real kernels and real packets. Region namespaces run real
//! `vantage-probe` processes. A core router namespace forwards between them
//! and the backend namespaces (one per provider, a few TCP services each),
//! runs the collector, and holds the faults: nftables rules per (region,
//! backend) pair that drop, reject, answer with ICMP unreachable or randomly
//! lose packets, and added delay through a userspace link ([`delay`]).
//! [`capture`] takes the wire's own view of every handshake.
//!
//! Addresses exist only inside the namespaces the lab creates:
//! - region `r`: 10.10.r.2/24, with the core at 10.10.r.1;
//! - backend `b`: 10.20.b.2/24 (and .3, .4), with the core at 10.20.b.1.
//!
//! Everything is named after the test process (`vt<pid>...`) and removed on
//! drop, even when a test panics. A later run also removes what a killed
//! run left behind. The lab needs root (CAP_NET_ADMIN), `ip` and `nft`;
//! [`Lab::require`] says so clearly when they are missing.

// setns(2) has no safe std equivalent; it moves only the calling thread.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use vantage_probe::Answer;
use vantage_probe::DnsServer;

pub mod capture;
pub mod delay;

use delay::{Delay, DelayLink};

/// A region of the lab.
#[derive(Debug, Clone)]
pub struct Region {
    /// Its name (`src_region`).
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// Its index in the address plan.
    pub index: u8,
}

/// A backend namespace: one provider's services.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The provider label of its targets.
    pub provider: String,
    /// Its namespace.
    pub ns: String,
    /// Its index in the address plan.
    pub index: u8,
    /// Its services' ports (on 10.20.index.2).
    pub ports: Vec<u16>,
}

impl Backend {
    /// The address its services listen on.
    pub fn ip(&self) -> String {
        format!("10.20.{}.2", self.index)
    }
}

/// A fault on the path from some regions to some backends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Fault {
    /// Packets silently dropped (SYNs go unanswered).
    #[default]
    Blackhole,
    /// Connects answered with a TCP reset.
    Reject,
    /// This percentage of SYNs dropped at random.
    Loss(u8),
    /// This percentage of the backends' SYN-ACKs back to the regions
    /// dropped at random: loss on the way back.
    SynAckLoss(u8),
    /// Connects answered by the core with an ICMP destination unreachable.
    Unreachable(Unreachable),
}

/// The ICMP destination-unreachable codes the core can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// Network unreachable (code 0).
    Net,
    /// Host unreachable (code 1).
    Host,
    /// Communication administratively prohibited (code 13).
    Admin,
}

/// Where a fault applies: source regions (None: all) to a backend
/// (None: every backend), optionally one of its addresses and one port.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FaultRule {
    /// Region index, or every region.
    pub region: Option<u8>,
    /// Backend index, or every backend.
    pub backend: Option<u8>,
    /// Only this address of the backend (the last octet: 2, 3 or 4).
    pub host: Option<u8>,
    /// Only this destination port.
    pub port: Option<u16>,
    /// What happens.
    pub fault: Fault,
}

/// The running lab.
#[derive(Debug)]
pub struct Lab {
    /// Its directory (configs, logs, spools, data).
    pub dir: PathBuf,
    /// The core router namespace (also the collector's).
    pub core: String,
    /// The regions.
    pub regions: Vec<Region>,
    /// The backends.
    pub backends: Vec<Backend>,
    namespaces: Vec<String>,
    children: Vec<(String, Child)>,
    faults: Vec<FaultRule>,
    stop_backends: Arc<AtomicBool>,
    /// Listener threads, with their namespace and address (to wake them).
    backend_threads: Vec<(String, SocketAddr, std::thread::JoinHandle<()>)>,
    resolvers: Vec<(u8, ZoneSender, std::thread::JoinHandle<()>)>,
    delay: Option<DelayLink>,
    delayed: Vec<(u8, u8)>,
}

/// Where a region's resolver thread takes its next zone (`None`: stop).
type ZoneSender = std::sync::mpsc::Sender<Option<HashMap<String, Answer>>>;

/// Where each region's probe finds its resolver, inside its namespace.
pub const RESOLVER: &str = "127.0.0.1:5353";

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ns_exec(ns: &str, args: &[&str]) {
    let mut full = vec!["netns", "exec", ns];
    full.extend_from_slice(args);
    run("ip", &full).unwrap_or_else(|e| panic!("lab: {e}"));
}

/// Moves the calling thread into namespace `ns` (its network only).
fn enter(ns: &str) {
    let f = File::open(format!("/var/run/netns/{ns}"))
        .unwrap_or_else(|e| panic!("lab: opening netns {ns}: {e}"));
    // SAFETY: setns on a valid, open namespace fd; CLONE_NEWNET affects the
    // network namespace of this thread only, and the fd outlives the call.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "lab: setns {ns}: {}",
        std::io::Error::last_os_error()
    );
}

/// Runs `f` on a thread inside namespace `ns`.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter(&ns);
        f()
    })
    .join()
    .expect("lab thread")
}

impl Lab {
    /// Whether this machine can run the lab; otherwise what is missing. A
    /// test calls this and fails with the message, unless
    /// `VANTAGE_SKIP_LAB=1` says to skip it (and it then says so).
    pub fn require() -> bool {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let ip = Command::new("ip").arg("-V").output().is_ok();
        let nft = Command::new("nft").arg("--version").output().is_ok();
        if root && ip && nft {
            return true;
        }
        let msg = format!(
            "the WAN lab needs root (CAP_NET_ADMIN) and the ip and nft commands (Debian: iproute2, nftables); \
             root: {root}, ip: {ip}, nft: {nft}. Run tests/run as root, or set VANTAGE_SKIP_LAB=1 to skip"
        );
        if std::env::var("VANTAGE_SKIP_LAB").is_ok_and(|v| v == "1") {
            eprintln!("SKIPPED: {msg}");
            return false;
        }
        panic!("{msg}");
    }

    /// Builds a lab of `regions` (names) and `backends` (provider name and
    /// service ports), with listeners on every service port.
    pub fn build(dir: &Path, regions: &[&str], backends: &[(&str, &[u16])]) -> Lab {
        clean_stale();
        let tag = format!("vt{}", std::process::id());
        // Tests in one process share the tag; a counter keeps them apart.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let tag = format!("{tag}x{}", N.fetch_add(1, Ordering::Relaxed));
        let core = format!("{tag}c");
        let mut lab = Lab {
            dir: dir.to_path_buf(),
            core: core.clone(),
            regions: Vec::new(),
            backends: Vec::new(),
            namespaces: Vec::new(),
            children: Vec::new(),
            faults: Vec::new(),
            stop_backends: Arc::new(AtomicBool::new(false)),
            backend_threads: Vec::new(),
            resolvers: Vec::new(),
            delay: None,
            delayed: Vec::new(),
        };
        lab.add_ns(&core);
        ns_exec(&core, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
        // Every rejected SYN gets its ICMP answer: no per-host rate limit
        // (a router's default of one a second would make answers random).
        ns_exec(&core, &["sysctl", "-q", "-w", "net.ipv4.icmp_ratelimit=0"]);
        for (i, name) in regions.iter().enumerate() {
            let ns = format!("{tag}r{i}");
            lab.add_ns(&ns);
            let i = i as u8;
            lab.link(&ns, &format!("r{i}"), &format!("10.10.{i}"));
            lab.regions.push(Region {
                name: name.to_string(),
                ns,
                index: i,
            });
        }
        for (b, (provider, ports)) in backends.iter().enumerate() {
            let ns = format!("{tag}b{b}");
            lab.add_ns(&ns);
            let b = b as u8;
            lab.link(&ns, &format!("b{b}"), &format!("10.20.{b}"));
            for extra in [3, 4] {
                ns_exec(
                    &ns,
                    &[
                        "ip",
                        "addr",
                        "add",
                        &format!("10.20.{b}.{extra}/24"),
                        "dev",
                        "eth0",
                    ],
                );
            }
            let backend = Backend {
                provider: provider.to_string(),
                ns: ns.clone(),
                index: b,
                ports: ports.to_vec(),
            };
            for &port in *ports {
                for host in 2..=4 {
                    lab.listen(&ns, SocketAddr::from(([10, 20, b, host], port)));
                }
            }
            lab.backends.push(backend);
        }
        lab.apply_faults();
        lab
    }

    fn add_ns(&mut self, ns: &str) {
        run("ip", &["netns", "add", ns]).unwrap_or_else(|e| panic!("lab: {e}"));
        self.namespaces.push(ns.to_string());
        ns_exec(ns, &["ip", "link", "set", "lo", "up"]);
    }

    /// A veth pair between the core (`core_if`, on `net.1/24`) and `ns`
    /// (`eth0`, on `net.2/24`, routing everything via the core), created
    /// inside the namespaces: nothing touches the host's interfaces.
    fn link(&self, ns: &str, core_if: &str, net: &str) {
        let (core_addr, addr) = (format!("{net}.1/24"), format!("{net}.2/24"));
        run(
            "ip",
            &[
                "-n", &self.core, "link", "add", core_if, "type", "veth", "peer", "name", "eth0",
                "netns", ns,
            ],
        )
        .unwrap_or_else(|e| panic!("lab: {e}"));
        ns_exec(
            &self.core,
            &["ip", "addr", "add", &core_addr, "dev", core_if],
        );
        ns_exec(&self.core, &["ip", "link", "set", core_if, "up"]);
        ns_exec(ns, &["ip", "addr", "add", &addr, "dev", "eth0"]);
        ns_exec(ns, &["ip", "link", "set", "eth0", "up"]);
        let gateway = format!("{net}.1");
        ns_exec(ns, &["ip", "route", "add", "default", "via", &gateway]);
    }

    /// An accepting TCP service on `addr` inside `ns`, until the lab drops.
    fn listen(&mut self, ns: &str, addr: SocketAddr) {
        let stop = self.stop_backends.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread_ns = ns.to_string();
        let thread = std::thread::spawn(move || {
            enter(&thread_ns);
            let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("lab: bind {addr}: {e}"));
            tx.send(()).unwrap();
            // Blocks in accept; the lab's drop wakes it with a connect.
            for s in l.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                drop(s);
            }
        });
        rx.recv().expect("the listener is up");
        self.backend_threads.push((ns.to_string(), addr, thread));
    }

    /// Serves `zone` as region `region`'s resolver at [`RESOLVER`] inside
    /// its namespace; calling again replaces the answers (per-region DNS
    /// faults: nxdomain, servfail, silence).
    pub fn dns(&mut self, region: u8, zone: HashMap<String, Answer>) {
        if let Some((_, tx, _)) = self.resolvers.iter().find(|(r, ..)| *r == region) {
            tx.send(Some(zone)).expect("the resolver thread runs");
            return;
        }
        let ns = self.regions[region as usize].ns.clone();
        let (tx, rx) = std::sync::mpsc::channel::<Option<HashMap<String, Answer>>>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            enter(&ns);
            // A worker thread keeps serving between zone changes; it is
            // created here, so it starts in this namespace too.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime for the lab resolver");
            let mut server: Option<DnsServer> = None;
            while let Ok(Some(zone)) = rx.recv() {
                let old = server.take();
                let ns = ns.clone();
                server = Some(rt.block_on(async move {
                    drop(old);
                    // Let the old task drop its socket before rebinding.
                    for _ in 0..50 {
                        tokio::task::yield_now().await;
                        if let Ok(s) =
                            DnsServer::bind(RESOLVER.parse().unwrap(), zone.clone()).await
                        {
                            return s;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    panic!("lab: the resolver in {ns} cannot bind {RESOLVER}");
                }));
                let _ = ready_tx.send(());
            }
            drop(server);
        });
        tx.send(Some(zone)).unwrap();
        ready_rx.recv().expect("the resolver is up");
        self.resolvers.push((region, tx, thread));
    }

    /// Starts `exe args` inside `ns`, logging to `<dir>/<label>.log`.
    pub fn spawn(&mut self, label: &str, ns: &str, exe: &Path, args: &[&str]) {
        let log = File::create(self.dir.join(format!("{label}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(exe)
            .args(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("lab: starting {label}: {e}"));
        self.children.push((label.to_string(), child));
    }

    /// Runs `vantage-probe check --json` inside region `region`'s namespace
    /// against `target` (`ip:port`) with the extra `args`; every connect
    /// attempt it made, in order.
    pub fn check(
        &self,
        region: u8,
        target: &str,
        args: &[&str],
    ) -> Vec<vantage_probe::result::ConnectAttempt> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.regions[region as usize].ns])
            .arg(crate::bin("vantage-probe"))
            .args(["check", "--json", "-4", target])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("lab: running check: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        let mut attempts = Vec::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("lab: check printed {line:?}: {e}"));
            if v["type"] == "round" {
                let round: vantage_probe::result::RoundResult =
                    serde_json::from_value(v).expect("a round result");
                attempts.extend(round.attempts);
            }
        }
        assert!(
            !attempts.is_empty(),
            "lab: check made no attempt: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        attempts
    }

    /// Stops the process started as `label` (SIGKILL).
    pub fn kill(&mut self, label: &str) {
        if let Some(i) = self.children.iter().position(|(l, _)| l == label) {
            let (_, mut c) = self.children.remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Adds a fault; it takes effect at once.
    pub fn add_fault(&mut self, rule: FaultRule) {
        self.faults.push(rule);
        self.apply_faults();
    }

    /// Removes one fault (every copy of it); the others stay.
    pub fn remove_fault(&mut self, rule: &FaultRule) {
        self.faults.retain(|r| r != rule);
        self.apply_faults();
    }

    /// Removes every fault.
    pub fn clear_faults(&mut self) {
        self.faults.clear();
        self.apply_faults();
    }

    /// Rewrites the core's nftables table from the fault list.
    fn apply_faults(&self) {
        let mut rules = String::new();
        let _ = writeln!(
            rules,
            "table inet vlab {{}}\ndelete table inet vlab\ntable inet vlab {{"
        );
        let _ = writeln!(
            rules,
            "  chain forward {{ type filter hook forward priority 0; policy accept;"
        );
        for f in &self.faults {
            let src = f
                .region
                .map_or("10.10.0.0/16".to_string(), |r| format!("10.10.{r}.0/24"));
            let dst = match (f.backend, f.host) {
                (Some(b), Some(h)) => format!("10.20.{b}.{h}"),
                (Some(b), None) => format!("10.20.{b}.0/24"),
                (None, _) => "10.20.0.0/16".to_string(),
            };
            // Loss on the way back matches the answers: from the
            // backend's port to the region.
            let back = matches!(f.fault, Fault::SynAckLoss(_));
            let (src, dst) = if back { (dst, src) } else { (src, dst) };
            let dir = if back { "sport" } else { "dport" };
            let port = f.port.map_or(String::new(), |p| format!(" tcp {dir} {p}"));
            let verdict = match f.fault {
                Fault::Blackhole => "drop".to_string(),
                Fault::Reject => "reject with tcp reset".to_string(),
                Fault::Loss(pct) | Fault::SynAckLoss(pct) => {
                    format!("numgen random mod 100 < {pct} drop")
                }
                Fault::Unreachable(code) => format!(
                    "reject with icmp type {}",
                    match code {
                        Unreachable::Net => "net-unreachable",
                        Unreachable::Host => "host-unreachable",
                        Unreachable::Admin => "admin-prohibited",
                    }
                ),
            };
            let proto = if port.is_empty() {
                " meta l4proto tcp".to_string()
            } else {
                port
            };
            let syn = match f.fault {
                Fault::Loss(_) => " tcp flags & (syn | ack) == syn",
                Fault::SynAckLoss(_) => " tcp flags & (syn | ack) == syn | ack",
                _ => "",
            };
            // A delayed packet crosses the forward hook twice (into the
            // delay link and back out of it); the fault applies once.
            let _ = writeln!(
                rules,
                "    iifname != \"{}\" ip saddr {src} ip daddr {dst}{proto}{syn} {verdict}",
                delay::DEVICE
            );
        }
        let _ = writeln!(rules, "  }}\n}}");
        let path = self.dir.join("faults.nft");
        std::fs::write(&path, &rules).unwrap();
        ns_exec(&self.core, &["nft", "-f", path.to_str().unwrap()]);
    }

    /// Adds `delay` (or with `None` removes it) on the path from region
    /// `region` to backend `backend`, at once. The first call starts the
    /// delay link in the core.
    pub fn set_delay(&mut self, region: u8, backend: u8, delay: Option<Delay>) {
        if self.delay.is_none() {
            self.delay = Some(in_ns(&self.core, DelayLink::create));
            let core = self.core.clone();
            let dev = delay::DEVICE;
            ns_exec(&core, &["ip", "link", "set", dev, "up"]);
            // Delayed packets come back in on the TUN device, not on the
            // region's link: reverse-path filtering must not drop them.
            for conf in ["all", "default", dev] {
                ns_exec(
                    &core,
                    &[
                        "sysctl",
                        "-q",
                        "-w",
                        &format!("net.ipv4.conf.{conf}.rp_filter=0"),
                    ],
                );
            }
            ns_exec(
                &core,
                &[
                    "ip",
                    "route",
                    "add",
                    "default",
                    "dev",
                    dev,
                    "table",
                    delay::TABLE,
                ],
            );
        }
        let link = self.delay.as_ref().unwrap();
        let rule = |op: &str| {
            let (iif, to) = (format!("r{region}"), format!("10.20.{backend}.0/24"));
            ns_exec(
                &self.core,
                &[
                    "ip",
                    "rule",
                    op,
                    "iif",
                    &iif,
                    "to",
                    &to,
                    "lookup",
                    delay::TABLE,
                    "pref",
                    "1000",
                ],
            );
        };
        let routed = self.delayed.contains(&(region, backend));
        match delay {
            Some(d) => {
                // The delay is known before the first packet is routed in.
                link.set(region, backend, Some(d));
                if !routed {
                    rule("add");
                    self.delayed.push((region, backend));
                }
            }
            None => {
                if routed {
                    rule("del");
                    self.delayed.retain(|p| *p != (region, backend));
                }
                link.set(region, backend, None);
            }
        }
    }

    /// `GET path` from inside the core namespace to `127.0.0.1:port`
    /// (HTTP/1.0); the status and body.
    pub fn http_get(&self, port: u16, path: &str, token: &str) -> (u16, String) {
        let (path, token) = (path.to_string(), token.to_string());
        in_ns(&self.core, move || {
            get(SocketAddr::from(([127, 0, 0, 1], port)), &path, &token)
        })
    }

    /// The pid of the process started as `label`.
    pub fn pid(&self, label: &str) -> Option<u32> {
        self.children
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, c)| c.id())
    }

    /// Waits until `f` returns `Some`, polling every 500 ms, for at most
    /// `limit`; panics with `what` after that.
    pub fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut f: impl FnMut() -> Option<T>,
    ) -> (T, Duration) {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return (v, start.elapsed());
            }
            assert!(
                start.elapsed() < limit,
                "lab: {what} did not happen within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// `GET path` to `addr` (HTTP/1.0, with a bearer `token` unless empty)
/// from the calling thread's namespace; the status and body, or status 0
/// when the connection failed.
pub fn get(addr: SocketAddr, path: &str, token: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    let req = format!("GET {path} HTTP/1.0\r\nHost: lab\r\n{auth}\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        drop(self.delay.take());
        for (_, tx, thread) in self.resolvers.drain(..) {
            let _ = tx.send(None);
            let _ = thread.join();
        }
        self.stop_backends.store(true, Ordering::Relaxed);
        for (ns, addr, t) in self.backend_threads.drain(..) {
            in_ns(&ns, move || {
                drop(TcpStream::connect_timeout(&addr, Duration::from_secs(1)))
            });
            let _ = t.join();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

/// Removes namespaces of lab runs whose process is gone.
fn clean_stale() {
    let Ok(list) = run("ip", &["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("vt") else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if pid.is_empty() || !rest[pid.len()..].starts_with('x') {
            continue;
        }
        if !Path::new(&format!("/proc/{pid}")).exists() {
            // Processes left inside die with their namespace's last user.
            if let Ok(pids) = run("ip", &["netns", "pids", name]) {
                for p in pids.split_whitespace() {
                    let _ = run("kill", &["-9", p]);
                }
            }
            let _ = run("ip", &["netns", "del", name]);
        }
    }
}
