//! The open-files limit. Every connect and lookup in flight holds a socket,
//! `limits.max_in_flight` may be as high as 16384, and most hosts start a
//! process with a soft limit of 1024. Past it, `socket()` fails with EMFILE
//! and the attempts end as `local_resources`: honest, but a probe that
//! could have measured the network measured its own limit instead.
//!
//! So the probe raises its soft limit to what its caps need, as far as the
//! hard limit allows, and says so when the hard limit is too low (that one
//! only the operator can raise: `LimitNOFILE=`, `ulimit -Hn`, the container
//! runtime).
#![allow(unsafe_code)]

use std::io;

use crate::config::Limits;

/// Descriptors the probe holds besides its operations in flight: the admin
/// listener and its clients, the push client's connections, the spool, the
/// runtime's own, standard streams.
pub const RESERVED: u64 = 64;

/// A process's `RLIMIT_NOFILE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit {
    /// What `open`/`socket` are held to now.
    pub soft: u64,
    /// How far an unprivileged process may raise `soft`.
    pub hard: u64,
}

/// What [`ensure`] found, and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Adjustment {
    /// The soft limit already covered the need.
    Enough {
        /// Descriptors the caps can hold.
        needed: u64,
        /// The limit, unchanged.
        limit: Limit,
    },
    /// The soft limit was raised to cover the need.
    Raised {
        /// Descriptors the caps can hold.
        needed: u64,
        /// The soft limit before.
        from: u64,
        /// The soft limit now.
        to: u64,
    },
    /// The hard limit is below the need; the soft limit is now the hard one.
    Short {
        /// Descriptors the caps can hold.
        needed: u64,
        /// The hard limit, which only the operator can raise.
        hard: u64,
    },
}

/// Descriptors the caps can hold at once.
pub(crate) fn needed(limits: &Limits) -> u64 {
    u64::from(limits.max_in_flight) + RESERVED
}

/// The soft limit to set for `needed`, if it must change.
fn target(limit: Limit, needed: u64) -> Option<u64> {
    (limit.soft < needed && limit.soft < limit.hard).then(|| needed.min(limit.hard))
}

/// The process's limit now.
pub(crate) fn current() -> io::Result<Limit> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit that we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Limit {
        soft: r.rlim_cur,
        hard: r.rlim_max,
    })
}

fn set_soft(limit: Limit, soft: u64) -> io::Result<()> {
    let r = libc::rlimit {
        rlim_cur: soft,
        rlim_max: limit.hard,
    };
    // SAFETY: setrlimit reads one rlimit that we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Raises the soft limit, as far as the hard one allows, to what `limits`
/// can hold at once. Never lowers it.
pub(crate) fn ensure(limits: &Limits) -> io::Result<Adjustment> {
    let needed = needed(limits);
    let limit = current()?;
    if let Some(to) = target(limit, needed) {
        set_soft(limit, to)?;
        if to < needed {
            return Ok(Adjustment::Short {
                needed,
                hard: limit.hard,
            });
        }
        return Ok(Adjustment::Raised {
            needed,
            from: limit.soft,
            to,
        });
    }
    Ok(if limit.soft >= needed {
        Adjustment::Enough { needed, limit }
    } else {
        Adjustment::Short {
            needed,
            hard: limit.hard,
        }
    })
}

/// Why the hard limit falls short, worded for an operator.
pub(crate) fn shortfall(needed: u64, hard: u64) -> String {
    format!(
        "the open-files hard limit is {hard}, but limits.max_in_flight needs about {needed}; \
         attempts past it fail as local_resources (raise LimitNOFILE= or ulimit -Hn, \
         or lower limits.max_in_flight)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(soft: u64, hard: u64) -> Limit {
        Limit { soft, hard }
    }

    #[test]
    fn raises_only_as_far_as_needed_and_allowed() {
        assert_eq!(target(l(1024, 524_288), 320), None);
        assert_eq!(target(l(1024, 524_288), 4160), Some(4160));
        assert_eq!(target(l(1024, 2048), 4160), Some(2048));
        assert_eq!(target(l(2048, 2048), 4160), None);
        // Never lowered, even above the need.
        assert_eq!(target(l(65_536, 65_536), 100), None);
    }

    #[test]
    fn the_need_counts_every_operation_in_flight() {
        let limits = Limits {
            max_in_flight: 4096,
            max_connects_per_second: 100,
            max_dns_lookups_per_second: 10,
        };
        assert_eq!(needed(&limits), 4096 + RESERVED);
    }

    #[test]
    fn ensure_leaves_a_sufficient_limit_alone() {
        let before = current().unwrap();
        let small = Limits {
            max_in_flight: 1,
            max_connects_per_second: 1,
            max_dns_lookups_per_second: 1,
        };
        assert_eq!(
            ensure(&small).unwrap(),
            Adjustment::Enough {
                needed: needed(&small),
                limit: before
            }
        );
        assert_eq!(current().unwrap(), before);
    }
}
