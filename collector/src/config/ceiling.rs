//! The largest value each `[limits]` setting and each connection limit of
//! `[server]` accepts: no config can open the collector to unbounded
//! requests.

use std::time::Duration;

/// `limits.max_body_bytes`.
pub const MAX_BODY_BYTES: i64 = 1 << 30;
/// `limits.max_results_per_batch`.
pub const MAX_RESULTS_PER_BATCH: i64 = 10_000_000;
/// The decompressed size of a body, whatever `limits.max_body_bytes` and
/// `limits.max_results_per_batch` allow: a body is read as a stream, so this
/// bounds the time one decode takes, not its memory.
pub const MAX_DECOMPRESSED_BYTES: usize = 256 << 20;
/// `limits.max_concurrent_decodes`.
pub const MAX_CONCURRENT_DECODES: i64 = 1024;
/// `limits.max_targets_per_probe`.
pub const MAX_TARGETS_PER_PROBE: i64 = 1_000_000;
/// `limits.max_series_per_region` and `limits.max_series`.
pub const MAX_SERIES: i64 = 1_000_000_000;
/// `limits.max_batches_per_second`.
pub const MAX_BATCHES_PER_SECOND: i64 = 100_000;
/// `server.max_connections`.
pub const MAX_CONNECTIONS: i64 = 1_000_000;
/// `server.header_read_timeout`, `body_read_timeout`, `idle_timeout` and
/// `tls_handshake_timeout`: a longer one is no timeout at all.
pub const TIMEOUT: Duration = Duration::from_secs(3600);
