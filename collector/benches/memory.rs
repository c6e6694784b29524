//! What eight worst-case bodies at once cost in memory: a batch padded with
//! whitespace to the decompressed cap (256 MiB with the default limits), in
//! about 260 KB of gzip, as the issue's attack sent them.
//!
//! Printed, in one run:
//! - reference: the old way, in a child process of this benchmark: each
//!   body gunzipped into one buffer capped at 256 MiB, then parsed, eight
//!   threads at once; its peak RSS (`VmHWM`) above its start;
//! - after: the real `vantage-collector` binary with the default limits
//!   taking the same eight bodies at once over loopback: its peak RSS above
//!   what it had after one ordinary push, and the slowest `/-/healthy`
//!   answer while they were being decoded.
//!
//! ```sh
//! cargo bench -p vantage-collector --bench memory
//! ```
//!
//! Traffic: loopback only; eight bodies and a bounded health poll.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use flate2::Compression;
use flate2::write::GzEncoder;
use vantage_probe::outcome::ConnectOutcome;
use vantage_probe::result::{ConnectAttempt, Identity, RoundResult, Timestamp};
use vantage_probe::wire::{Batch, RESULTS_PATH, SCHEMA_VERSION};

use common::Collector;

/// Bodies at once.
const AT_ONCE: usize = 8;
/// The decompressed cap with the default limits, before and after.
const CAP: usize = 256 << 20;
const TOKEN: &str = "bench-memory-token-0123456789";
/// Set in the child that measures the old way.
const CHILD: &str = "VANTAGE_BENCH_MEMORY_OLD_WAY";

fn main() {
    if std::env::var_os(CHILD).is_some() {
        old_way();
        return;
    }
    println!(
        "{AT_ONCE} bodies at once, each a batch padded with whitespace to {} MiB",
        CAP >> 20
    );
    println!("  each {} KB of gzip on the wire", body(0).len() / 1000);

    let child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, "1")
        .stderr(Stdio::inherit())
        .output()
        .expect("running the reference child");
    print!("{}", String::from_utf8_lossy(&child.stdout));

    let dir = std::env::temp_dir().join(format!("vantage-bench-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let collector = Collector::with_defaults(&dir);
    let (status, text) = collector.push(&body_of(&json("warm"), 0));
    assert_eq!(status, 200, "{text}");
    let base = collector.peak_kib();
    let done = Arc::new(AtomicBool::new(false));
    let poll = {
        let (addr, done) = (collector.addr, done.clone());
        std::thread::spawn(move || {
            let mut slowest = Duration::ZERO;
            // Every 50 ms while the bodies are decoded, for at most 5 min.
            for _ in 0..6000 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let start = Instant::now();
                let (status, _) = request(addr, "GET", "/-/healthy", &[], &[]);
                assert_eq!(status, 200);
                slowest = slowest.max(start.elapsed());
                std::thread::sleep(Duration::from_millis(50));
            }
            slowest
        })
    };
    let start = Instant::now();
    let senders: Vec<_> = (0..AT_ONCE)
        .map(|i| {
            let (c, body) = (collector.addr, body(i));
            std::thread::spawn(move || Collector::push_to(c, &body))
        })
        .collect();
    for s in senders {
        let (status, text) = s.join().unwrap();
        assert_eq!(status, 200, "{text}");
    }
    let took = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let slowest = poll.join().unwrap();
    let peak = collector.peak_kib();
    println!(
        "after: the collector, streamed, {} decodes at once: peak RSS {} MiB above {} MiB (all {AT_ONCE} stored in {:.1} s; slowest /-/healthy {} ms)",
        collector.decoders(),
        (peak - base) >> 10,
        base >> 10,
        took.as_secs_f64(),
        slowest.as_millis()
    );
    drop(collector);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The reference: each body decoded as the collector did before, into one
/// buffer capped at `CAP`, on its own thread, all at once.
fn old_way() {
    let bodies: Vec<Vec<u8>> = (0..AT_ONCE).map(body).collect();
    let base = common::status_kib(std::process::id(), "VmHWM:");
    let threads: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            std::thread::spawn(move || {
                let mut out = Vec::new();
                flate2::read::MultiGzDecoder::new(&body[..])
                    .take(CAP as u64 + 1)
                    .read_to_end(&mut out)
                    .unwrap();
                assert!(out.len() <= CAP);
                let batch: Batch = serde_json::from_slice(&out).unwrap();
                batch.results.len()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 50);
    }
    let peak = common::status_kib(std::process::id(), "VmHWM:");
    println!(
        "reference: the old way, one buffer per body, {AT_ONCE} threads: peak RSS {} MiB above {} MiB",
        (peak - base) >> 10,
        base >> 10
    );
}

/// Body `i`: the batch of probe `p<i>` padded to the cap.
fn body(i: usize) -> Vec<u8> {
    let json = json(&format!("p{i}"));
    body_of(&json, CAP - json.len())
}

/// A batch of 50 results from `probe`, as JSON.
fn json(probe: &str) -> Vec<u8> {
    let at = Timestamp::from(SystemTime::now() - Duration::from_secs(1));
    let round = RoundResult {
        target: "api".into(),
        host: "127.0.0.1".into(),
        port: 443,
        labels: Default::default(),
        started_at: at,
        dns: None,
        attempts: vec![ConnectAttempt {
            address: SocketAddr::from(([127, 0, 0, 1], 443)),
            local: None,
            started_at: at,
            outcome: ConnectOutcome::Ok,
            duration_us: 900,
            rtt_us: Some(800),
            syn_retransmits: 0,
            errno: None,
            icmp_from: None,
        }],
    };
    let batch = Batch {
        schema: SCHEMA_VERSION,
        probe: Identity {
            src_region: "east".into(),
            zone: None,
            probe_id: probe.into(),
        },
        stream: "s1".into(),
        seq: 1,
        sent_at: Timestamp::now(),
        results: vec![round; 50],
        last: false,
    };
    serde_json::to_vec(&batch).unwrap()
}

/// `padding` bytes of whitespace then `json`, gzipped one member per MiB
/// of whitespace (RFC 1952 allows several), quick to build.
fn body_of(json: &[u8], padding: usize) -> Vec<u8> {
    let gz = |data: &[u8]| {
        let mut z = GzEncoder::new(Vec::new(), Compression::best());
        z.write_all(data).unwrap();
        z.finish().unwrap()
    };
    let mib = gz(&vec![b' '; 1 << 20]);
    let mut body = Vec::new();
    for _ in 0..padding >> 20 {
        body.extend_from_slice(&mib);
    }
    let mut rest = vec![b' '; padding % (1 << 20)];
    rest.extend_from_slice(json);
    body.extend(gz(&rest));
    body
}

impl Collector {
    /// The collector binary with the default limits.
    fn with_defaults(dir: &std::path::Path) -> Collector {
        Collector::start(dir, |addr| {
            format!(
                "[server]\nlisten = \"{addr}\"\ndata_dir = \"data\"\n\
                 [[tokens]]\ntoken = \"{TOKEN}\"\nsrc_region = \"east\"\n"
            )
        })
    }

    fn peak_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// `limits.max_concurrent_decodes` by default on this machine.
    fn decoders(&self) -> usize {
        vantage_collector::config::IngestLimits::defaults().max_concurrent_decodes
    }

    fn push(&self, body: &[u8]) -> (u16, String) {
        Collector::push_to(self.addr, body)
    }

    fn push_to(addr: SocketAddr, body: &[u8]) -> (u16, String) {
        let auth = format!("Bearer {TOKEN}");
        request(
            addr,
            "POST",
            RESULTS_PATH,
            &[("Authorization", &auth), ("Content-Encoding", "gzip")],
            body,
        )
    }
}

/// One HTTP/1.0 request on loopback: the status and the body.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    assert!(addr.ip().is_loopback());
    let mut s = TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}
