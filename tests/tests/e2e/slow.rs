//! Slow clients against the real collector binary: connections that
//! trickle a request head, stall a body, say nothing or never finish a TLS
//! handshake are closed on their deadlines while a probe's batch is
//! acknowledged and `/metrics` answers beside them; past
//! `server.max_connections` a new connection is closed at once, and the
//! slots free as the slow ones' deadlines pass; SIGTERM still drains.
//! Loopback only, every loop bounded in count and time.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vantage_probe::outcome::ConnectOutcome;
use vantage_probe::wire::RESULTS_PATH;
use vantage_tests::{
    Proc, Scratch, bin, free_port, http_get, parse_exposition, value, wait_for_200,
};

use crate::collector::{EAST, batch, post, round};

/// Short deadlines, so that the test takes seconds.
const TIMEOUTS: &str = "header_read_timeout = \"3s\"\nbody_read_timeout = \"4s\"\nidle_timeout = \"3s\"\ntls_handshake_timeout = \"3s\"\n";

/// How long a slow client waits for the collector to close it: far past
/// every deadline above.
const CLOSED_WITHIN: Duration = Duration::from_secs(30);

/// What a slow client does once connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slow {
    /// Trickles a request head that never ends, a byte every 250 ms.
    Head,
    /// Sends a push's whole head with a token, then trickles its body.
    Body,
    /// Sends nothing.
    Silent,
    /// Trickles a TLS ClientHello record that never ends.
    Hello,
    /// Sends one whole request, reads the answer, then keeps the
    /// connection open and says nothing.
    KeptAlive,
}

/// The collector binary on a free loopback port, with `server` added to
/// its `[server]` section; started, not yet ready.
fn spawn_collector(dir: &Scratch, server: &str) -> (Proc, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let path = dir.write(
        "collector.toml",
        &format!(
            "[server]\nlisten = \"{addr}\"\ndata_dir = \"data\"\n{server}\n[[tokens]]\ntoken = \"{EAST}\"\nsrc_region = \"us-east-2\"\n"
        ),
    );
    let mut c = Command::new(bin("vantage-collector"));
    c.args(["serve", "--log-level", "warn", "--config"])
        .arg(&path);
    (Proc::spawn(&mut c), addr)
}

/// [`spawn_collector`], serving plain HTTP; ready.
async fn collector(dir: &Scratch, server: &str) -> (Proc, SocketAddr) {
    let (p, addr) = spawn_collector(dir, server);
    wait_for_200(addr, "/-/ready", Duration::from_secs(10)).await;
    (p, addr)
}

/// Plays `slow` on `s` until the collector closes the connection (true,
/// with what it answered) or [`CLOSED_WITHIN`] passes (false).
async fn play(mut s: TcpStream, slow: Slow) -> (bool, Vec<u8>) {
    let mut trickle: Vec<u8> = match slow {
        Slow::Head => [
            &b"GET /metrics HTTP/1.1\r\nHost: collector\r\nX-Slow: "[..],
            &[b'a'; 4096],
        ]
        .concat(),
        Slow::Body => vec![b' '; 100_000],
        // A handshake record header announcing 16 KiB, then a byte at a
        // time of it.
        Slow::Hello => [&[0x16, 0x03, 0x01, 0x40, 0x00, 0x01][..], &[0; 4096]].concat(),
        Slow::Silent | Slow::KeptAlive => Vec::new(),
    };
    trickle.reverse();
    match slow {
        Slow::Body => {
            let head = format!(
                "POST {RESULTS_PATH} HTTP/1.1\r\nHost: collector\r\nAuthorization: Bearer {EAST}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                trickle.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
        }
        Slow::KeptAlive => {
            let _ = s
                .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: collector\r\n\r\n")
                .await;
        }
        Slow::Head | Slow::Silent | Slow::Hello => {}
    }
    let deadline = tokio::time::Instant::now() + CLOSED_WITHIN;
    let mut heard = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            read = s.read(&mut buf) => match read {
                Ok(0) | Err(_) => return (true, heard),
                Ok(n) => heard.extend_from_slice(&buf[..n]),
            },
            () = tokio::time::sleep(Duration::from_millis(250)) => {
                if let Some(b) = trickle.pop()
                    && s.write_all(&[b]).await.is_err()
                {
                    return (true, heard);
                }
            }
            () = tokio::time::sleep_until(deadline) => return (false, heard),
        }
    }
}

/// Connects `n` clients playing `slow`; their tasks.
async fn open(
    addr: SocketAddr,
    slow: Slow,
    n: usize,
) -> Vec<tokio::task::JoinHandle<(bool, Vec<u8>)>> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let s = TcpStream::connect(addr)
            .await
            .expect("connecting on loopback");
        tasks.push(tokio::spawn(play(s, slow)));
    }
    tasks
}

/// The collector's `/metrics`, parsed.
async fn metrics(addr: SocketAddr) -> Vec<vantage_tests::Sample> {
    let (status, text) = http_get(addr, "/metrics").await.expect("/metrics");
    assert_eq!(status, 200, "{text}");
    parse_exposition(&text)
}

fn closed(samples: &[vantage_tests::Sample], reason: &str) -> f64 {
    value(
        samples,
        "vantage_collector_connections_closed_total",
        &[("reason", reason)],
    )
    .unwrap_or_else(|| panic!("no connections_closed_total{{reason={reason:?}}}"))
}

/// Every client's task ended, closed by the collector; what each heard.
async fn all_closed(
    what: &str,
    tasks: Vec<tokio::task::JoinHandle<(bool, Vec<u8>)>>,
) -> Vec<Vec<u8>> {
    let mut heard = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let (closed, answer) = t.await.unwrap();
        assert!(
            closed,
            "{what} client {i} was still open {CLOSED_WITHIN:?} after connecting"
        );
        heard.push(answer);
    }
    heard
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_closed_while_probes_and_the_scrape_get_through() {
    let dir = Scratch::new("collector-slow");
    let (_p, addr) = collector(&dir, TIMEOUTS).await;
    let started = Instant::now();
    let heads = open(addr, Slow::Head, 100).await;
    let bodies = open(addr, Slow::Body, 80).await;
    let silent = open(addr, Slow::Silent, 19).await;
    let kept = open(addr, Slow::KeptAlive, 1).await;

    // With the 200 open: a probe's batch is acknowledged and stored, and
    // the scrape answers, counting them.
    let b = batch(
        "us-east-2",
        "e1",
        1,
        vec![round("api", 443, ConnectOutcome::Ok, None); 3],
    );
    let (status, ack) = post(addr, EAST, &b).await;
    assert_eq!((status, ack["stored"].as_u64()), (200, Some(3)), "{ack}");
    let during = metrics(addr).await;
    let open_then = value(&during, "vantage_collector_connections_open", &[]).unwrap();
    assert!(
        open_then > 200.0,
        "the scrape answered with {open_then} connections open, fewer than the 200 slow ones and itself \
         ({:?} after the first connected: raise the test's timeouts if the machine is this slow)",
        started.elapsed()
    );

    all_closed("trickling head", heads).await;
    for (i, answer) in all_closed("stalled body", bodies).await.iter().enumerate() {
        let answer = String::from_utf8_lossy(answer);
        assert!(
            answer.starts_with("HTTP/1.1 408") && answer.contains("\"body_timeout\""),
            "stalled body {i} was answered {answer:?}"
        );
    }
    all_closed("silent", silent).await;
    let kept = all_closed("kept-alive", kept).await;
    assert!(String::from_utf8_lossy(&kept[0]).ends_with("healthy\n"));

    let after = metrics(addr).await;
    assert_eq!(closed(&after, "header_timeout"), 100.0);
    assert_eq!(closed(&after, "body_timeout"), 80.0);
    assert_eq!(closed(&after, "idle"), 20.0, "19 silent, 1 kept alive");
    assert_eq!(closed(&after, "over_cap"), 0.0);
    assert_eq!(
        value(
            &after,
            "vantage_collector_refused_total",
            &[("reason", "body_timeout")]
        ),
        Some(80.0)
    );
    assert_eq!(
        value(&after, "vantage_collector_connections_open", &[]),
        Some(1.0),
        "only the scrape itself"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_new_connections_are_closed_until_slots_free() {
    let dir = Scratch::new("collector-cap");
    let (p, addr) = collector(&dir, &format!("{TIMEOUTS}max_connections = 20\n")).await;
    // 20 take the slots; the 10 after them are closed at once.
    let slow = open(addr, Slow::Head, 30).await;
    let refused = http_get(addr, "/-/healthy").await;
    assert!(
        !matches!(refused, Ok((200, _))),
        "a request at the cap was answered: {refused:?}"
    );
    all_closed("trickling head", slow).await;

    // Their deadlines passed: probes and the scrape get through again.
    wait_for_200(addr, "/-/healthy", Duration::from_secs(10)).await;
    let b = batch(
        "us-east-2",
        "e1",
        1,
        vec![round("api", 443, ConnectOutcome::Ok, None); 3],
    );
    assert_eq!(post(addr, EAST, &b).await.0, 200);
    let after = metrics(addr).await;
    assert_eq!(
        closed(&after, "over_cap"),
        11.0,
        "10 slow clients, 1 request"
    );
    assert_eq!(closed(&after, "header_timeout"), 20.0);

    // SIGTERM with a slow client connected: the drain ends when its
    // deadline does, and the collector exits cleanly.
    let lingering = open(addr, Slow::Head, 1).await;
    p.stop_cleanly("TERM", Duration::from_secs(20)).await;
    all_closed("lingering", lingering).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_tls_handshake_is_closed_and_tls_still_serves() {
    let dir = Scratch::new("collector-slow-tls");
    let (ca, cert, key) = vantage_tests::test_certificates(&dir.path);
    let tls = format!(
        "{TIMEOUTS}tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let (_p, addr) = spawn_collector(&dir, &tls);
    let client = vantage_probe::http_client(Duration::from_secs(5), Some(&ca), true).unwrap();
    let url = |path: &str| format!("https://127.0.0.1:{}{path}", addr.port());
    vantage_tests::wait_until("TLS coming up", Duration::from_secs(10), async || {
        client
            .get(url("/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;

    // Silent ones, and ones trickling a ClientHello that never ends.
    let silent = open(addr, Slow::Silent, 10).await;
    let hellos = open(addr, Slow::Hello, 10).await;
    let scrape = client.get(url("/metrics")).send().await.unwrap();
    assert_eq!(scrape.status(), 200);
    all_closed("silent TLS", silent).await;
    all_closed("trickling TLS", hellos).await;

    // A new client: the first one's kept-alive connection may be closing
    // as idle.
    let client = vantage_probe::http_client(Duration::from_secs(5), Some(&ca), true).unwrap();
    let text = client
        .get(url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let after = parse_exposition(&text);
    assert_eq!(closed(&after, "handshake_timeout"), 20.0);
}

/// A client that breaks off its body is counted as a malformed request,
/// not as one too large: the refusal counter tells an operator which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_broken_off_is_malformed_not_too_large() {
    let dir = Scratch::new("collector-cut");
    let (_p, addr) = collector(&dir, TIMEOUTS).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {RESULTS_PATH} HTTP/1.1\r\nHost: collector\r\nAuthorization: Bearer {EAST}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"schema\":"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.shutdown().await.unwrap();
    let (closed, answer) = play(s, Slow::Silent).await;
    assert!(
        closed,
        "the collector kept a broken-off body's connection open"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let after = metrics(addr).await;
    let refused = |reason| {
        value(
            &after,
            "vantage_collector_refused_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(refused("malformed"), Some(1.0));
    assert_ne!(refused("body_too_large"), Some(1.0));
}
