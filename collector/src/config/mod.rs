//! The collector's configuration: a strict TOML file turned into a validated
//! [`Config`]. Unknown fields are errors, and every invalid value is reported
//! with the file, line, field and value.

//!
//! `raw.rs` mirrors the file, `validate.rs` checks it (through the probe's
//! [`vantage_probe::config::span`] checker, so both configs report alike),
//! `default.rs` and `ceiling.rs` hold the defaults and the maxima, and
//! `file_sd.rs` reads the fleet inventory's target lists.

pub mod ceiling;
pub mod default;
pub mod file_sd;
mod raw;
mod validate;

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vantage_probe::config::file::{Kind, ReadError, read_text};
use vantage_probe::config::span::line_col;
use vantage_probe::result::MAX_NAME_LEN;

/// A validated collector configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The fleet's name, written at the top of every report so that
    /// staging evidence is never mistaken for production's.
    pub fleet: String,
    /// Where the API, `/metrics` and health endpoints are served.
    pub listen: SocketAddr,
    /// Where the embedded store lives.
    pub data_dir: PathBuf,
    /// Certificate chain and key (PEM) to serve TLS; plain HTTP without.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How often the config, token and TLS files are looked at for a
    /// change (which reloads the tokens and the certificate).
    pub watch_every: Duration,
    /// How long a client may take over each part of a request, and how
    /// many connections may be open at once.
    pub connections: ConnectionLimits,
    /// Who may push, and as which region.
    pub tokens: Vec<TokenBinding>,
    /// The files the tokens were read from (watched for rotation).
    pub token_files: Vec<PathBuf>,
    /// How long stored data is kept.
    pub retention: Retention,
    /// What one probe may send.
    pub limits: IngestLimits,
    /// When a probe counts as silent, forgotten, or off-clock.
    pub probes: ProbePolicy,
    /// The fleet inventory's file_sd files (empty: no inventory).
    pub inventory: Vec<PathBuf>,
    /// How evidence is judged and incidents kept.
    pub evidence: EvidencePolicy,
}

/// How evidence is judged and incidents kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvidencePolicy {
    /// How often the matrix is judged and incidents updated.
    pub evaluate_every: Duration,
    /// The recent window in which faults are looked for.
    pub recent: Duration,
    /// The baseline window before it.
    pub baseline: Duration,
    /// How long an incident's paths must be clean before it is resolved.
    pub resolve_after: Duration,
}

/// Limits that keep slow or stuck clients from holding the listener: every
/// part of a connection has a deadline, and their number has a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From accepting a connection (or the first byte of a kept-alive
    /// connection's next request) to the end of the request head.
    pub header_read_timeout: Duration,
    /// From the end of a request head to the end of its body: the whole
    /// body, however slowly it trickles.
    pub body_read_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// From accepting a connection to the end of its TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Most connections open at once; one more is accepted and closed at
    /// once.
    pub max_connections: usize,
}

/// A bearer token bound to one region (and optionally to some probes in it).
#[derive(Clone, PartialEq, Eq)]
pub struct TokenBinding {
    /// The secret.
    pub token: String,
    /// The only region this token may report for.
    pub src_region: String,
    /// If set, the only probe ids this token may report for.
    pub probe_ids: Option<BTreeSet<String>>,
}

/// Retention of stored data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Per-minute rollups (successes live only here).
    pub rollups: Duration,
    /// Individual failures, kept longer: they are the evidence.
    pub failures: Duration,
    /// Batch receipts used to recognise retried batches.
    pub receipts: Duration,
}

/// The series one probe adds to `/metrics` (its `vantage_fleet_probe_*`
/// gauges): the series budget counts it, and the exposition's test keeps
/// it true.
pub const SERIES_PER_PROBE: usize = 5;

/// Limits that protect the collector from one broken or hostile probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// Largest request body, compressed.
    pub max_body_bytes: usize,
    /// Largest body after decompression: what `max_results_per_batch`
    /// results can take as JSON, within `max_body_bytes` times
    /// [`default::DECOMPRESSION_RATIO`] and [`ceiling::MAX_DECOMPRESSED_BYTES`].
    pub max_decompressed_bytes: usize,
    /// Most bodies decoded at once (each off the async threads).
    pub max_concurrent_decodes: usize,
    /// Most results in one batch.
    pub max_results_per_batch: usize,
    /// Most distinct targets one probe may report.
    pub max_targets_per_probe: usize,
    /// Most series one region's probes and targets may expose on `/metrics`.
    pub max_series_per_region: usize,
    /// Most series the whole fleet may expose; each region may take its
    /// share (this over the regions the tokens name).
    pub max_series: usize,
    /// Most batches per probe per second (a token bucket of this size).
    pub max_batches_per_second: u32,
    /// Oldest result accepted.
    pub max_result_age: Duration,
    /// Furthest in the future a result may claim to be.
    pub max_future: Duration,
}

/// How probes are judged alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbePolicy {
    /// A probe with no batch for this long is silent.
    pub silent_after: Duration,
    /// A probe silent this long is forgotten (its series removed).
    pub forget_after: Duration,
    /// A probe whose clock is off by more than this is flagged.
    pub max_clock_offset: Duration,
}

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read: missing, not a regular file, too
    /// large, or not UTF-8.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Not TOML, or not this schema.
    #[error("{path}:{line}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// Values are wrong; every problem is listed.
    #[error("{path}: {} invalid value{}:\n{}", .problems.len(), if .problems.len() == 1 { "" } else { "s" }, .problems.join("\n"))]
    Invalid {
        /// The file.
        path: String,
        /// `  path:line: field = value: reason` per problem.
        problems: Vec<String>,
    },
}

impl IngestLimits {
    /// The limits of a config that sets none.
    pub fn defaults() -> IngestLimits {
        let mut c = vantage_probe::config::span::Checker::new("");
        validate::limits(&mut c, &raw::RawLimits::default())
    }
}

impl Config {
    /// Reads and validates the config at `path`. Relative paths in it
    /// (`data_dir`, `token_file`) are relative to its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_text(path, Kind::Config)?;
        Config::parse(&text, path)
    }

    /// Validates `text` as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let raw: raw::Raw = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: name.clone(),
            line: e.span().map_or(1, |s| line_col(text, s.start).0),
            message: e.message().trim().to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        validate::validate(&raw, text, base).map_err(|problems| ConfigError::Invalid {
            problems: problems
                .iter()
                .map(|p| format!("  {}", p.shown_in(&name)))
                .collect(),
            path: name,
        })
    }
}

/// The identifier rule of the probe's region, zone and fleet names.
pub fn valid_ident(s: &str) -> bool {
    vantage_probe::result::valid_ident(s, MAX_NAME_LEN)
}

impl fmt::Debug for TokenBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBinding")
            .field("token", &"<redacted>")
            .field("src_region", &self.src_region)
            .field("probe_ids", &self.probe_ids)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::default::DAY;
    use super::*;

    const GOOD: &str = r#"
[server]
listen = "127.0.0.1:0"
data_dir = "data"

[[tokens]]
token = "0123456789abcdef0123"
src_region = "us-east-2"

[[tokens]]
token = "fedcba9876543210fedc"
src_region = "us-west-1"
probe_ids = ["w1", "w2"]
"#;

    #[test]
    fn a_good_config_fills_defaults() {
        let c = Config::parse(GOOD, Path::new("/etc/vantage/collector.toml")).unwrap();
        assert_eq!(c.data_dir, Path::new("/etc/vantage/data"));
        assert_eq!(c.tokens.len(), 2);
        assert_eq!(c.retention.failures, Duration::from_secs(90 * DAY));
        assert!(
            c.retention.failures > c.retention.rollups,
            "failures outlive successes"
        );
        assert_eq!(c.limits.max_targets_per_probe, 10_000);
        assert_eq!(c.connections.max_connections, 1024);
        assert_eq!(c.connections.header_read_timeout, Duration::from_secs(10));
        assert!(
            !format!("{c:?}").contains("0123456789abcdef"),
            "tokens never print"
        );
    }

    #[test]
    fn every_problem_is_named_with_its_line() {
        let text = r#"
[server]
listen = "everywhere"

[[tokens]]
token = "short"
src_region = "us east"

[limits]
max_targets_per_probe = 0

[retention]
failures = "forever"
"#;
        let err = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "c.toml: 6 invalid values:
  c.toml:3: server.listen = \"everywhere\": must be an IP:port like \"0.0.0.0:9640\"
  c.toml: server.data_dir: required (where the store keeps its data)
  c.toml:5: tokens[0]: the token is 5 characters long; use at least 16 (e.g. `openssl rand -hex 32`)
  c.toml:7: tokens[0].src_region = \"us east\": must be 1-63 characters of letters, digits, '-', '_' or '.'
  c.toml:13: retention.failures = \"forever\": not a duration (expected number at 0); write it like \"60s\" or \"30d\"
  c.toml:10: limits.max_targets_per_probe = 0: must be between 1 and 1000000"
        );
    }

    #[test]
    fn series_bounds_hold_one_probe_and_a_region_within_the_fleet() {
        let base = "[server]\ndata_dir = \"d\"\n\n[[tokens]]\ntoken = \"0123456789abcdef0123\"\nsrc_region = \"east\"\n\n[limits]\n";
        let err = |limits: &str| {
            Config::parse(&format!("{base}{limits}"), Path::new("c.toml"))
                .unwrap_err()
                .to_string()
        };
        // The one problem, after the file's summary line.
        let one = |limits: &str| {
            let e = err(limits);
            let (head, problem) = e.split_once("\n  ").unwrap_or((&e, ""));
            assert_eq!(head, "c.toml: 1 invalid value:", "{e}");
            problem.to_string()
        };
        assert_eq!(
            one("max_series_per_region = 3000\nmax_series = 2000\n"),
            "c.toml:9: limits.max_series_per_region = 3000: must be at most limits.max_series (2000)"
        );
        assert_eq!(
            one("max_series = 1000000\n"),
            "c.toml:9: limits.max_series = 1000000: must be at least limits.max_series_per_region (2000000)"
        );
        assert_eq!(
            one("max_series_per_region = 100\n"),
            "c.toml:9: limits.max_series_per_region = 100: must be at least 131: one probe (5 series) with one target (at most 126)"
        );
        let c = Config::parse(
            &format!("{base}max_series = 2000000\n"),
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(
            (c.limits.max_series_per_region, c.limits.max_series),
            (2_000_000, 2_000_000)
        );
    }

    #[test]
    fn unknown_fields_name_the_line() {
        let err = Config::parse(
            "[server]\ndata_dir = \"d\"\nlisten_on = \"x\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("c.toml:3: unknown field `listen_on`"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod fixtures;
