//! How one connect and one lookup are made: plain option types, set by
//! the config (or the `check` command line) and taken by `connect` and
//! `dns`, which sit above the config.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// How to connect: the per-target knobs of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Give up after this long; the attempt is then a `timeout`.
    pub timeout: Duration,
    /// Bind to this local address first (to compare egress paths).
    pub source: Option<IpAddr>,
    /// Bind to this network device (`SO_BINDTODEVICE`; needs CAP_NET_RAW).
    pub bind_device: Option<Arc<str>>,
}

/// Which address families a target is probed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Families {
    /// Look up A records and connect over IPv4.
    pub ipv4: bool,
    /// Look up AAAA records and connect over IPv6.
    pub ipv6: bool,
}

/// How the probe resolves names (the `[dns]` config section, validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// Explicit resolvers; `None` reads the system's `/etc/resolv.conf`.
    pub servers: Option<Vec<SocketAddr>>,
    /// Per-query timeout.
    pub timeout: Duration,
    /// Answer from `/etc/hosts` before asking DNS.
    pub use_hosts_file: bool,
    /// Query over TCP only (for explicit servers); UDP with TCP fallback otherwise.
    pub tcp_only: bool,
}

impl Families {
    /// Both IPv4 and IPv6.
    pub const BOTH: Families = Families {
        ipv4: true,
        ipv6: true,
    };

    /// Whether `ip` belongs to an enabled family.
    pub fn allows(self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(_) => self.ipv4,
            IpAddr::V6(_) => self.ipv6,
        }
    }
}
