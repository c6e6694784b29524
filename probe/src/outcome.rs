//! The bounded failure taxonomy.
//!
//! Every result, metric label and report line names one of these variants and
//! never a raw error string: label values must stay bounded, and an on-call
//! engineer must be able to tell at a glance whether a failure blames the
//! target, the path, the resolver or the probe's own host.

use std::io;

use serde::{Deserialize, Serialize};

/// How one TCP connect attempt to one address ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectOutcome {
    /// The handshake completed.
    Ok,
    /// The target answered the SYN with a RST: the host is up, nothing listens.
    Refused,
    /// No answer before the attempt's timeout (or the kernel gave up retrying).
    Timeout,
    /// An ICMP host-unreachable (or admin-prohibited) came back, or no neighbour answered.
    HostUnreachable,
    /// An ICMP net-unreachable came back, or the probe host has no route.
    NetUnreachable,
    /// The connection was reset during the handshake.
    Reset,
    /// The probe's host could not provide the local address or an ephemeral port.
    LocalAddressUnavailable,
    /// The probe's host ran out of file descriptors or socket buffers.
    LocalResources,
    /// The probe's host refused the operation (local firewall, missing capability).
    LocalPermission,
    /// Any other local error (bad bind device, unsupported address family).
    LocalError,
    /// An error the taxonomy does not know; the raw errno is kept in the result.
    Other,
}

/// How one DNS lookup (all requested address families of one name) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsOutcome {
    /// At least one address came back.
    Ok,
    /// The name does not exist (NXDOMAIN).
    Nxdomain,
    /// The resolver answered SERVFAIL.
    Servfail,
    /// The resolver refused to answer (REFUSED).
    Refused,
    /// The name exists but has no records of the requested families.
    NoRecords,
    /// No answer before the lookup timeout.
    Timeout,
    /// The resolver could not be reached (port unreachable, no route).
    Unreachable,
    /// Any other failure: another response code, a malformed answer.
    Error,
}

/// Who a failure points at: this is what keeps a sick probe host from being
/// reported as an outage of every target it measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Blame {
    /// Nothing failed.
    None,
    /// The target or the network path towards it.
    Remote,
    /// The probe's own host.
    Local,
}

impl ConnectOutcome {
    /// Every variant, in label order.
    pub const ALL: [ConnectOutcome; 11] = [
        ConnectOutcome::Ok,
        ConnectOutcome::Refused,
        ConnectOutcome::Timeout,
        ConnectOutcome::HostUnreachable,
        ConnectOutcome::NetUnreachable,
        ConnectOutcome::Reset,
        ConnectOutcome::LocalAddressUnavailable,
        ConnectOutcome::LocalResources,
        ConnectOutcome::LocalPermission,
        ConnectOutcome::LocalError,
        ConnectOutcome::Other,
    ];

    /// The label value; identical to the serde name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectOutcome::Ok => "ok",
            ConnectOutcome::Refused => "refused",
            ConnectOutcome::Timeout => "timeout",
            ConnectOutcome::HostUnreachable => "host_unreachable",
            ConnectOutcome::NetUnreachable => "net_unreachable",
            ConnectOutcome::Reset => "reset",
            ConnectOutcome::LocalAddressUnavailable => "local_address_unavailable",
            ConnectOutcome::LocalResources => "local_resources",
            ConnectOutcome::LocalPermission => "local_permission",
            ConnectOutcome::LocalError => "local_error",
            ConnectOutcome::Other => "other",
        }
    }

    /// Position in [`ConnectOutcome::ALL`], for fixed-size counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whom this outcome blames.
    pub fn blame(self) -> Blame {
        match self {
            ConnectOutcome::Ok => Blame::None,
            ConnectOutcome::LocalAddressUnavailable
            | ConnectOutcome::LocalResources
            | ConnectOutcome::LocalPermission
            | ConnectOutcome::LocalError => Blame::Local,
            _ => Blame::Remote,
        }
    }

    /// Classifies the error of a failed `socket`, `bind` or `connect`.
    pub fn from_io_error(err: &io::Error) -> ConnectOutcome {
        let Some(errno) = err.raw_os_error() else {
            return match err.kind() {
                io::ErrorKind::TimedOut => ConnectOutcome::Timeout,
                io::ErrorKind::ConnectionRefused => ConnectOutcome::Refused,
                _ => ConnectOutcome::Other,
            };
        };
        match errno {
            libc::ECONNREFUSED => ConnectOutcome::Refused,
            libc::ETIMEDOUT => ConnectOutcome::Timeout,
            libc::EHOSTUNREACH | libc::EHOSTDOWN => ConnectOutcome::HostUnreachable,
            libc::ENETUNREACH | libc::ENETDOWN => ConnectOutcome::NetUnreachable,
            libc::ECONNRESET | libc::ECONNABORTED => ConnectOutcome::Reset,
            libc::EADDRNOTAVAIL | libc::EADDRINUSE => ConnectOutcome::LocalAddressUnavailable,
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM => {
                ConnectOutcome::LocalResources
            }
            libc::EACCES | libc::EPERM => ConnectOutcome::LocalPermission,
            libc::ENODEV | libc::EAFNOSUPPORT | libc::EINVAL => ConnectOutcome::LocalError,
            _ => ConnectOutcome::Other,
        }
    }
}

impl DnsOutcome {
    /// Every variant, in label order.
    pub const ALL: [DnsOutcome; 8] = [
        DnsOutcome::Ok,
        DnsOutcome::Nxdomain,
        DnsOutcome::Servfail,
        DnsOutcome::Refused,
        DnsOutcome::NoRecords,
        DnsOutcome::Timeout,
        DnsOutcome::Unreachable,
        DnsOutcome::Error,
    ];

    /// The label value; identical to the serde name.
    pub fn as_str(self) -> &'static str {
        match self {
            DnsOutcome::Ok => "ok",
            DnsOutcome::Nxdomain => "nxdomain",
            DnsOutcome::Servfail => "servfail",
            DnsOutcome::Refused => "refused",
            DnsOutcome::NoRecords => "no_records",
            DnsOutcome::Timeout => "timeout",
            DnsOutcome::Unreachable => "unreachable",
            DnsOutcome::Error => "error",
        }
    }

    /// Position in [`DnsOutcome::ALL`], for fixed-size counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// When two lookups of one name (A and AAAA) fail differently, the more
    /// telling failure wins: an authoritative "does not exist" says more than a
    /// timeout, and a timeout more than an empty answer for one family.
    pub fn severity(self) -> u8 {
        match self {
            DnsOutcome::Ok => 0,
            DnsOutcome::NoRecords => 1,
            DnsOutcome::Error => 2,
            DnsOutcome::Unreachable => 3,
            DnsOutcome::Timeout => 4,
            DnsOutcome::Refused => 5,
            DnsOutcome::Servfail => 6,
            DnsOutcome::Nxdomain => 7,
        }
    }
}

impl std::fmt::Display for ConnectOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for DnsOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_match_the_all_arrays() {
        for (i, o) in ConnectOutcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i, "{o}");
        }
        for (i, o) in DnsOutcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i, "{o}");
        }
    }

    #[test]
    fn label_values_equal_serde_names() {
        for o in ConnectOutcome::ALL {
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{o}\""));
        }
        for o in DnsOutcome::ALL {
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{o}\""));
        }
    }

    #[test]
    fn errno_classification() {
        let c = |errno| ConnectOutcome::from_io_error(&io::Error::from_raw_os_error(errno));
        assert_eq!(c(libc::ECONNREFUSED), ConnectOutcome::Refused);
        assert_eq!(c(libc::ETIMEDOUT), ConnectOutcome::Timeout);
        assert_eq!(c(libc::EHOSTUNREACH), ConnectOutcome::HostUnreachable);
        assert_eq!(c(libc::ENETUNREACH), ConnectOutcome::NetUnreachable);
        assert_eq!(
            c(libc::EADDRNOTAVAIL),
            ConnectOutcome::LocalAddressUnavailable
        );
        assert_eq!(c(libc::EMFILE), ConnectOutcome::LocalResources);
        assert_eq!(c(libc::EPERM), ConnectOutcome::LocalPermission);
        assert_eq!(c(libc::EPROTO), ConnectOutcome::Other);
    }

    #[test]
    fn local_errors_never_blame_the_target() {
        for o in ConnectOutcome::ALL {
            let local = o.as_str().starts_with("local_");
            assert_eq!(o.blame() == Blame::Local, local, "{o}");
        }
    }
}
