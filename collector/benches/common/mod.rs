//! What the collector's benchmarks share: the real `vantage-collector`
//! binary started on a free loopback port, and what `/proc` says of a
//! process. Each bench includes it with `mod common;`.

#![allow(dead_code)] // each bench uses its part

pub(crate) mod fleet;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running collector, killed when dropped.
pub(crate) struct Collector {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
}

impl Collector {
    /// Writes `config(listen)` to `dir/collector.toml` and starts the
    /// binary on it, returning once it listens.
    pub(crate) fn start(dir: &Path, config: impl FnOnce(SocketAddr) -> String) -> Collector {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let path = dir.join("collector.toml");
        std::fs::write(&path, config(addr)).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_vantage-collector"))
            .args(["serve", "--log-level", "warn", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting vantage-collector");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "the collector did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Collector { child, addr }
    }

    /// A `kB` field of its `/proc/<pid>/status`, in KiB.
    pub(crate) fn status_kib(&self, key: &str) -> u64 {
        status_kib(self.child.id(), key)
    }

    /// User plus system CPU seconds so far.
    pub(crate) fn cpu(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks / 100.0
    }

    /// SIGTERM, and waits (a clean stop checkpoints the WAL); SIGKILL
    /// after 30 s.
    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `kB` field (`"VmRSS:"`, `"VmHWM:"`) of `/proc/<pid>/status`, in KiB.
pub(crate) fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"))
}

/// `GET path` on `addr` over a plain connection: the status and the body,
/// or `None` when the collector does not answer.
pub(crate) fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((status, body.to_string()))
}
