//! The `[collector]` section once validated: how the probe reaches the
//! collector, and where the fleet inventory it fetched is cached (the config
//! loader reads that cache, the inventory fetcher writes it).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The cached fleet inventory's file name in the spool directory.
pub const INVENTORY_CACHE_FILE: &str = "inventory.json";

/// Where the cached fleet inventory of a probe with spool `spool_dir` lives.
pub fn inventory_cache_path(spool_dir: &Path) -> PathBuf {
    spool_dir.join(INVENTORY_CACHE_FILE)
}

/// How the probe reaches the collector (the `[collector]` config section).
#[derive(Clone, PartialEq, Eq)]
pub struct PushSettings {
    /// Base URL, e.g. `http://collector.internal:9640`.
    pub url: String,
    /// The bearer token of every request: `collector.token` or the
    /// contents of `collector.token_file`, at least
    /// [`MIN_TOKEN_LEN`](crate::wire::MIN_TOKEN_LEN) characters.
    pub token: String,
    /// The file the token was read from, if any. It is read again when the
    /// collector refuses the token (401): a rotated Secret needs no restart.
    pub token_file: Option<PathBuf>,
    /// Where unacknowledged batches wait.
    pub spool_dir: PathBuf,
    /// Most bytes the spool may hold.
    pub spool_max_bytes: u64,
    /// Most results in one batch.
    pub batch_max_results: usize,
    /// How often pending results are sealed and sent.
    pub flush_interval: Duration,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Trust only this CA (PEM) for an `https://` collector; the system's
    /// roots otherwise.
    pub ca_file: Option<PathBuf>,
    /// Fetch the fleet's target list from the collector this often; `None`
    /// when the probe uses only its own targets.
    pub inventory_refresh: Option<Duration>,
}

impl std::fmt::Debug for PushSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushSettings")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("token_file", &self.token_file)
            .field("spool_dir", &self.spool_dir)
            .field("spool_max_bytes", &self.spool_max_bytes)
            .field("batch_max_results", &self.batch_max_results)
            .field("flush_interval", &self.flush_interval)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .field("inventory_refresh", &self.inventory_refresh)
            .finish()
    }
}
