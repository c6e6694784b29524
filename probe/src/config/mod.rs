//! The probe's configuration: a strict TOML file (plus optional Prometheus
//! file_sd target lists) turned into a validated [`Config`].
//!
//! Two stages: `raw.rs` mirrors the file and rejects unknown fields;
//! `validate.rs` checks every value and reports every problem at once, each
//! naming the file, the line, the field and the value.

mod ca;
mod collector;
pub mod file;
mod file_sd;
mod options;
mod push;
mod raw;
pub mod span;
mod spool_dir;
mod targets;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::result::Identity;

pub use ca::ca_roots;
pub use options::{ConnectOptions, DnsSettings, Families};
pub use push::{INVENTORY_CACHE_FILE, PushSettings, inventory_cache_path};
pub use span::Problem;
use span::line_col;

/// Hard ceilings no config can exceed: a probe fleet must never become a flood.
pub mod ceiling {
    use std::time::Duration;

    /// Most connects per second a probe may be configured for.
    pub const CONNECTS_PER_SECOND: u32 = 100_000;
    /// Most DNS lookups per second a probe may be configured for.
    pub const DNS_LOOKUPS_PER_SECOND: u32 = 10_000;
    /// Most operations in flight at once.
    pub const IN_FLIGHT: u32 = 16_384;
    /// Most targets one probe may have.
    pub const TARGETS: usize = 100_000;
    /// Shortest interval between two rounds of one target.
    pub const MIN_INTERVAL: Duration = Duration::from_millis(50);
    /// Longest interval between two rounds of one target.
    pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
    /// Shortest connect or DNS timeout.
    pub const MIN_TIMEOUT: Duration = Duration::from_millis(10);
    /// Longest connect or DNS timeout.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
}

/// Defaults for what a config leaves out.
pub mod default {
    use std::time::Duration;

    /// Where `/metrics`, `/-/healthy` and `/-/ready` are served.
    pub const ADMIN_LISTEN: &str = "0.0.0.0:9650";
    /// Operations (lookups and connects) in flight at once.
    pub const MAX_IN_FLIGHT: u32 = 128;
    /// Connects per second, all targets together.
    pub const MAX_CONNECTS_PER_SECOND: u32 = 200;
    /// DNS lookups per second, all targets together.
    pub const MAX_DNS_LOOKUPS_PER_SECOND: u32 = 50;
    /// Time between two rounds of a target.
    pub const INTERVAL: Duration = Duration::from_secs(10);
    /// Connect timeout. Above 3 s so that two lost SYNs (retried at 1 s and
    /// 2 s, or 1 s and 3 s) are seen as slow connects, not as timeouts.
    pub const TIMEOUT: Duration = Duration::from_secs(5);
    /// DNS query timeout.
    pub const DNS_TIMEOUT: Duration = Duration::from_secs(2);
}

/// A validated probe configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Who this probe is.
    pub identity: Identity,
    /// The admin (metrics and health) listener.
    pub admin_listen: SocketAddr,
    /// Global caps.
    pub limits: Limits,
    /// How names are resolved.
    pub dns: DnsSettings,
    /// What is probed, sorted by name.
    pub targets: Vec<Arc<Target>>,
    /// The file_sd files the targets were partly read from.
    pub file_sd_paths: Vec<PathBuf>,
    /// Where results are pushed, if anywhere.
    pub push: Option<PushSettings>,
    /// How many of `targets` came from the collector's fleet inventory.
    pub inventory_targets: usize,
}

/// Global caps that no target list can exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Lookups plus connects in flight at once.
    pub max_in_flight: u32,
    /// Connect attempts started per second.
    pub max_connects_per_second: u32,
    /// DNS lookups started per second.
    pub max_dns_lookups_per_second: u32,
}

/// One thing to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Unique name; the `target` label.
    pub name: Arc<str>,
    /// What to connect to.
    pub host: Host,
    /// TCP port.
    pub port: u16,
    /// User labels (`service`, `provider`, ...), bounded by config.
    pub labels: Arc<BTreeMap<String, String>>,
    /// Time between two rounds.
    pub interval: Duration,
    /// Address families to resolve and connect over.
    pub families: Families,
    /// Timeout, source address and device of each connect.
    pub connect: ConnectOptions,
}

/// A target's host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IP literal: no DNS lookup.
    Ip(IpAddr),
    /// A name resolved every round.
    Name(Arc<str>),
}

/// Identity fields given on the command line or in the environment; they
/// win over the file so one config can serve a whole Kubernetes deployment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces `probe.src_region`.
    pub src_region: Option<String>,
    /// Replaces `probe.zone`.
    pub zone: Option<String>,
    /// Replaces `probe.id`.
    pub probe_id: Option<String>,
}

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read: missing, not a regular file, too
    /// large, or not UTF-8.
    #[error(transparent)]
    Read(#[from] file::ReadError),
    /// The file is not valid TOML, JSON, or does not fit the schema.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file, as it was named to the probe.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the TOML or JSON parser said, without its position.
        message: String,
    },
    /// The file parsed but values are wrong; all problems are listed.
    #[error("{path}: {} invalid value{}:\n{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, ProblemList { path, problems })]
    Invalid {
        /// The file, as it was named to the probe.
        path: String,
        /// Every invalid value, each naming its field and the limit.
        problems: Vec<Problem>,
    },
}

struct ProblemList<'a> {
    path: &'a str,
    problems: &'a [Problem],
}

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  {}", p.shown_in(self.path))?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads and validates the config at `path`, with identity overrides.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let text = file::read_text(path, file::Kind::Config)?;
        Config::parse(&text, path, overrides)
    }

    /// Like [`Config::load`], with the fleet inventory `text` (fetched from
    /// `shown`) in place of the cached one: how a fetched inventory is
    /// checked before it is cached.
    pub fn load_with_inventory(
        path: &Path,
        overrides: &Overrides,
        shown: &str,
        text: &str,
    ) -> Result<Config, ConfigError> {
        let config = file::read_text(path, file::Kind::Config)?;
        Config::parse_inner(
            &config,
            path,
            overrides,
            Some(&validate::Inventory { shown, text }),
        )
    }

    /// Validates config `text` as if read from `path` (file_sd paths are
    /// relative to its directory).
    pub fn parse(text: &str, path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        Config::parse_inner(text, path, overrides, None)
    }

    fn parse_inner(
        text: &str,
        path: &Path,
        overrides: &Overrides,
        inventory: Option<&validate::Inventory<'_>>,
    ) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Syntax {
                path: name.clone(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        validate::validate(raw, text, base, overrides, inventory).map_err(|problems| {
            ConfigError::Invalid {
                path: name,
                problems,
            }
        })
    }

    /// Connects per second the targets ask for, counting one address per
    /// enabled family for names (a floor: names may resolve to more).
    pub fn demanded_connects_per_second(&self) -> f64 {
        self.targets
            .iter()
            .map(|t| {
                let per_round = match t.host {
                    Host::Ip(_) => 1.0,
                    Host::Name(_) => {
                        f64::from(u8::from(t.families.ipv4) + u8::from(t.families.ipv6))
                    }
                };
                per_round / t.interval.as_secs_f64()
            })
            .sum()
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// Splits `host:port` or `[v6]:port`.
pub fn split_host_port(s: &str) -> Option<(&str, i64)> {
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse().ok()?;
    if host.is_empty() || (host.contains(':') && !host.starts_with('[')) {
        return None;
    }
    Some((host, port))
}

/// Parses a target host: an IP literal (IPv6 with or without brackets) or a
/// DNS name of RFC 1123 labels (letters, digits and inner hyphens, 1-63
/// bytes each, 253 in all, one trailing dot allowed), which is lower-cased.
/// A name whose last label is all digits is refused: no top-level domain
/// is, so `10.20.0.5.7` is a mistyped address, never a name.
pub fn parse_host(h: &str) -> Result<Host, &'static str> {
    if let Ok(ip) = h
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(Host::Ip(ip));
    }
    let name = h.strip_suffix('.').unwrap_or(h);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.is_empty() || h.len() > 253 || !name.split('.').all(label_ok) {
        return Err(
            "must be an IP address or a DNS name of letters, digits and inner '-' \
             (no port, no scheme)",
        );
    }
    if name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(
            "not an IPv4 address (four numbers of 0-255), and not a DNS name \
                    (whose last label is never all digits)",
        );
    }
    Ok(Host::Name(h.to_ascii_lowercase().into()))
}

#[cfg(test)]
mod tests;
