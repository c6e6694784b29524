//! What ingest costs in memory, against the real collector binary: bodies
//! that are small on the wire and huge once decompressed, eight at once.
//! A body is read as a stream within a cap derived from its results limit,
//! so whitespace costs nothing and the collector's peak RSS (`VmHWM`)
//! stays within a bound derived from its limits, while `/-/healthy` and
//! `/metrics` keep answering. Loopback only; every loop bounded.

use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use vantage_collector::config::default::{BATCH_ENVELOPE_BYTES, MAX_RESULT_JSON_BYTES};
use vantage_probe::outcome::ConnectOutcome;
use vantage_tests::{Proc, Scratch, bin, free_port, http_get, parse_exposition, value};

use crate::collector::{EAST, batch, post_gzipped, round};

/// The collector's results limit in this test.
const MAX_RESULTS: usize = 100;
/// The decompressed cap that limit gives (`limits.max_decompressed_bytes`):
/// 100 results at their widest, and the batch around them, about 3 MiB.
const CAP: usize = MAX_RESULTS * MAX_RESULT_JSON_BYTES + BATCH_ENVELOPE_BYTES;
/// The old cap: 32 x the default `max_body_bytes` of 8 MiB.
const OLD_CAP: usize = 256 << 20;
/// How many bodies of each kind are sent at once.
const AT_ONCE: usize = 8;

/// The collector's peak resident set (`VmHWM`), in bytes.
fn peak_rss(p: &Proc) -> usize {
    let kib = vantage_tests::procfs::status_kib(p.child.id(), "VmHWM:")
        .expect("VmHWM in /proc/<pid>/status");
    (kib as usize) << 10
}

/// `json` after `padding` bytes of whitespace, gzipped as one member per
/// MiB of whitespace (so that it takes little time to make) and one for
/// the batch: RFC 1952 lets a body be several members.
fn padded_gzip(padding: usize, json: &[u8]) -> Vec<u8> {
    let mut spaces = GzEncoder::new(Vec::new(), Compression::best());
    spaces.write_all(&vec![b' '; 1 << 20]).unwrap();
    let mib = spaces.finish().unwrap();
    let mut body = Vec::new();
    for _ in 0..padding >> 20 {
        body.extend_from_slice(&mib);
    }
    let mut rest = GzEncoder::new(Vec::new(), Compression::best());
    rest.write_all(&vec![b' '; padding % (1 << 20)]).unwrap();
    rest.write_all(json).unwrap();
    body.extend(rest.finish().unwrap());
    body
}

/// A valid batch of 50 results from probe `probe`, as JSON.
fn batch_json(probe: &str) -> Vec<u8> {
    let results = vec![round("api", 443, ConnectOutcome::Ok, None); 50];
    serde_json::to_vec(&batch("us-east-2", probe, 1, results)).unwrap()
}

async fn push(addr: SocketAddr, body: Vec<u8>) -> (u16, String) {
    post_gzipped(addr, EAST, &body)
        .await
        .expect("pushing on loopback")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_decompress_huge_cost_what_their_results_limit_allows() {
    let dir = Scratch::new("collector-memory");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = dir.write(
        "collector.toml",
        &format!(
            "[server]\nlisten = \"{addr}\"\ndata_dir = \"data\"\n\
             [[tokens]]\ntoken = \"{EAST}\"\nsrc_region = \"us-east-2\"\n\
             [limits]\nmax_results_per_batch = {MAX_RESULTS}\n"
        ),
    );
    let mut c = Command::new(bin("vantage-collector"));
    c.args(["serve", "--log-level", "warn", "--config"])
        .arg(&config);
    let p = Proc::spawn(&mut c);
    vantage_tests::wait_for_200(addr, "/-/ready", Duration::from_secs(10)).await;

    // One ordinary push first, so that the base counts what serving one
    // takes (the store's pages, the threads' arenas).
    let (status, text) = push(addr, vantage_tests::gzip(&batch_json("warm"))).await;
    assert_eq!(status, 200, "{text}");
    let base = peak_rss(&p);

    // Eight of each at once: whitespace to past the old cap before a
    // batch (about 260 KB on the wire); a batch padded to just within the
    // new cap; one padded to just past it.
    let mut pushes = Vec::new();
    for i in 0..AT_ONCE {
        let (within, past) = (
            batch_json(&format!("in-{i}")),
            batch_json(&format!("out-{i}")),
        );
        let cases = [
            (
                "old cap",
                padded_gzip(OLD_CAP + 1, &batch_json(&format!("bomb-{i}"))),
                413,
            ),
            ("within", padded_gzip(CAP - within.len(), &within), 200),
            ("past", padded_gzip(CAP + 1 - past.len(), &past), 413),
        ];
        for (what, body, want) in cases {
            assert!(
                body.len() < 1 << 20,
                "{what}: {} bytes on the wire",
                body.len()
            );
            pushes.push((what, want, tokio::spawn(push(addr, body))));
        }
    }
    // The probes' pushes and the scrape answer beside them.
    for _ in 0..5 {
        let (status, healthy) = http_get(addr, "/-/healthy").await.unwrap();
        assert_eq!((status, healthy.as_str()), (200, "healthy\n"));
        let (status, _) = http_get(addr, "/metrics").await.unwrap();
        assert_eq!(status, 200);
    }
    let mut answers = Vec::new();
    for (what, want, task) in pushes {
        answers.push((what, want, task.await.unwrap()));
    }

    // What each request may hold: its body as read (under 1 MiB here) and
    // its decoded batch, which is no larger than twice its JSON, within
    // the cap; never a decompressed copy of the body.
    let per_request = (1 << 20) + 2 * CAP;
    let bound = base + 3 * AT_ONCE * per_request;
    let peak = peak_rss(&p);
    assert!(
        peak <= bound,
        "peak RSS {} MiB, over the bound of {} MiB ({} MiB before the bodies)",
        peak >> 20,
        bound >> 20,
        base >> 20
    );
    assert!(bound < 512 << 20, "the bound itself is {} MiB", bound >> 20);
    for (what, want, (status, text)) in answers {
        assert_eq!(status, want, "{what}: {text}");
        if want == 413 {
            assert!(text.contains("\"body_too_large\""), "{what}: {text}");
        }
    }

    let (_, text) = http_get(addr, "/metrics").await.unwrap();
    let samples = parse_exposition(&text);
    let refused = value(
        &samples,
        "vantage_collector_refused_total",
        &[("reason", "body_too_large")],
    );
    assert_eq!(refused, Some((2 * AT_ONCE) as f64));
    p.stop_cleanly("TERM", Duration::from_secs(20)).await;
}
