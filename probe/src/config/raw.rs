//! The config file as written: serde structs that reject unknown fields and
//! keep every value's position, so that validation can name the line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A value and where it stood in the file.
pub(crate) type S<T> = Spanned<T>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub(crate) probe: RawIdentity,
    #[serde(default)]
    pub(crate) admin: RawAdmin,
    #[serde(default)]
    pub(crate) limits: RawLimits,
    #[serde(default)]
    pub(crate) dns: RawDns,
    #[serde(default)]
    pub(crate) defaults: RawDefaults,
    pub(crate) collector: Option<S<RawCollector>>,
    #[serde(default)]
    pub(crate) targets: Vec<S<RawTarget>>,
    #[serde(default)]
    pub(crate) file_sd: Vec<S<RawFileSd>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentity {
    pub(crate) src_region: Option<S<String>>,
    pub(crate) zone: Option<S<String>>,
    pub(crate) id: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) listen: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub(crate) max_in_flight: Option<S<i64>>,
    pub(crate) max_connects_per_second: Option<S<i64>>,
    pub(crate) max_dns_lookups_per_second: Option<S<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCollector {
    pub(crate) url: Option<S<String>>,
    pub(crate) token: Option<S<String>>,
    pub(crate) token_file: Option<S<String>>,
    pub(crate) spool_dir: Option<S<String>>,
    pub(crate) spool_max_bytes: Option<S<i64>>,
    pub(crate) batch_max_results: Option<S<i64>>,
    pub(crate) flush_interval: Option<S<String>>,
    pub(crate) timeout: Option<S<String>>,
    pub(crate) ca_file: Option<S<String>>,
    pub(crate) inventory: Option<S<bool>>,
    pub(crate) inventory_refresh: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDns {
    pub(crate) servers: Option<S<Vec<S<String>>>>,
    pub(crate) timeout: Option<S<String>>,
    pub(crate) hosts_file: Option<S<bool>>,
    pub(crate) protocol: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefaults {
    pub(crate) interval: Option<S<String>>,
    pub(crate) timeout: Option<S<String>>,
    pub(crate) families: Option<S<Vec<S<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTarget {
    pub(crate) name: Option<S<String>>,
    pub(crate) host: Option<S<String>>,
    pub(crate) port: Option<S<i64>>,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, S<String>>,
    pub(crate) interval: Option<S<String>>,
    pub(crate) timeout: Option<S<String>>,
    pub(crate) families: Option<S<Vec<S<String>>>>,
    pub(crate) source_address: Option<S<String>>,
    pub(crate) bind_device: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFileSd {
    pub(crate) path: Option<S<String>>,
    pub(crate) interval: Option<S<String>>,
    pub(crate) timeout: Option<S<String>>,
    pub(crate) families: Option<S<Vec<S<String>>>>,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, S<String>>,
}

/// One group of a Prometheus file_sd JSON file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSdGroup {
    pub(crate) targets: Vec<String>,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
}
