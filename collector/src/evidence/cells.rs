//! The matrix's cells: what one region measured of one target over one
//! address (or of its name, for DNS) in the recent window, against the same
//! cell's baseline, and whether that is evidence of a fault.

use std::collections::{BTreeMap, HashMap};

use vantage_probe::outcome::{Blame, ConnectOutcome, DnsOutcome};

use super::signal::Signal;
use super::stats::{baseline_rate, binomial_tail};
use crate::store::rollup::ConnectMinute;
use crate::store::{Minute, MinuteRow, Snapshot, StoreError};
use crate::time::MINUTE_US;

/// One cell of the region x target matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Measuring region.
    pub src_region: String,
    /// Target name.
    pub target: String,
    /// The target's group: its `provider` label, else `service`, else its name.
    pub group: String,
    /// A control target (label `role = "control"`): one that should always
    /// be reachable from a working probe host, so that failing it blames
    /// the host, not the network.
    pub control: bool,
    /// The address; `None` for the target's DNS lookups.
    pub address: Option<String>,
    /// Attempts in the recent window.
    pub attempts: u64,
    /// Where the recent window's data starts (the first minute with data).
    pub first_us: i64,
    /// Baseline attempts and failures blamed on the target or path.
    pub baseline_attempts: u64,
    /// See `baseline_attempts`.
    pub baseline_failures: u64,
    /// Failures blamed on the target or path in the recent window, oldest
    /// first: when, and the outcome label.
    pub failures: Vec<(i64, String)>,
    /// Failures blamed on the probe's own host in the recent window.
    pub local_failures: u64,
    /// The first of them (µs since the epoch).
    pub local_since_us: Option<i64>,
    /// Kernel RTT of successful connects in the baseline window
    /// (histogram counts in the probe's connect buckets).
    pub rtt_baseline: Vec<u64>,
    /// The same per minute of the latency window, oldest first.
    pub rtt_recent: Vec<(i64, Vec<u64>)>,
    /// Successful connects in the baseline window: (slow, all), where slow
    /// took longer than [`SLOW_CONNECT_US`] (a SYN was sent again).
    pub slow_baseline: (u64, u64),
    /// The same per minute of the latency window, oldest first:
    /// (minute, slow, all).
    pub slow_recent: Vec<(i64, u64, u64)>,
}

/// What a cell says.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Failing beyond its baseline.
    Failing(Failing),
    /// Measured, and not failing beyond its baseline.
    Healthy,
    /// Too little data to say.
    Unknown,
}

/// The evidence of a failing cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Failing {
    /// The most telling window starts here (the first failure of it).
    pub since_us: i64,
    /// Failures in that window.
    pub failures: u64,
    /// Attempts in that window (estimated from the cell's attempt rate).
    pub attempts: u64,
    /// How likely this many failures would be at the baseline rate,
    /// corrected for the windows tried.
    pub p_value: f64,
    /// Failures by outcome in that window.
    pub reasons: BTreeMap<String, u64>,
    /// For a latency regression: RTT before and now.
    pub rtt: Option<RttShift>,
    /// Which test found it.
    pub signal: Signal,
}

/// How a path's RTT moved, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RttShift {
    /// Baseline median.
    pub baseline_p50_ms: f64,
    /// Baseline 95th percentile.
    pub baseline_p95_ms: f64,
    /// Median over the latency window.
    pub recent_p50_ms: f64,
    /// 95th percentile over the latency window.
    pub recent_p95_ms: f64,
}

/// RTT is judged over the last few minutes: a latency change is a level
/// shift, and a long window would dilute it.
pub const LATENCY_WINDOW_MINUTES: i64 = 5;
/// Fewest successful connects in the latency window for a latency test.
pub(crate) const LATENCY_MIN_RECENT: u64 = 20;
/// Fewest successful connects in the baseline for a latency test.
pub const LATENCY_MIN_BASELINE: u64 = 60;
/// A regression is at least this much slower (median or p95) ...
pub(crate) const LATENCY_MIN_RATIO: f64 = 1.5;
/// ... and at least this many milliseconds slower.
pub(crate) const LATENCY_MIN_ADDED_MS: f64 = 5.0;

/// A connect that succeeded only after its SYN was sent again takes at
/// least the kernel's SYN retransmission timeout (1 s), so a successful
/// connect slower than this (the connect buckets' bound below 1 s) lost a
/// SYN, or met an RTT no healthy path has.
pub(crate) const SLOW_CONNECT_US: u64 = 900_000;
/// A path that loses SYNs shows at least this share of slow connects ...
pub(crate) const LOSS_MIN_SHARE: f64 = 0.02;
/// ... and at least this many of them in the latency window.
pub(crate) const LOSS_MIN_SLOW: u64 = 3;

/// A run of successes this unlikely at the fault's failure rate means the
/// fault is over.
pub(crate) const RECOVERED: f64 = 1e-3;

/// A window whose p-value is within this factor of the best window's is
/// nearly as telling; the longest such window describes the fault.
pub(crate) const NEARLY_AS_TELLING: f64 = 1e3;

/// How many of a fault's latest failures set its current rate, when
/// judging whether it is over.
pub(crate) const RECENT_FAILURES: usize = 10;

/// Failures further apart than this many attempts belong to different
/// stretches of a fault.
pub(crate) const STRETCH_GAP_ATTEMPTS: f64 = 20.0;

/// Attempts not counted as clean after a failure: they may not have
/// arrived yet.
pub(crate) const LATE_ATTEMPTS: f64 = 2.0;

/// Fewest attempts for a cell to count as healthy.
pub(crate) const MIN_HEALTHY_ATTEMPTS: u64 = 3;

impl Cell {
    /// Tests the cell at `now_us` with significance `alpha`.
    ///
    /// A scan over window starts: each recent failure opens a window that
    /// ends now; its attempts are estimated from the cell's attempt rate,
    /// and the window whose failure count is least likely at the baseline
    /// rate decides (its p-value multiplied by the number of windows tried).
    /// A hard outage is two failures in two attempts; an intermittent one
    /// is a few percent over minutes; one failure is never evidence.
    pub fn state(&self, now_us: i64, alpha: f64) -> State {
        let m = self.failures.len();
        if m < 2 {
            return if self.attempts >= MIN_HEALTHY_ATTEMPTS {
                State::Healthy
            } else {
                State::Unknown
            };
        }
        let p0 = baseline_rate(self.baseline_failures, self.baseline_attempts);
        let span_s = ((now_us - self.first_us).max(1) as f64) / 1e6;
        let rate = self.attempts as f64 / span_s;
        let last = self.failures[m - 1].0;
        let mut windows: Vec<(f64, usize, u64, u64)> = Vec::new();
        for (j, &(at, _)) in self.failures.iter().enumerate() {
            let k = (m - j) as u64;
            if k < 2 {
                break;
            }
            // Attempts from this failure to the last one, plus those since
            // the last one that have surely arrived (results come a flush
            // interval late: the newest LATE_ATTEMPTS are not counted).
            let span_s = ((last - at).max(0) as f64) / 1e6;
            let after_s = ((now_us - last).max(0) as f64) / 1e6;
            let n = ((rate * span_s).round() as u64
                + 1
                + (rate * after_s - LATE_ATTEMPTS).max(0.0).round() as u64)
                .max(k)
                .min(self.attempts.max(k));
            windows.push((binomial_tail(k, n, p0), j, k, n));
        }
        // The p-value of a window is corrected for the m windows tried.
        let significant = |p: f64| p * (m as f64) < alpha;
        let best = windows.iter().map(|w| w.0).fold(f64::INFINITY, f64::min);
        if !significant(best) {
            return State::Healthy;
        }
        // Of the significant windows nearly as telling as the best, the
        // longest (the first; the best is one of them): a burst inside a
        // long fault would overstate its rate and date its onset late.
        let &(p, j, k, n) = windows
            .iter()
            .find(|w| w.0 <= best * NEARLY_AS_TELLING && significant(w.0))
            .expect("the best window qualifies");
        let p_value = p * m as f64;
        // Over? The attempts since the last failure all succeeded; at the
        // window's failure rate that run would be unlikely if it went on.
        // Two attempts of slack: results arrive a flush interval late.
        let clean = (rate * ((now_us - last).max(0) as f64 / 1e6)).floor() - LATE_ATTEMPTS;
        // The failure rate of its latest stretch: its last failures (at
        // most RECENT_FAILURES) with no long clean gap between them. A long
        // window describes a fault, but a hard spell at its end sets how
        // soon a clean run means it is over, and an intermittent fault
        // keeps its own rate.
        let gap_us = (STRETCH_GAP_ATTEMPTS / rate.max(1e-9) * 1e6) as i64;
        let mut bk = 1;
        while bk < RECENT_FAILURES.min(m)
            && self.failures[m - bk].0 - self.failures[m - bk - 1].0 <= gap_us
        {
            bk += 1;
        }
        let first = self.failures[m - bk].0;
        let lasted =
            ((rate * ((last - first).max(0) as f64 / 1e6)).round() as u64 + 1).max(bk as u64);
        let bk = bk as u64;
        let share = bk as f64 / lasted as f64;
        if clean >= 1.0 && (1.0 - share).powf(clean) < RECOVERED {
            return State::Healthy;
        }
        let mut reasons = BTreeMap::new();
        for (_, outcome) in &self.failures[j..] {
            *reasons.entry(outcome.clone()).or_insert(0) += 1;
        }
        State::Failing(Failing {
            since_us: self.failures[j].0,
            failures: k,
            attempts: n,
            p_value,
            reasons,
            rtt: None,
            signal: Signal::Failures,
        })
    }

    /// Tests the cell's RTT: the last [`LATENCY_WINDOW_MINUTES`] against
    /// the baseline. A regression needs both a size (median or p95 at
    /// least 1.5x and 5 ms above the baseline's) and significance: more
    /// recent connects above the baseline's 95th percentile than the 5%
    /// the baseline itself has (binomial, `alpha`). DNS cells have no RTT.
    pub fn latency(&self, alpha: f64) -> State {
        use vantage_probe::stats::CONNECT_BUCKETS_US as B;
        if self.address.is_none() {
            return State::Unknown;
        }
        let mut recent = vec![0u64; B.len() + 1];
        for (_, counts) in &self.rtt_recent {
            for (a, b) in recent.iter_mut().zip(counts) {
                *a += b;
            }
        }
        let n_recent: u64 = recent.iter().sum();
        let n_base: u64 = self.rtt_baseline.iter().sum();
        if n_recent < LATENCY_MIN_RECENT || n_base < LATENCY_MIN_BASELINE {
            return State::Unknown;
        }
        let q = |counts: &[u64], q: f64| super::stats::quantile(&B, counts, q).unwrap_or(0.0);
        let ms = |us: f64| (us / 100.0).round() / 10.0;
        let shift = RttShift {
            baseline_p50_ms: ms(q(&self.rtt_baseline, 0.5)),
            baseline_p95_ms: ms(q(&self.rtt_baseline, 0.95)),
            recent_p50_ms: ms(q(&recent, 0.5)),
            recent_p95_ms: ms(q(&recent, 0.95)),
        };
        let grew = |before: f64, now: f64| {
            now >= before * LATENCY_MIN_RATIO && now - before >= LATENCY_MIN_ADDED_MS
        };
        if !grew(shift.baseline_p50_ms, shift.recent_p50_ms)
            && !grew(shift.baseline_p95_ms, shift.recent_p95_ms)
        {
            return State::Healthy;
        }
        // Recent connects in buckets wholly above the baseline's p95.
        let p95_us = q(&self.rtt_baseline, 0.95);
        let first_above = B.partition_point(|&b| (b as f64) < p95_us) + 1;
        let above: u64 = recent.iter().skip(first_above).sum();
        let p_value = super::stats::binomial_tail(above, n_recent, 0.05);
        if p_value >= alpha {
            return State::Healthy;
        }
        // Onset: the first minute of the window whose median grew.
        let since_us = self
            .rtt_recent
            .iter()
            .find(|(_, c)| {
                c.iter().sum::<u64>() > 0
                    && (grew(shift.baseline_p50_ms, ms(q(c, 0.5)))
                        || grew(shift.baseline_p95_ms, ms(q(c, 0.95))))
            })
            .or(self.rtt_recent.first())
            .map_or(self.first_us, |(m, _)| m * MINUTE_US);
        State::Failing(Failing {
            since_us,
            failures: above,
            attempts: n_recent,
            p_value,
            reasons: BTreeMap::new(),
            rtt: Some(shift),
            signal: Signal::Latency,
        })
    }

    /// Tests the cell for lost SYNs: connects that succeed, but only after
    /// the kernel sent their SYN again, a second or more later. With a
    /// connect timeout above a second, a lossy path shows no failures and
    /// an unchanged RTT (the kernel times the answered SYN); only these
    /// slow connects give it away. The last [`LATENCY_WINDOW_MINUTES`]
    /// against the baseline: at least [`LOSS_MIN_SLOW`] slow connects,
    /// [`LOSS_MIN_SHARE`] of the successful ones, and more than the
    /// baseline's share would give (binomial, `alpha`).
    pub fn lost_syns(&self, alpha: f64) -> State {
        if self.address.is_none() {
            return State::Unknown;
        }
        let (slow, n) = self
            .slow_recent
            .iter()
            .fold((0, 0), |(k, n), (_, s, a)| (k + s, n + a));
        if n < LATENCY_MIN_RECENT || self.slow_baseline.1 < LATENCY_MIN_BASELINE {
            return State::Unknown;
        }
        if slow < LOSS_MIN_SLOW || (slow as f64) < LOSS_MIN_SHARE * n as f64 {
            return State::Healthy;
        }
        let p0 = baseline_rate(self.slow_baseline.0, self.slow_baseline.1);
        let p_value = binomial_tail(slow, n, p0);
        if p_value >= alpha {
            return State::Healthy;
        }
        let since_us = self
            .slow_recent
            .iter()
            .find(|(_, s, _)| *s > 0)
            .map_or(self.first_us, |(m, _, _)| m * MINUTE_US);
        State::Failing(Failing {
            since_us,
            failures: slow,
            attempts: n,
            p_value,
            reasons: BTreeMap::from([("syn_retransmit".to_string(), slow)]),
            rtt: None,
            signal: Signal::Loss,
        })
    }
}

/// Successful connects of a minute: (slower than [`SLOW_CONNECT_US`], all).
pub(crate) fn slow_of(c: &ConnectMinute) -> (u64, u64) {
    use vantage_probe::stats::CONNECT_BUCKETS_US as B;
    let first_slow = B.partition_point(|&b| b <= SLOW_CONNECT_US);
    let slow = c.duration.counts.iter().skip(first_slow).sum();
    (slow, c.outcomes[ConnectOutcome::Ok.index()])
}

/// The group of a target from its stored labels (JSON), and whether it is
/// a control target.
pub(crate) fn group_of(name: &str, labels: &str) -> (String, bool) {
    let labels: BTreeMap<String, String> = serde_json::from_str(labels).unwrap_or_default();
    let group = labels
        .get("provider")
        .or_else(|| labels.get("service"))
        .cloned()
        .unwrap_or_else(|| name.to_string());
    (group, labels.get("role").is_some_and(|r| r == "control"))
}

/// Reads every cell with data from `baseline_from_us` to `now_us`; the
/// recent window starts at `recent_from_us` (minutes are taken whole).
/// Nothing after `now_us` is read: a probe whose clock runs ahead, or an
/// assessment of the past, never sees results from its future.
pub(crate) fn read(
    snap: &Snapshot<'_>,
    baseline_from_us: i64,
    recent_from_us: i64,
    now_us: i64,
) -> Result<Vec<Cell>, StoreError> {
    let recent_minute = recent_from_us.div_euclid(MINUTE_US);
    let now_minute = now_us.div_euclid(MINUTE_US);
    let mut cells: HashMap<i64, Cell> = HashMap::new();
    snap.minutes(baseline_from_us.div_euclid(MINUTE_US), now_minute, |row| {
        let cell = cells.entry(row.series).or_insert_with(|| new_cell(&row));
        cell.add(&row, recent_minute, now_minute);
    })?;
    snap.failure_outcomes(recent_minute * MINUTE_US, now_us, |series, at, outcome| {
        let local = ConnectOutcome::ALL
            .iter()
            .any(|o| o.blame() == Blame::Local && o.as_str() == outcome);
        if let Some(cell) = cells.get_mut(&series) {
            if local {
                cell.local_since_us = Some(cell.local_since_us.map_or(at, |s| s.min(at)));
            } else {
                cell.failures.push((at, outcome.to_string()));
            }
        }
    })?;
    let mut out: Vec<Cell> = cells
        .into_values()
        .filter(|c| c.attempts > 0 || !c.failures.is_empty())
        .map(|mut c| {
            c.rtt_recent.sort_by_key(|(m, _)| *m);
            c.slow_recent.sort_by_key(|(m, _, _)| *m);
            c
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.src_region, &a.target, &a.address).cmp(&(&b.src_region, &b.target, &b.address))
    });
    Ok(out)
}

/// An empty cell for the series of `row`.
fn new_cell(row: &MinuteRow<'_>) -> Cell {
    let (group, control) = group_of(row.target, row.labels);
    Cell {
        src_region: row.src_region.to_string(),
        group,
        control,
        target: row.target.to_string(),
        address: (!row.address.is_empty()).then(|| row.address.to_string()),
        attempts: 0,
        first_us: i64::MAX,
        baseline_attempts: 0,
        baseline_failures: 0,
        failures: Vec::new(),
        local_failures: 0,
        local_since_us: None,
        rtt_baseline: Vec::new(),
        rtt_recent: Vec::new(),
        slow_baseline: (0, 0),
        slow_recent: Vec::new(),
    }
}

impl Cell {
    /// Adds one stored minute: to the recent window from `recent_minute`
    /// on, else to the baseline; RTT and slow connects by the latency
    /// window, which ends at `now_minute`.
    fn add(&mut self, row: &MinuteRow<'_>, recent_minute: i64, now_minute: i64) {
        let minute = row.minute;
        let (attempts, remote_failures) = match &row.data {
            Minute::Dns(d) => {
                let n: u64 = d.outcomes.iter().sum();
                (n, n - d.outcomes[DnsOutcome::Ok.index()])
            }
            Minute::Connect(c) => {
                let (remote, local) = (c.blamed(Blame::Remote), c.blamed(Blame::Local));
                if minute >= recent_minute {
                    self.local_failures += local;
                }
                let (slow, ok) = slow_of(c);
                if minute > now_minute - LATENCY_WINDOW_MINUTES {
                    self.rtt_recent.push((minute, c.rtt.counts.clone()));
                    self.slow_recent.push((minute, slow, ok));
                } else {
                    self.slow_baseline.0 += slow;
                    self.slow_baseline.1 += ok;
                    if self.rtt_baseline.is_empty() {
                        self.rtt_baseline = vec![0; c.rtt.counts.len()];
                    }
                    for (a, b) in self.rtt_baseline.iter_mut().zip(&c.rtt.counts) {
                        *a += b;
                    }
                }
                (c.attempts() - local, remote)
            }
        };
        if minute >= recent_minute {
            self.attempts += attempts;
            self.first_us = self.first_us.min(minute * MINUTE_US);
        } else {
            self.baseline_attempts += attempts;
            self.baseline_failures += remote_failures;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    /// A cell probed once a second for `seconds` up to `now`, with
    /// failures at the given seconds before now.
    fn cell(seconds: i64, failures_ago: &[i64], baseline: (u64, u64)) -> (Cell, i64) {
        let now = 10_000 * S;
        let mut failures: Vec<(i64, String)> = failures_ago
            .iter()
            .map(|a| (now - a * S, "timeout".to_string()))
            .collect();
        failures.sort();
        (
            Cell {
                src_region: "r".into(),
                target: "t".into(),
                group: "g".into(),
                control: false,
                address: Some("10.0.0.1:443".into()),
                attempts: seconds as u64,
                first_us: now - seconds * S,
                baseline_attempts: baseline.0,
                baseline_failures: baseline.1,
                failures,
                local_failures: 0,
                local_since_us: None,
                rtt_baseline: Vec::new(),
                rtt_recent: Vec::new(),
                slow_baseline: (0, 0),
                slow_recent: Vec::new(),
            },
            now,
        )
    }

    #[test]
    fn connects_slowed_by_a_lost_syn_are_counted_from_the_duration_buckets() {
        use vantage_probe::stats::CONNECT_BUCKETS_US as B;
        let mut m = ConnectMinute::default();
        for (us, n) in [(800, 50), (899_000, 2), (1_001_000, 5), (2_004_000, 2)] {
            for _ in 0..n {
                m.outcomes[ConnectOutcome::Ok.index()] += 1;
                m.duration.observe(&B, us);
            }
        }
        m.outcomes[ConnectOutcome::Timeout.index()] += 3;
        assert_eq!(slow_of(&m), (7, 59));
    }

    #[test]
    fn lost_syns_are_a_signal_only_beyond_the_baseline() {
        // 60 connects a minute; `slow` of them a second late in each of the
        // last five minutes, against an hour with `base_slow` of 3600.
        let lossy = |slow: u64, base_slow: u64| {
            let (mut c, _) = cell(300, &[], (3600, 0));
            c.slow_baseline = (base_slow, 3600);
            c.slow_recent = (0..5).map(|m| (100 + m, slow, 60)).collect();
            c
        };
        let State::Failing(f) = lossy(6, 0).lost_syns(1e-3) else {
            panic!("{:?}", lossy(6, 0).lost_syns(1e-3));
        };
        assert_eq!((f.failures, f.attempts), (30, 300));
        assert_eq!(f.reasons["syn_retransmit"], 30);
        assert_eq!(f.signal, Signal::Loss);
        assert_eq!(f.since_us, 100 * MINUTE_US);
        // A path that always lost this many is its own normal.
        assert_eq!(lossy(6, 360).lost_syns(1e-3), State::Healthy);
        // One slow connect in five minutes is not a lossy path.
        let mut one = lossy(0, 0);
        one.slow_recent[2].1 = 1;
        assert_eq!(one.lost_syns(1e-3), State::Healthy);
        // Too little data to say, and no RTT for a name.
        let (thin, _) = cell(300, &[], (3600, 0));
        assert_eq!(thin.lost_syns(1e-3), State::Unknown);
        let mut dns = lossy(6, 0);
        dns.address = None;
        assert_eq!(dns.lost_syns(1e-3), State::Unknown);
    }

    #[test]
    fn a_hard_outage_is_failing_after_two_rounds() {
        let (c, now) = cell(600, &[1, 0], (3600, 0));
        let State::Failing(f) = c.state(now, 1e-3) else {
            panic!("{:?}", c.state(now, 1e-3));
        };
        assert_eq!((f.failures, f.attempts), (2, 2));
        assert_eq!(f.reasons["timeout"], 2);
    }

    #[test]
    fn a_fault_is_over_once_the_successes_since_are_unlikely_under_it() {
        // A hard outage of 20 rounds that ended 5 s ago: over.
        let ago: Vec<i64> = (5..25).collect();
        let (c, now) = cell(600, &ago, (3600, 0));
        assert_eq!(c.state(now, 1e-3), State::Healthy);
        // Ending now: still failing.
        let ago: Vec<i64> = (0..20).collect();
        let (c, now) = cell(600, &ago, (3600, 0));
        assert!(matches!(c.state(now, 1e-3), State::Failing(_)));
        // 18% with the last failure 10 s ago: could be a lull, still failing.
        let ago: Vec<i64> = (10..130).filter(|s| s % 11 == 0 || s % 17 == 0).collect();
        let (c, now) = cell(900, &ago, (3600, 0));
        assert!(matches!(c.state(now, 1e-3), State::Failing(_)));
        // A long 20% spell, then a hard one that ended 8 s ago: over,
        // though the long window alone would wait minutes.
        let mut ago: Vec<i64> = (30..300).filter(|s| s % 5 == 0).collect();
        ago.extend(8..28);
        let (c, now) = cell(900, &ago, (3600, 0));
        assert_eq!(c.state(now, 1e-3), State::Healthy);
        // The same after a pause of minutes between the two.
        let mut ago: Vec<i64> = (200..300).filter(|s| s % 5 == 0).collect();
        ago.extend(8..15);
        let (c, now) = cell(900, &ago, (3600, 0));
        assert_eq!(c.state(now, 1e-3), State::Healthy);
        // ... and 60 clean seconds later it is over.
        let ago: Vec<i64> = (60..180).filter(|s| s % 11 == 0 || s % 17 == 0).collect();
        let (c, now) = cell(900, &ago, (3600, 0));
        assert_eq!(c.state(now, 1e-3), State::Healthy);
    }

    /// Counts in the connect buckets with `n` samples in the bucket of `us`.
    fn hist(us: u64, n: u64) -> Vec<u64> {
        use vantage_probe::stats::CONNECT_BUCKETS_US as B;
        let mut h = vec![0; B.len() + 1];
        h[B.partition_point(|&b| b < us)] = n;
        h
    }

    #[test]
    fn forty_added_milliseconds_are_a_latency_regression_jitter_is_not() {
        let (mut c, _) = cell(600, &[], (3600, 0));
        let mut base = hist(900, 3000);
        base[5] += 150; // a 5% tail up to 5 ms
        c.rtt_baseline = base;
        c.rtt_recent = (0..5).map(|m| (m, hist(900, 60))).collect();
        assert_eq!(c.latency(1e-3), State::Healthy, "the same as before");
        c.rtt_recent = (0..5)
            .map(|m| {
                (
                    m,
                    if m < 2 {
                        hist(900, 60)
                    } else {
                        hist(41_000, 60)
                    },
                )
            })
            .collect();
        let State::Failing(f) = c.latency(1e-3) else {
            panic!("{:?}", c.latency(1e-3));
        };
        let shift = f.rtt.unwrap();
        assert!(
            shift.recent_p95_ms > 25.0 && shift.baseline_p50_ms < 1.0,
            "{shift:?}"
        );
        assert_eq!(f.since_us, 2 * MINUTE_US, "the first slow minute");
        // Twice as slow but only 1 ms more: not a regression worth a page.
        c.rtt_recent = (0..5).map(|m| (m, hist(2_000, 60))).collect();
        assert_eq!(c.latency(1e-3), State::Healthy);
        // Too few samples to say.
        c.rtt_recent = vec![(0, hist(41_000, 5))];
        assert_eq!(c.latency(1e-3), State::Unknown);
    }

    #[test]
    fn one_failure_is_never_evidence_and_scattered_ones_are_not_either() {
        let (c, now) = cell(600, &[30], (3600, 0));
        assert_eq!(c.state(now, 1e-3), State::Healthy);
        // Two failures ten minutes apart in 600 attempts.
        let (c, now) = cell(600, &[590, 10], (3600, 0));
        assert_eq!(c.state(now, 1e-3), State::Healthy);
        // Too little data to call it healthy.
        let (c, now) = cell(2, &[], (0, 0));
        assert_eq!(c.state(now, 1e-3), State::Unknown);
    }

    #[test]
    fn an_intermittent_fault_is_failing_within_minutes() {
        // 18% of connects failing for two minutes (seed 003).
        let ago: Vec<i64> = (0..120).filter(|s| s % 11 == 0 || s % 17 == 0).collect();
        let (c, now) = cell(900, &ago, (3600, 0));
        let State::Failing(f) = c.state(now, 1e-3) else {
            panic!("not failing");
        };
        assert!(f.failures >= 15, "{f:?}");
        assert!(f.since_us >= now - 120 * S);
        // The same rate on a path that always failed that much is no news.
        let (c, now) = cell(900, &ago, (3600, 650));
        assert_eq!(c.state(now, 1e-3), State::Healthy);
    }
}
