//! The summary of a `check` run: a pure function of its rounds.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Serialize;

use crate::outcome::{ConnectOutcome, DnsOutcome};
use crate::result::RoundResult;

/// What a `check` run found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Summary {
    /// The target as given.
    pub target: String,
    /// Rounds run.
    pub rounds: u32,
    /// Connect attempts over all rounds and addresses.
    pub connects: u32,
    /// Attempts that connected.
    pub ok: u32,
    /// Attempts that failed.
    pub failed: u32,
    /// `failed / connects` in percent (0 when nothing was attempted):
    /// connects that failed, not packets lost (see `syns_lost`).
    pub loss_percent: f64,
    /// Failed attempts by reason.
    pub failures: BTreeMap<ConnectOutcome, u32>,
    /// SYN retransmits over all attempts.
    pub syn_retransmits: u32,
    /// Attempts that needed at least one SYN retransmit.
    pub attempts_with_retransmits: u32,
    /// Successful attempts that connected only after a SYN retransmit: each
    /// is a lost SYN that cost about a second, not a slow network.
    pub ok_after_retransmit: u32,
    /// SYNs sent: one per attempt that reached the wire, one more per
    /// retransmit.
    pub syns_sent: u64,
    /// SYNs that went unanswered (the SYN, or the SYN-ACK back, was lost):
    /// each retransmit, and the last SYN of an attempt that timed out.
    pub syns_lost: u64,
    /// `syns_lost / syns_sent` in percent, and its 95% interval.
    pub syn_loss_percent: f64,
    /// The interval's low end.
    pub syn_loss_low_percent: f64,
    /// Its high end.
    pub syn_loss_high_percent: f64,
    /// Kernel SYN -> SYN-ACK RTT of successful attempts, in milliseconds.
    pub rtt_ms: Option<Spread>,
    /// Wall-clock connect time of successful attempts, in milliseconds.
    pub connect_ms: Option<Spread>,
    /// DNS, when the host is a name.
    pub dns: Option<DnsSummary>,
    /// Per resolved address, in first-seen order.
    pub addresses: Vec<AddressSummary>,
}

/// min / median / p95 / max of a set of values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Spread {
    pub min: f64,
    /// Median (nearest rank).
    pub median: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
    pub max: f64,
}

/// DNS lookups of a `check` run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct DnsSummary {
    /// Lookups made.
    pub lookups: u32,
    /// Lookups that returned addresses.
    pub ok: u32,
    /// Failed lookups by outcome.
    pub failures: BTreeMap<DnsOutcome, u32>,
    /// Lookup time in milliseconds.
    pub ms: Option<Spread>,
}

/// One address's share of a `check` run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct AddressSummary {
    pub address: SocketAddr,
    /// Attempts to it.
    pub connects: u32,
    /// Attempts that connected.
    pub ok: u32,
    /// Median kernel RTT of its successful attempts, in milliseconds.
    pub rtt_median_ms: Option<f64>,
}

impl Summary {
    /// Summarises `rounds` of `target`.
    pub(crate) fn of(target: &str, rounds: &[RoundResult]) -> Summary {
        let attempts: Vec<_> = rounds.iter().flat_map(|r| &r.attempts).collect();
        let ok_attempts: Vec<_> = attempts
            .iter()
            .filter(|a| a.outcome == ConnectOutcome::Ok)
            .collect();
        let mut failures = BTreeMap::new();
        for a in attempts.iter().filter(|a| a.outcome != ConnectOutcome::Ok) {
            *failures.entry(a.outcome).or_insert(0) += 1;
        }
        let connects = attempts.len() as u32;
        let ok = ok_attempts.len() as u32;
        let failed = connects - ok;

        let lookups: Vec<_> = rounds.iter().filter_map(|r| r.dns.as_ref()).collect();
        let dns = (!lookups.is_empty()).then(|| {
            let mut failures = BTreeMap::new();
            for l in lookups.iter().filter(|l| l.outcome != DnsOutcome::Ok) {
                *failures.entry(l.outcome).or_insert(0) += 1;
            }
            DnsSummary {
                lookups: lookups.len() as u32,
                ok: lookups
                    .iter()
                    .filter(|l| l.outcome == DnsOutcome::Ok)
                    .count() as u32,
                failures,
                ms: Spread::of(lookups.iter().map(|l| ms(l.duration_us)).collect()),
            }
        });

        let mut addresses: Vec<AddressSummary> = Vec::new();
        for a in &attempts {
            let i = match addresses.iter().position(|s| s.address == a.address) {
                Some(i) => i,
                None => {
                    addresses.push(AddressSummary {
                        address: a.address,
                        connects: 0,
                        ok: 0,
                        rtt_median_ms: None,
                    });
                    addresses.len() - 1
                }
            };
            addresses[i].connects += 1;
            addresses[i].ok += u32::from(a.outcome == ConnectOutcome::Ok);
        }
        for s in &mut addresses {
            s.rtt_median_ms = Spread::of(
                ok_attempts
                    .iter()
                    .filter(|a| a.address == s.address)
                    .filter_map(|a| a.rtt_sample().map(|r| ms(u64::from(r))))
                    .collect(),
            )
            .map(|s| s.median);
        }

        let (syns_sent, syns_lost) = attempts
            .iter()
            .map(|a| a.syns())
            .fold((0, 0), |(s, l), (a, b)| (s + a, l + b));
        let (low, high) = crate::loss::wilson(syns_lost, syns_sent);
        Summary {
            target: target.to_string(),
            rounds: rounds.len() as u32,
            connects,
            ok,
            failed,
            loss_percent: if connects == 0 {
                0.0
            } else {
                f64::from(failed) * 100.0 / f64::from(connects)
            },
            failures,
            syn_retransmits: attempts.iter().map(|a| a.syn_retransmits).sum(),
            attempts_with_retransmits: attempts.iter().filter(|a| a.syn_retransmits > 0).count()
                as u32,
            ok_after_retransmit: ok_attempts.iter().filter(|a| a.syn_retransmits > 0).count()
                as u32,
            syns_sent,
            syns_lost,
            syn_loss_percent: if syns_sent == 0 {
                0.0
            } else {
                syns_lost as f64 * 100.0 / syns_sent as f64
            },
            syn_loss_low_percent: low * 100.0,
            syn_loss_high_percent: high * 100.0,
            rtt_ms: Spread::of(
                ok_attempts
                    .iter()
                    .filter_map(|a| a.rtt_sample().map(|r| ms(u64::from(r))))
                    .collect(),
            ),
            connect_ms: Spread::of(ok_attempts.iter().map(|a| ms(a.duration_us)).collect()),
            dns,
            addresses,
        }
    }

    /// Whether everything worked: every lookup and every connect.
    pub(crate) fn all_ok(&self) -> bool {
        self.connects > 0 && self.failed == 0 && self.dns.as_ref().is_none_or(|d| d.ok == d.lookups)
    }
}

impl Spread {
    /// The spread of `values`; `None` when empty.
    pub(crate) fn of(mut values: Vec<f64>) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let rank =
            |p: f64| values[((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        Some(Spread {
            min: values[0],
            median: rank(0.5),
            p95: rank(0.95),
            max: values[values.len() - 1],
        })
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = Spread::of((1..=100).map(f64::from).collect()).unwrap();
        assert_eq!((s.min, s.median, s.p95, s.max), (1.0, 50.0, 95.0, 100.0));
        let one = Spread::of(vec![7.0]).unwrap();
        assert_eq!(
            (one.min, one.median, one.p95, one.max),
            (7.0, 7.0, 7.0, 7.0)
        );
        assert!(Spread::of(vec![]).is_none());
    }
}
