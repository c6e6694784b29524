//! The file as written: serde structs that reject unknown fields, every
//! value kept with its span so a problem can name its line.

use serde::Deserialize;
use toml::Spanned;

pub(super) type S<T> = Spanned<T>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) tokens: Vec<S<RawToken>>,
    #[serde(default)]
    pub(super) retention: RawRetention,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) probes: RawProbes,
    #[serde(default)]
    pub(super) inventory: RawInventory,
    #[serde(default)]
    pub(super) evidence: RawEvidence,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvidence {
    pub(super) evaluate_every: Option<S<String>>,
    pub(super) recent: Option<S<String>>,
    pub(super) baseline: Option<S<String>>,
    pub(super) resolve_after: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInventory {
    #[serde(default)]
    pub(super) file_sd: Vec<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) fleet: Option<S<String>>,
    pub(super) listen: Option<S<String>>,
    pub(super) data_dir: Option<S<String>>,
    pub(super) tls_cert_file: Option<S<String>>,
    pub(super) tls_key_file: Option<S<String>>,
    pub(super) watch_every: Option<S<String>>,
    pub(super) header_read_timeout: Option<S<String>>,
    pub(super) body_read_timeout: Option<S<String>>,
    pub(super) idle_timeout: Option<S<String>>,
    pub(super) tls_handshake_timeout: Option<S<String>>,
    pub(super) max_connections: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToken {
    pub(super) token: Option<S<String>>,
    pub(super) token_file: Option<S<String>>,
    pub(super) src_region: Option<S<String>>,
    pub(super) probe_ids: Option<Vec<S<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    pub(super) rollups: Option<S<String>>,
    pub(super) failures: Option<S<String>>,
    pub(super) receipts: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) max_body_bytes: Option<S<i64>>,
    pub(super) max_results_per_batch: Option<S<i64>>,
    pub(super) max_targets_per_probe: Option<S<i64>>,
    pub(super) max_series_per_region: Option<S<i64>>,
    pub(super) max_series: Option<S<i64>>,
    pub(super) max_batches_per_second: Option<S<i64>>,
    pub(super) max_result_age: Option<S<String>>,
    pub(super) max_future: Option<S<String>>,
    pub(super) max_concurrent_decodes: Option<S<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbes {
    pub(super) silent_after: Option<S<String>>,
    pub(super) forget_after: Option<S<String>>,
    pub(super) max_clock_offset: Option<S<String>>,
}
