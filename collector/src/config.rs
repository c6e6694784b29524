//! The collector's configuration: a strict TOML file turned into a validated
//! [`Config`]. Unknown fields are errors, and every invalid value is reported
//! with the file, line, field and value.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use vantage_probe::result::{MAX_NAME_LEN, MAX_PROBE_ID_LEN, ident_rule};

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

/// Limits that protect the collector from one broken or hostile probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// Largest request body, compressed.
    pub max_body_bytes: usize,
    /// Largest body after decompression.
    pub max_decompressed_bytes: usize,
    /// Most results in one batch.
    pub max_results_per_batch: usize,
    /// Most distinct targets one probe may report.
    pub max_targets_per_probe: usize,
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
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
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

type S<T> = Spanned<T>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    tokens: Vec<S<RawToken>>,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    probes: RawProbes,
    #[serde(default)]
    inventory: RawInventory,
    #[serde(default)]
    evidence: RawEvidence,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvidence {
    evaluate_every: Option<S<String>>,
    recent: Option<S<String>>,
    baseline: Option<S<String>>,
    resolve_after: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    #[serde(default)]
    file_sd: Vec<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    fleet: Option<S<String>>,
    listen: Option<S<String>>,
    data_dir: Option<S<String>>,
    tls_cert_file: Option<S<String>>,
    tls_key_file: Option<S<String>>,
    watch_every: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    token: Option<S<String>>,
    token_file: Option<S<String>>,
    src_region: Option<S<String>>,
    probe_ids: Option<Vec<S<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    rollups: Option<S<String>>,
    failures: Option<S<String>>,
    receipts: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_body_bytes: Option<S<i64>>,
    max_results_per_batch: Option<S<i64>>,
    max_targets_per_probe: Option<S<i64>>,
    max_batches_per_second: Option<S<i64>>,
    max_result_age: Option<S<String>>,
    max_future: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbes {
    silent_after: Option<S<String>>,
    forget_after: Option<S<String>>,
    max_clock_offset: Option<S<String>>,
}

const DAY: u64 = 86_400;

impl Config {
    /// Reads and validates the config at `path`. Relative paths in it
    /// (`data_dir`, `token_file`) are relative to its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Validates `text` as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let raw: Raw = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: name.clone(),
            line: e.span().map_or(1, |s| line_of(s.start)),
            message: e.message().trim().to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut c = Check {
            problems: Vec::new(),
            name: &name,
            line_of: &line_of,
        };

        let listen = match &raw.server.listen {
            Some(v) => c.parse(v, "server.listen", "an IP:port like \"0.0.0.0:9640\""),
            None => Some(SocketAddr::from(([127, 0, 0, 1], 9640))),
        };
        let fleet = match &raw.server.fleet {
            Some(v) if valid_ident(v.get_ref()) => Some(v.get_ref().clone()),
            Some(v) => {
                c.bad(v, "server.fleet", &ident_rule(MAX_NAME_LEN));
                None
            }
            None => Some("unnamed".to_string()),
        };
        let data_dir = match &raw.server.data_dir {
            Some(v) if v.get_ref().is_empty() => {
                c.bad(v, "server.data_dir", "must not be empty");
                None
            }
            Some(v) => Some(base.join(v.get_ref())),
            None => {
                c.missing("server.data_dir", "where the store keeps its data");
                None
            }
        };

        let tls = match (&raw.server.tls_cert_file, &raw.server.tls_key_file) {
            (None, None) => None,
            (Some(c), Some(k)) => Some((base.join(c.get_ref()), base.join(k.get_ref()))),
            (Some(v), None) | (None, Some(v)) => {
                c.bad(
                    v,
                    "server.tls_cert_file / tls_key_file",
                    "set both, or neither for plain HTTP",
                );
                None
            }
        };

        let token_files = raw
            .tokens
            .iter()
            .filter_map(|t| t.get_ref().token_file.as_ref())
            .map(|f| base.join(f.get_ref()))
            .collect();
        let mut tokens = Vec::new();
        for (i, t) in raw.tokens.iter().enumerate() {
            if let Some(b) = c.token(i, t, base) {
                tokens.push(b);
            }
        }
        for (i, a) in tokens.iter().enumerate() {
            if tokens[..i].iter().any(|b| b.token == a.token) {
                c.problems.push(format!(
                    "  {name}: tokens[{i}]: the same token is bound twice; a token names exactly one region"
                ));
            }
        }

        let dur = |c: &mut Check<'_>, v: &Option<S<String>>, field: &str, default: Duration| {
            v.as_ref().map_or(Some(default), |v| c.duration(v, field))
        };
        let watch_every = dur(
            &mut c,
            &raw.server.watch_every,
            "server.watch_every",
            Duration::from_secs(5),
        )
        .unwrap_or_default();
        let rollups = dur(
            &mut c,
            &raw.retention.rollups,
            "retention.rollups",
            Duration::from_secs(30 * DAY),
        );
        let failures = dur(
            &mut c,
            &raw.retention.failures,
            "retention.failures",
            Duration::from_secs(90 * DAY),
        );
        let receipts = dur(
            &mut c,
            &raw.retention.receipts,
            "retention.receipts",
            Duration::from_secs(7 * DAY),
        );
        let count =
            |c: &mut Check<'_>, v: &Option<S<i64>>, field: &str, max: i64, default: usize| {
                v.as_ref().map_or(Some(default), |v| c.count(v, field, max))
            };
        let max_body_bytes = count(
            &mut c,
            &raw.limits.max_body_bytes,
            "limits.max_body_bytes",
            1 << 30,
            8 << 20,
        );
        let limits = IngestLimits {
            max_body_bytes: max_body_bytes.unwrap_or(0),
            // Compressed JSON of results shrinks about 10x; allow a generous
            // ratio but never an unbounded one (a gzip bomb).
            max_decompressed_bytes: max_body_bytes.unwrap_or(0).saturating_mul(32),
            max_results_per_batch: count(
                &mut c,
                &raw.limits.max_results_per_batch,
                "limits.max_results_per_batch",
                10_000_000,
                100_000,
            )
            .unwrap_or(0),
            max_targets_per_probe: count(
                &mut c,
                &raw.limits.max_targets_per_probe,
                "limits.max_targets_per_probe",
                1_000_000,
                10_000,
            )
            .unwrap_or(0),
            max_batches_per_second: count(
                &mut c,
                &raw.limits.max_batches_per_second,
                "limits.max_batches_per_second",
                100_000,
                50,
            )
            .unwrap_or(0) as u32,
            max_result_age: dur(
                &mut c,
                &raw.limits.max_result_age,
                "limits.max_result_age",
                Duration::from_secs(7 * DAY),
            )
            .unwrap_or_default(),
            max_future: dur(
                &mut c,
                &raw.limits.max_future,
                "limits.max_future",
                Duration::from_secs(300),
            )
            .unwrap_or_default(),
        };
        let probes = ProbePolicy {
            silent_after: dur(
                &mut c,
                &raw.probes.silent_after,
                "probes.silent_after",
                Duration::from_secs(60),
            )
            .unwrap_or_default(),
            forget_after: dur(
                &mut c,
                &raw.probes.forget_after,
                "probes.forget_after",
                Duration::from_secs(DAY),
            )
            .unwrap_or_default(),
            max_clock_offset: dur(
                &mut c,
                &raw.probes.max_clock_offset,
                "probes.max_clock_offset",
                Duration::from_secs(5),
            )
            .unwrap_or_default(),
        };
        if probes.forget_after <= probes.silent_after {
            c.problems.push(format!(
                "  {name}: probes.forget_after ({}) must be longer than probes.silent_after ({})",
                humantime::format_duration(probes.forget_after),
                humantime::format_duration(probes.silent_after)
            ));
        }

        let evidence = EvidencePolicy {
            evaluate_every: dur(
                &mut c,
                &raw.evidence.evaluate_every,
                "evidence.evaluate_every",
                Duration::from_secs(10),
            )
            .unwrap_or_default(),
            recent: dur(
                &mut c,
                &raw.evidence.recent,
                "evidence.recent",
                Duration::from_secs(15 * 60),
            )
            .unwrap_or_default(),
            baseline: dur(
                &mut c,
                &raw.evidence.baseline,
                "evidence.baseline",
                Duration::from_secs(3600),
            )
            .unwrap_or_default(),
            resolve_after: dur(
                &mut c,
                &raw.evidence.resolve_after,
                "evidence.resolve_after",
                Duration::from_secs(180),
            )
            .unwrap_or_default(),
        };
        if evidence.resolve_after < evidence.evaluate_every {
            c.problems.push(format!(
                "  {name}: evidence.resolve_after ({}) must be at least evidence.evaluate_every ({})",
                humantime::format_duration(evidence.resolve_after),
                humantime::format_duration(evidence.evaluate_every)
            ));
        }
        let mut inventory = Vec::new();
        for (i, f) in raw.inventory.file_sd.iter().enumerate() {
            let path = base.join(f.get_ref());
            match crate::inventory::read(&path) {
                Ok(_) => inventory.push(path),
                Err(e) => c.bad(f, &format!("inventory.file_sd[{i}]"), &e),
            }
        }

        if !c.problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: name.clone(),
                problems: c.problems,
            });
        }
        Ok(Config {
            fleet: fleet.expect("checked"),
            listen: listen.expect("checked"),
            data_dir: data_dir.expect("checked"),
            tls,
            watch_every,
            tokens,
            token_files,
            retention: Retention {
                rollups: rollups.expect("checked"),
                failures: failures.expect("checked"),
                receipts: receipts.expect("checked"),
            },
            limits,
            probes,
            inventory,
            evidence,
        })
    }
}

struct Check<'a> {
    problems: Vec<String>,
    name: &'a str,
    line_of: &'a dyn Fn(usize) -> usize,
}

impl Check<'_> {
    fn bad<T: fmt::Debug>(&mut self, v: &S<T>, field: &str, reason: &str) {
        let line = (self.line_of)(v.span().start);
        self.problems.push(format!(
            "  {}:{line}: {field} = {:?}: {reason}",
            self.name,
            v.get_ref()
        ));
    }

    fn missing(&mut self, field: &str, what: &str) {
        self.problems
            .push(format!("  {}: {field}: required ({what})", self.name));
    }

    fn parse<T: std::str::FromStr>(&mut self, v: &S<String>, field: &str, want: &str) -> Option<T> {
        let r = v.get_ref().parse().ok();
        if r.is_none() {
            self.bad(v, field, &format!("must be {want}"));
        }
        r
    }

    fn duration(&mut self, v: &S<String>, field: &str) -> Option<Duration> {
        match humantime::parse_duration(v.get_ref()) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.bad(v, field, "must be longer than zero");
                None
            }
            Err(e) => {
                self.bad(
                    v,
                    field,
                    &format!("not a duration ({e}); write it like \"60s\" or \"30d\""),
                );
                None
            }
        }
    }

    fn count(&mut self, v: &S<i64>, field: &str, max: i64) -> Option<usize> {
        let n = *v.get_ref();
        if n < 1 || n > max {
            self.bad(v, field, &format!("must be between 1 and {max}"));
            return None;
        }
        Some(n as usize)
    }

    fn token(&mut self, i: usize, t: &S<RawToken>, base: &Path) -> Option<TokenBinding> {
        let r = t.get_ref();
        let field = format!("tokens[{i}]");
        let line = (self.line_of)(t.span().start);
        let token = match (&r.token, &r.token_file) {
            (Some(v), None) => Some(v.get_ref().trim().to_string()),
            (None, Some(f)) => {
                let path = base.join(f.get_ref());
                match std::fs::read_to_string(&path) {
                    Ok(s) => Some(s.trim().to_string()),
                    Err(e) => {
                        self.bad(
                            f,
                            &format!("{field}.token_file"),
                            &format!("cannot read {}: {e}", path.display()),
                        );
                        None
                    }
                }
            }
            _ => {
                self.problems.push(format!(
                    "  {}:{line}: {field}: set exactly one of token and token_file",
                    self.name
                ));
                None
            }
        };
        // Never echo a secret into an error message.
        if let Some(tok) = &token
            && tok.len() < vantage_probe::wire::MIN_TOKEN_LEN
        {
            self.problems.push(format!(
                "  {}:{line}: {field}: the token is {} characters long; use at least {} (e.g. `openssl rand -hex 32`)",
                self.name,
                tok.len(),
                vantage_probe::wire::MIN_TOKEN_LEN
            ));
        }
        let src_region = match &r.src_region {
            Some(v) if valid_ident(v.get_ref()) => Some(v.get_ref().clone()),
            Some(v) => {
                self.bad(v, &format!("{field}.src_region"), &ident_rule(MAX_NAME_LEN));
                None
            }
            None => {
                self.problems.push(format!(
                    "  {}:{line}: {field}.src_region: required (the one region this token may report for)",
                    self.name
                ));
                None
            }
        };
        let probe_ids = r.probe_ids.as_ref().map(|ids| {
            ids.iter()
                .filter_map(|v| {
                    if vantage_probe::result::valid_ident(v.get_ref(), MAX_PROBE_ID_LEN) {
                        Some(v.get_ref().clone())
                    } else {
                        self.bad(
                            v,
                            &format!("{field}.probe_ids"),
                            &ident_rule(MAX_PROBE_ID_LEN),
                        );
                        None
                    }
                })
                .collect()
        });
        Some(TokenBinding {
            token: token?,
            src_region: src_region?,
            probe_ids,
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
