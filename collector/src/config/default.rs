//! What a collector config that leaves a setting out gets.

use std::net::SocketAddr;
use std::time::Duration;

/// Seconds in a day.
pub const DAY: u64 = 86_400;

/// `server.listen`: loopback, so an unconfigured collector is not exposed.
pub const LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9640);
/// `server.fleet`.
pub const FLEET: &str = "unnamed";
/// `server.watch_every`.
pub const WATCH_EVERY: Duration = Duration::from_secs(5);
/// `server.header_read_timeout`: a request head is a few hundred bytes.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// `server.body_read_timeout`: a full `limits.max_body_bytes` body at
/// about 140 kB/s.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// `server.idle_timeout`: longer than a push or scrape interval, so that
/// probes and Prometheus keep their connections.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// `server.tls_handshake_timeout`.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// `server.max_connections`.
pub const MAX_CONNECTIONS: usize = 1024;

/// `retention.rollups`.
pub const ROLLUPS: Duration = Duration::from_secs(30 * DAY);
/// `retention.failures`: longer than rollups, failures are the evidence.
pub const FAILURES: Duration = Duration::from_secs(90 * DAY);
/// `retention.receipts`.
pub const RECEIPTS: Duration = Duration::from_secs(7 * DAY);

/// `limits.max_body_bytes`.
pub const MAX_BODY_BYTES: usize = 8 << 20;
/// How much larger than `limits.max_body_bytes` a body may be once
/// decompressed. Compressed JSON of results shrinks about 10x; allow a
/// generous ratio but never an unbounded one (a gzip bomb).
pub const DECOMPRESSION_RATIO: usize = 32;
/// The most JSON one valid result takes as a probe writes it: 64 attempts
/// with every optional field at its widest, 16 labels and the target and
/// host at their longest, each of their characters escaped. A unit test in
/// `validate.rs` builds that result (about 30 KB) and checks it fits.
pub const MAX_RESULT_JSON_BYTES: usize = 32 << 10;
/// A batch's JSON besides its results: the identity, stream, sequence and
/// times, at their longest (checked beside [`MAX_RESULT_JSON_BYTES`]).
pub const BATCH_ENVELOPE_BYTES: usize = 4 << 10;
/// `limits.max_concurrent_decodes`: the machine's cores, at most 4, so that
/// decoding bodies cannot take every core from the scrape and the store.
pub fn max_concurrent_decodes() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4)
}
/// `limits.max_results_per_batch`.
pub const MAX_RESULTS_PER_BATCH: usize = 100_000;
/// `limits.max_targets_per_probe`.
pub const MAX_TARGETS_PER_PROBE: usize = 10_000;
/// `limits.max_series_per_region`: room for a probe at the default
/// `max_targets_per_probe` (each target is at most
/// `vantage_probe::stats::MAX_SERIES_PER_TARGET` series) and its region's
/// other probes.
pub const MAX_SERIES_PER_REGION: usize = 2_000_000;
/// `limits.max_series`: a fleet of 100 regions gets 200,000 series each.
pub const MAX_SERIES: usize = 20_000_000;
/// `limits.max_batches_per_second`.
pub const MAX_BATCHES_PER_SECOND: usize = 50;
/// `limits.max_result_age`.
pub const MAX_RESULT_AGE: Duration = Duration::from_secs(7 * DAY);
/// `limits.max_future`.
pub const MAX_FUTURE: Duration = Duration::from_secs(300);

/// `probes.silent_after`.
pub const SILENT_AFTER: Duration = Duration::from_secs(60);
/// `probes.forget_after`.
pub const FORGET_AFTER: Duration = Duration::from_secs(DAY);
/// `probes.max_clock_offset`.
pub const MAX_CLOCK_OFFSET: Duration = Duration::from_secs(5);

/// `evidence.evaluate_every`.
pub const EVALUATE_EVERY: Duration = Duration::from_secs(10);
/// `evidence.recent`.
pub const RECENT: Duration = Duration::from_secs(15 * 60);
/// `evidence.baseline`.
pub const BASELINE: Duration = Duration::from_secs(3600);
/// `evidence.resolve_after`.
pub const RESOLVE_AFTER: Duration = Duration::from_secs(180);
