//! Per-target running totals behind `/metrics`: compact fixed-size counters
//! and histograms, indexed by the outcome enums, allocated only for the
//! families and lookups a target actually has.
//!
//! A target costs a few hundred bytes here; at 10k targets a registry of
//! generic labelled metric vectors would cost tens of megabytes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock, RwLock};

use crate::outcome::{ConnectOutcome, DnsOutcome};
use crate::result::RoundResult;

/// Histogram upper bounds for connect RTT and duration, in microseconds.
///
/// Dense below 1 ms for loopback and same-zone paths; above 0.5 s the edges
/// sit between the SYN retransmit times (1 s, 2 s, 3 s) so that one lost SYN
/// lands in (0.9, 1.9], two in (1.9, 2.9] (linear timeouts) or (2.9, 4.9].
pub const CONNECT_BUCKETS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 900_000,
    1_900_000, 2_900_000, 4_900_000,
];

/// Histogram upper bounds for DNS lookups, in microseconds.
pub const DNS_BUCKETS_US: [u64; 13] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000,
];

/// The most series one target can have on `/metrics`: per address family
/// its attempts, a failure series per failing outcome, its SYN
/// retransmits and SYNs sent, and two histograms (buckets, `+Inf`, sum, count); then DNS
/// lookups by outcome and their histogram. A target exposes fewer (only
/// the outcomes it saw); this is the bound a cardinality budget counts.
pub const MAX_SERIES_PER_TARGET: usize = 2
    * (1 + (ConnectOutcome::ALL.len() - 1) + 2 + 2 * (CONNECT_BUCKETS_US.len() + 3))
    + DnsOutcome::ALL.len()
    + DNS_BUCKETS_US.len()
    + 3;

/// Every target's totals, by name.
#[derive(Debug, Default)]
pub struct StatsRegistry {
    targets: RwLock<BTreeMap<Arc<str>, Arc<TargetStats>>>,
}

/// One target's totals.
#[derive(Debug)]
pub struct TargetStats {
    /// The target's configured name: its series' `target` label.
    pub name: Arc<str>,
    /// The target's configured labels, added to each of its series.
    pub labels: Arc<BTreeMap<String, String>>,
    v4: OnceLock<Box<FamilyStats>>,
    v6: OnceLock<Box<FamilyStats>>,
    dns: OnceLock<Box<DnsStats>>,
}

/// Connect totals of one target over one address family.
#[derive(Debug, Default)]
pub struct FamilyStats {
    /// Attempts by outcome, indexed by [`ConnectOutcome::index`].
    pub outcomes: [AtomicU64; ConnectOutcome::ALL.len()],
    /// SYN retransmits over all attempts.
    pub syn_retransmits: AtomicU64,
    /// SYNs sent over all attempts, first and retransmitted (an attempt
    /// that failed on the probe's host sent none).
    pub syns_sent: AtomicU64,
    /// Kernel SYN -> SYN-ACK RTT of successful attempts.
    pub rtt: Histogram<{ CONNECT_BUCKETS_US.len() }>,
    /// Wall-clock connect duration of successful attempts.
    pub duration: Histogram<{ CONNECT_BUCKETS_US.len() }>,
}

/// DNS totals of one target.
#[derive(Debug, Default)]
pub struct DnsStats {
    /// Lookups by outcome, indexed by [`DnsOutcome::index`].
    pub outcomes: [AtomicU64; DnsOutcome::ALL.len()],
    /// Lookup duration.
    pub duration: Histogram<{ DNS_BUCKETS_US.len() }>,
}

/// A fixed-bucket histogram of microsecond values.
#[derive(Debug)]
pub struct Histogram<const N: usize> {
    /// Non-cumulative counts per bucket; the last slot holds values above every bound.
    counts: [AtomicU64; N],
    overflow: AtomicU64,
    sum_us: AtomicU64,
}

/// A consistent-enough copy of a histogram for exposition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Cumulative counts, one per bound.
    pub cumulative: Vec<u64>,
    /// Total number of observations.
    pub count: u64,
    /// Sum of observations in microseconds.
    pub sum_us: u64,
}

/// Which family a stats slot is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 addresses (A records); `family="ipv4"`.
    V4,
    /// IPv6 addresses (AAAA records); `family="ipv6"`.
    V6,
}

impl StatsRegistry {
    /// The stats of `name`, created if new. Existing stats are kept so that
    /// a reload does not reset a target's counters.
    pub fn target(
        &self,
        name: &Arc<str>,
        labels: &Arc<BTreeMap<String, String>>,
    ) -> Arc<TargetStats> {
        if let Some(s) = self.targets.read().unwrap().get(name)
            && s.labels == *labels
        {
            return s.clone();
        }
        let stats = Arc::new(TargetStats::new(name.clone(), labels.clone()));
        self.targets
            .write()
            .unwrap()
            .insert(name.clone(), stats.clone());
        stats
    }

    /// Forgets every target not in `keep`: its series disappear from `/metrics`.
    pub fn retain(&self, keep: &BTreeSet<Arc<str>>) {
        self.targets
            .write()
            .unwrap()
            .retain(|k, _| keep.contains(k));
    }

    /// A snapshot of the current targets, in name order.
    pub fn all(&self) -> Vec<Arc<TargetStats>> {
        self.targets.read().unwrap().values().cloned().collect()
    }

    /// How many targets have stats.
    pub fn len(&self) -> usize {
        self.targets.read().unwrap().len()
    }

    /// Whether no target has stats.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl TargetStats {
    /// Empty stats for a target.
    pub fn new(name: Arc<str>, labels: Arc<BTreeMap<String, String>>) -> TargetStats {
        TargetStats {
            name,
            labels,
            v4: OnceLock::new(),
            v6: OnceLock::new(),
            dns: OnceLock::new(),
        }
    }

    /// Allocates the slots a target will use before its first round: they
    /// then sit together in memory (instead of scattered among a round's
    /// short-lived allocations), and its series show zeros from the start
    /// rather than appearing with the first round.
    pub fn prepare(&self, ipv4: bool, ipv6: bool, dns: bool) {
        if ipv4 {
            self.v4.get_or_init(Box::default);
        }
        if ipv6 {
            self.v6.get_or_init(Box::default);
        }
        if dns {
            self.dns.get_or_init(Box::default);
        }
    }

    /// Adds one round.
    pub fn record(&self, round: &RoundResult) {
        if let Some(dns) = &round.dns {
            let s = self.dns.get_or_init(Box::default);
            s.outcomes[dns.outcome.index()].fetch_add(1, Relaxed);
            s.duration.observe(&DNS_BUCKETS_US, dns.duration_us);
        }
        for a in &round.attempts {
            let slot = match a.address.ip() {
                IpAddr::V4(_) => &self.v4,
                IpAddr::V6(_) => &self.v6,
            };
            let s = slot.get_or_init(Box::default);
            s.outcomes[a.outcome.index()].fetch_add(1, Relaxed);
            s.syn_retransmits
                .fetch_add(u64::from(a.syn_retransmits), Relaxed);
            if a.outcome.blame() != crate::outcome::Blame::Local {
                s.syns_sent
                    .fetch_add(1 + u64::from(a.syn_retransmits), Relaxed);
            }
            if a.outcome == ConnectOutcome::Ok {
                s.duration.observe(&CONNECT_BUCKETS_US, a.duration_us);
                if let Some(rtt) = a.rtt_sample() {
                    s.rtt.observe(&CONNECT_BUCKETS_US, u64::from(rtt));
                }
            }
        }
    }

    /// The family's stats, if the target ever connected over it.
    pub fn family(&self, f: Family) -> Option<&FamilyStats> {
        match f {
            Family::V4 => self.v4.get(),
            Family::V6 => self.v6.get(),
        }
        .map(|b| &**b)
    }

    /// The DNS stats, if the target was ever looked up.
    pub fn dns(&self) -> Option<&DnsStats> {
        self.dns.get().map(|b| &**b)
    }
}

impl FamilyStats {
    /// All attempts, whatever their outcome.
    pub fn attempts(&self) -> u64 {
        self.outcomes.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Attempts that ended with `o`.
    pub fn count(&self, o: ConnectOutcome) -> u64 {
        self.outcomes[o.index()].load(Relaxed)
    }
}

impl<const N: usize> Default for Histogram<N> {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            overflow: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }
}

impl<const N: usize> Histogram<N> {
    /// Adds one value in microseconds.
    pub fn observe(&self, bounds: &[u64; N], us: u64) {
        match bounds.iter().position(|&b| us <= b) {
            Some(i) => self.counts[i].fetch_add(1, Relaxed),
            None => self.overflow.fetch_add(1, Relaxed),
        };
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// Cumulative counts for exposition.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut acc = 0;
        let cumulative = self
            .counts
            .iter()
            .map(|c| {
                acc += c.load(Relaxed);
                acc
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            count: acc + self.overflow.load(Relaxed),
            sum_us: self.sum_us.load(Relaxed),
        }
    }
}

impl Family {
    /// Both families, in label order.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The `family` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A retransmitted handshake's RTT (the kernel's placeholder, or an
    /// older probe's ~1 s figure) is loss evidence: counted as a
    /// retransmit, never in the RTT histogram.
    #[test]
    fn a_retransmitted_handshake_adds_no_rtt_sample() {
        use crate::result::{ConnectAttempt, Timestamp};
        let t = TargetStats::new("t".into(), Arc::default());
        let attempt = |rtt_us, syn_retransmits| ConnectAttempt {
            address: "127.0.0.1:80".parse().unwrap(),
            local: None,
            started_at: Timestamp::from_unix_micros(0),
            outcome: ConnectOutcome::Ok,
            duration_us: 1_000_000 + rtt_us as u64,
            rtt_us: Some(rtt_us),
            syn_retransmits,
            errno: None,
            icmp_from: None,
        };
        t.record(&RoundResult {
            target: "t".into(),
            host: "127.0.0.1".into(),
            port: 80,
            labels: Arc::default(),
            started_at: Timestamp::from_unix_micros(0),
            dns: None,
            attempts: vec![attempt(60, 0), attempt(1_000, 1), attempt(1_013_000, 1)],
        });
        let v4 = t.family(Family::V4).unwrap();
        let rtt = v4.rtt.snapshot();
        assert_eq!((rtt.count, rtt.sum_us), (1, 60));
        assert_eq!(v4.syn_retransmits.load(Relaxed), 2);
        assert_eq!(v4.syns_sent.load(Relaxed), 5, "three first SYNs, two again");
        assert_eq!(v4.duration.snapshot().count, 3, "every connect's duration");
    }

    #[test]
    fn lost_syns_fall_in_their_own_buckets() {
        let bucket = |us: u64| CONNECT_BUCKETS_US.iter().position(|&b| us <= b);
        let fast = bucket(40_000);
        let one_lost = bucket(1_000_000 + 40_000);
        let two_lost_linear = bucket(2_000_000 + 40_000);
        let two_lost_exponential = bucket(3_000_000 + 40_000);
        assert!(fast < one_lost && one_lost < two_lost_linear);
        assert!(two_lost_linear < two_lost_exponential);
        // A slow path without loss (0.5 s) does not share the lost-SYN bucket.
        assert!(bucket(500_000) < one_lost);
    }

    #[test]
    fn histogram_is_cumulative_with_overflow_in_count() {
        let h = Histogram::<3>::default();
        let bounds = [10, 100, 1000];
        for v in [5, 10, 11, 5000] {
            h.observe(&bounds, v);
        }
        let s = h.snapshot();
        assert_eq!(s.cumulative, vec![2, 3, 3]);
        assert_eq!(s.count, 4);
        assert_eq!(s.sum_us, 5026);
    }
}
