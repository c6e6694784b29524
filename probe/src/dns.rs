//! Timed DNS lookups through hickory-resolver, with its cache off so that every
//! lookup is a real query, and every failure classified.
//!
//! A and AAAA are separate queries sent in parallel; the lookup is timed from
//! the first query to the last answer. One attempt per lookup, no retries:
//! like the connects, a lookup is measured, not made to succeed.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RecordType;

use crate::config::{DnsSettings, Families};
use crate::connect::micros;
use crate::outcome::DnsOutcome;
use crate::result::DnsObservation;

/// A resolver that measures.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
}

/// Why a resolver could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    /// `/etc/resolv.conf` could not be read or parsed.
    #[error("reading the system resolver configuration: {0}")]
    SystemConfig(#[source] NetError),
    /// hickory refused the configuration.
    #[error("building the resolver: {0}")]
    Build(#[source] NetError),
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl Resolver {
    /// Builds a resolver; must be called inside a tokio runtime.
    pub fn new(settings: &DnsSettings) -> Result<Resolver, ResolverError> {
        let (config, mut opts) = match &settings.servers {
            None => hickory_resolver::system_conf::read_system_conf()
                .map_err(ResolverError::SystemConfig)?,
            Some(servers) => {
                let mut config = ResolverConfig::default();
                for server in servers {
                    let mut ns = if settings.tcp_only {
                        NameServerConfig::tcp(server.ip())
                    } else {
                        NameServerConfig::udp_and_tcp(server.ip())
                    };
                    for conn in &mut ns.connections {
                        conn.port = server.port();
                    }
                    config.add_name_server(ns);
                }
                (config, ResolverOpts::default())
            }
        };
        opts.timeout = settings.timeout;
        // One exchange per lookup, bounded by the timeout: a second round of
        // queries would hide the loss we are measuring. (hickory counts
        // `attempts` as retries after the first.)
        opts.attempts = 0;
        opts.num_concurrent_reqs = 1;
        // No cache at all: a cached answer is not a measurement.
        opts.cache_size = 0;
        opts.positive_max_ttl = Some(Duration::ZERO);
        opts.negative_max_ttl = Some(Duration::ZERO);
        opts.use_hosts_file = if settings.use_hosts_file {
            ResolveHosts::Always
        } else {
            ResolveHosts::Never
        };
        let inner = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(ResolverError::Build)?;
        Ok(Resolver { inner })
    }

    /// Looks `host` up over the enabled families, timed.
    pub async fn lookup(&self, host: &str, families: Families) -> (DnsObservation, Vec<IpAddr>) {
        let start = Instant::now();
        let (v4, v6) = tokio::join!(
            self.query(host, RecordType::A, families.ipv4),
            self.query(host, RecordType::AAAA, families.ipv6),
        );
        let duration_us = micros(start.elapsed());
        let mut addresses = Vec::new();
        let mut worst = DnsOutcome::Ok;
        for result in [v4, v6].into_iter().flatten() {
            match result {
                Ok(ips) => addresses.extend(ips),
                Err(outcome) if outcome.severity() > worst.severity() => worst = outcome,
                Err(_) => {}
            }
        }
        let outcome = if addresses.is_empty() {
            if worst == DnsOutcome::Ok {
                DnsOutcome::NoRecords
            } else {
                worst
            }
        } else {
            DnsOutcome::Ok
        };
        let observation = DnsObservation {
            outcome,
            duration_us,
            addresses: addresses.len() as u32,
        };
        (observation, addresses)
    }

    async fn query(
        &self,
        host: &str,
        record_type: RecordType,
        enabled: bool,
    ) -> Option<Result<Vec<IpAddr>, DnsOutcome>> {
        if !enabled {
            return None;
        }
        let result = match self.inner.lookup(host, record_type).await {
            Ok(lookup) => {
                let ips: Vec<IpAddr> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == record_type)
                    .filter_map(|r| r.data.ip_addr())
                    .collect();
                if ips.is_empty() {
                    Err(DnsOutcome::NoRecords)
                } else {
                    Ok(ips)
                }
            }
            Err(err) => Err(classify(&err)),
        };
        Some(result)
    }
}

/// Maps a hickory error onto the DNS taxonomy.
pub(crate) fn classify(err: &NetError) -> DnsOutcome {
    match err {
        NetError::Dns(DnsError::NoRecordsFound(no)) => {
            if no.response_code == ResponseCode::NXDomain {
                DnsOutcome::Nxdomain
            } else {
                DnsOutcome::NoRecords
            }
        }
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => DnsOutcome::Servfail,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => DnsOutcome::Refused,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::NXDomain)) => DnsOutcome::Nxdomain,
        NetError::Timeout => DnsOutcome::Timeout,
        NetError::NoConnections => DnsOutcome::Unreachable,
        NetError::Io(io) => match io.kind() {
            std::io::ErrorKind::TimedOut => DnsOutcome::Timeout,
            std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::HostUnreachable
            | std::io::ErrorKind::NetworkUnreachable
            | std::io::ErrorKind::ConnectionReset => DnsOutcome::Unreachable,
            _ => DnsOutcome::Error,
        },
        _ => DnsOutcome::Error,
    }
}
