//! The matrix's cells: what one region measured of one target over one
//! address (or of its name, for DNS) in the recent window, against the same
//! cell's baseline, and whether that is evidence of a fault.

use std::collections::{BTreeMap, HashMap};

use vantage_probe::outcome::{Blame, ConnectOutcome, DnsOutcome};

use super::signal::Signal;
use super::stats::{baseline_rate, binomial_tail};
use crate::groups::group_of;
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
    /// The SYNs of the baseline window's connects.
    pub syn_baseline: Syns,
    /// The same per minute of the recent window, oldest first.
    pub syn_recent: Vec<(i64, Syns)>,
    /// When successful connects of the recent window needed a SYN sent
    /// again, oldest first: with the timeouts among `failures`, they date a
    /// lossy path's onset within its first minute.
    pub retransmitted_at: Vec<i64>,
}

/// The SYNs of some connects: each connect that reached the wire sent one,
/// and one more per retransmit. A SYN is lost when it went unanswered: each
/// retransmit follows one, and the last SYN of a connect that timed out is
/// one too. (Lost either way: the SYN, or the SYN-ACK coming back; the
/// probe sees a round trip that did not complete.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Syns {
    /// SYNs sent.
    pub sent: u64,
    /// SYNs that went unanswered.
    pub lost: u64,
    /// Successful connects slower than [`SLOW_CONNECT_US`]: they needed a
    /// SYN sent again, so the path answers, and loses some.
    pub slow: u64,
}

impl Syns {
    /// The SYNs of one stored minute.
    pub(crate) fn of(c: &ConnectMinute) -> Syns {
        let wire = c.attempts() - c.blamed(Blame::Local);
        Syns {
            sent: wire + c.syn_retransmits,
            lost: (c.syn_retransmits + c.outcomes[ConnectOutcome::Timeout.index()])
                .min(wire + c.syn_retransmits),
            slow: slow_of(c).0,
        }
    }

    pub(crate) fn add(&mut self, o: Syns) {
        self.sent += o.sent;
        self.lost += o.lost;
        self.slow += o.slow;
    }
}

/// The share of SYNs lost on a path, with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossRate {
    /// SYNs lost.
    pub lost: u64,
    /// SYNs sent.
    pub sent: u64,
    /// Successful connects that needed a SYN sent again.
    pub slow_connects: u64,
    /// The interval's low end (0..=1).
    pub low: f64,
    /// Its high end.
    pub high: f64,
}

impl LossRate {
    /// `lost` of `sent`, with its Wilson interval.
    pub fn new(lost: u64, sent: u64, slow_connects: u64) -> LossRate {
        let (low, high) = super::stats::wilson(lost, sent);
        LossRate {
            lost,
            sent,
            slow_connects,
            low,
            high,
        }
    }

    /// The estimate (0..=1).
    pub fn rate(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.lost as f64 / self.sent as f64
        }
    }

    /// "14% ± 3%": the estimate and the interval's wider side, in percent,
    /// with one decimal below 10%.
    pub fn percent(&self) -> String {
        vantage_probe::loss::percent(self.lost, self.sent)
    }
}

/// The bounds a cell is judged at. A cell enters a fault at
/// [`Bounds::enter`]; a cell that an open incident already holds leaves it
/// only below the looser [`Bounds::stay`] (or by the clean run that ends a
/// fault): a fault near its bound does not come and go between
/// evaluations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Significance of the cell's test.
    pub alpha: f64,
    /// A latency regression is at least this much slower ...
    pub latency_ratio: f64,
    /// ... and this many milliseconds slower.
    pub latency_added_ms: f64,
    /// A lossy path loses at least this share of its SYNs ...
    pub loss_min_share: f64,
    /// ... and has at least this many connects that needed a SYN again
    /// ...
    pub loss_min_slow: u64,
    /// ... among at least this many SYNs sent since its onset.
    pub loss_min_sent: u64,
}

/// The significance a held cell stays failing at.
pub(crate) const STAY_ALPHA: f64 = 0.05;

impl Bounds {
    /// To enter a fault, at significance `alpha`.
    pub fn enter(alpha: f64) -> Bounds {
        Bounds {
            alpha,
            latency_ratio: LATENCY_MIN_RATIO,
            latency_added_ms: LATENCY_MIN_ADDED_MS,
            loss_min_share: LOSS_MIN_SHARE,
            loss_min_slow: LOSS_MIN_SLOW,
            loss_min_sent: LOSS_MIN_SENT,
        }
    }

    /// To stay in one: about half the size, and [`STAY_ALPHA`].
    pub fn stay(alpha: f64) -> Bounds {
        Bounds {
            alpha: STAY_ALPHA.max(alpha),
            latency_ratio: 1.0 + (LATENCY_MIN_RATIO - 1.0) / 2.0,
            latency_added_ms: LATENCY_MIN_ADDED_MS / 2.0,
            loss_min_share: LOSS_MIN_SHARE / 2.0,
            loss_min_slow: 1,
            loss_min_sent: LATENCY_MIN_RECENT,
        }
    }
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
    /// For lost SYNs: the rate since the onset.
    pub loss: Option<LossRate>,
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
    /// Median since the onset: the new level, not diluted by the clean
    /// minutes before it. Absent from older collectors.
    #[serde(default)]
    pub since_p50_ms: f64,
    /// 95th percentile since the onset.
    #[serde(default)]
    pub since_p95_ms: f64,
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
/// Fewest SYNs sent since its onset for a cell to enter a loss fault. The
/// first page states the rate: judged on fewer, a cell would enter only
/// when its first SYNs happened to be lost more often than the path loses
/// them, and the first rate stated would be biased high (the lab saw 13 of
/// 50, "26% ± 14%", for a path losing 15%). About 70 s at a connect every
/// 2 s.
pub(crate) const LOSS_MIN_SENT: u64 = 40;

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
    /// Tests the cell at `now_us` with significance `alpha`, to enter a
    /// fault: [`Cell::state_within`] at [`Bounds::enter`].
    pub fn state(&self, now_us: i64, alpha: f64) -> State {
        self.state_within(now_us, &Bounds::enter(alpha))
    }

    /// Tests the cell's failures at `now_us` within `bounds`.
    ///
    /// The failures of the fault: those with the outcomes of its latest
    /// failures (a target that refused earlier is not the blackhole now),
    /// since the last clean run the fault's own rate makes unlikely (a
    /// fault that ended and one that began later are two).
    ///
    /// Then a scan over window starts: each of those failures opens a
    /// window that ends now; its attempts are estimated from the cell's
    /// attempt rate, and the window whose failure count is least likely at
    /// the baseline rate decides (its p-value multiplied by the number of
    /// windows tried). A hard outage is two failures in two attempts; an
    /// intermittent one is a few percent over minutes; one failure is never
    /// evidence.
    pub fn state_within(&self, now_us: i64, bounds: &Bounds) -> State {
        let alpha = bounds.alpha;
        if self.failures.len() < 2 {
            return if self.attempts >= MIN_HEALTHY_ATTEMPTS {
                State::Healthy
            } else {
                State::Unknown
            };
        }
        let span_s = ((now_us - self.first_us).max(1) as f64) / 1e6;
        let rate = self.attempts as f64 / span_s;
        let failures = self.fault_failures(rate);
        let m = failures.len();
        if m < 2 {
            return State::Healthy;
        }
        let p0 = baseline_rate(self.baseline_failures, self.baseline_attempts);
        let last = failures[m - 1].0;
        let mut windows: Vec<(f64, usize, u64, u64)> = Vec::new();
        for (j, &(at, _)) in failures.iter().enumerate() {
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
        while bk < RECENT_FAILURES.min(m) && failures[m - bk].0 - failures[m - bk - 1].0 <= gap_us {
            bk += 1;
        }
        let first = failures[m - bk].0;
        let lasted =
            ((rate * ((last - first).max(0) as f64 / 1e6)).round() as u64 + 1).max(bk as u64);
        let bk = bk as u64;
        let share = bk as f64 / lasted as f64;
        if clean >= 1.0 && (1.0 - share).powf(clean) < RECOVERED {
            return State::Healthy;
        }
        let mut reasons = BTreeMap::new();
        for (_, outcome) in &failures[j..] {
            *reasons.entry(outcome.clone()).or_insert(0) += 1;
        }
        State::Failing(Failing {
            since_us: failures[j].0,
            failures: k,
            attempts: n,
            p_value,
            reasons,
            rtt: None,
            loss: None,
            signal: Signal::Failures,
        })
    }

    /// The recent failures of the fault going on now, oldest first, at
    /// `rate` attempts a second: those with an outcome among its latest
    /// [`RECENT_FAILURES`], after the last clean run that would have ended
    /// a fault failing at the rate they show together (a run that long is
    /// unlikely under [`RECOVERED`], corrected for the gaps tried).
    fn fault_failures(&self, rate: f64) -> Vec<&(i64, String)> {
        let m = self.failures.len();
        let own: std::collections::BTreeSet<&str> = self.failures
            [m.saturating_sub(RECENT_FAILURES)..]
            .iter()
            .map(|(_, o)| o.as_str())
            .collect();
        let mut failures: Vec<&(i64, String)> = self
            .failures
            .iter()
            .filter(|(_, o)| own.contains(o.as_str()))
            .collect();
        let m = failures.len();
        if m < 2 {
            return failures;
        }
        let attempts_between = |a: i64, b: i64| rate * ((b - a).max(0) as f64 / 1e6);
        let (first, last) = (failures[0].0, failures[m - 1].0);
        let span = attempts_between(first, last) + 1.0;
        let bound = RECOVERED / m as f64;
        let cut = (1..m).rev().find(|&i| {
            let clean = (attempts_between(failures[i - 1].0, failures[i].0) - 1.0).floor();
            // The rate the failures show beside the gap: the gap itself
            // left out, or a long one would lower the rate it is judged
            // at and never look long.
            let share = (m as f64 / (span - clean.max(0.0)).max(1.0)).min(1.0);
            clean >= 1.0 && (1.0 - share).powf(clean) < bound
        });
        if let Some(i) = cut {
            failures.drain(..i);
        }
        failures
    }

    /// Tests the cell's RTT to enter a fault: [`Cell::latency_within`] at
    /// [`Bounds::enter`].
    pub fn latency(&self, alpha: f64) -> State {
        self.latency_within(&Bounds::enter(alpha))
    }

    /// Tests the cell's RTT: the last [`LATENCY_WINDOW_MINUTES`] against
    /// the baseline. A regression needs both a size (median or p95 at
    /// least 1.5x and 5 ms above the baseline's, at [`Bounds::enter`]) and
    /// significance: more recent connects above the baseline's 95th
    /// percentile than the 5% the baseline itself has (binomial). DNS
    /// cells have no RTT.
    pub fn latency_within(&self, bounds: &Bounds) -> State {
        use vantage_probe::stats::CONNECT_BUCKETS_US as B;
        if self.address.is_none() {
            return State::Unknown;
        }
        let sum = |minutes: &mut dyn Iterator<Item = &Vec<u64>>| {
            let mut out = vec![0u64; B.len() + 1];
            for counts in minutes {
                for (a, b) in out.iter_mut().zip(counts) {
                    *a += b;
                }
            }
            out
        };
        let recent = sum(&mut self.rtt_recent.iter().map(|(_, c)| c));
        let n_recent: u64 = recent.iter().sum();
        let n_base: u64 = self.rtt_baseline.iter().sum();
        if n_recent < LATENCY_MIN_RECENT || n_base < LATENCY_MIN_BASELINE {
            return State::Unknown;
        }
        let q = |counts: &[u64], q: f64| super::stats::quantile(&B, counts, q).unwrap_or(0.0);
        let ms = |us: f64| (us / 100.0).round() / 10.0;
        let mut shift = RttShift {
            baseline_p50_ms: ms(q(&self.rtt_baseline, 0.5)),
            baseline_p95_ms: ms(q(&self.rtt_baseline, 0.95)),
            recent_p50_ms: ms(q(&recent, 0.5)),
            recent_p95_ms: ms(q(&recent, 0.95)),
            since_p50_ms: 0.0,
            since_p95_ms: 0.0,
        };
        let grew = |before: f64, now: f64| {
            now >= before * bounds.latency_ratio && now - before >= bounds.latency_added_ms
        };
        // Onset: the first minute of the window whose median grew.
        let onset = self.rtt_recent.iter().position(|(_, c)| {
            c.iter().sum::<u64>() > 0
                && (grew(shift.baseline_p50_ms, ms(q(c, 0.5)))
                    || grew(shift.baseline_p95_ms, ms(q(c, 0.95))))
        });
        let since = sum(&mut self.rtt_recent[onset.unwrap_or(0)..].iter().map(|(_, c)| c));
        shift.since_p50_ms = ms(q(&since, 0.5));
        shift.since_p95_ms = ms(q(&since, 0.95));
        if !grew(shift.baseline_p50_ms, shift.recent_p50_ms)
            && !grew(shift.baseline_p95_ms, shift.recent_p95_ms)
            && !grew(shift.baseline_p50_ms, shift.since_p50_ms)
        {
            return State::Healthy;
        }
        // Recent connects in buckets wholly above the baseline's p95.
        let p95_us = q(&self.rtt_baseline, 0.95);
        let first_above = B.partition_point(|&b| (b as f64) < p95_us) + 1;
        let above: u64 = recent.iter().skip(first_above).sum();
        let p_value = super::stats::binomial_tail(above, n_recent, 0.05);
        if p_value >= bounds.alpha {
            return State::Healthy;
        }
        let since_us = onset
            .or((!self.rtt_recent.is_empty()).then_some(0))
            .map_or(self.first_us, |i| self.rtt_recent[i].0 * MINUTE_US);
        State::Failing(Failing {
            since_us,
            failures: above,
            attempts: n_recent,
            p_value,
            reasons: BTreeMap::new(),
            rtt: Some(shift),
            loss: None,
            signal: Signal::Latency,
        })
    }

    /// Tests the cell for lost SYNs to enter a fault: [`Cell::lost_syns_within`]
    /// at [`Bounds::enter`].
    pub fn lost_syns(&self, now_us: i64, alpha: f64) -> State {
        self.lost_syns_within(now_us, &Bounds::enter(alpha))
    }

    /// Tests the cell for lost SYNs. With a connect timeout above a
    /// second, a lossy path shows few failures and an unchanged RTT; what
    /// gives it away is every SYN the probe sends: those sent again, and
    /// the last of a connect that timed out, went unanswered.
    ///
    /// A scan over the minutes of the recent window (as for failures) that
    /// lost a SYN: each opens a window that ends now, and the window whose
    /// lost SYNs are least likely at the baseline's rate (binomial,
    /// corrected for the windows tried) decides; of those nearly as
    /// telling, the longest, so that the rate is the fault's since its
    /// onset. It needs [`LOSS_MIN_SHARE`] of the SYNs lost and
    /// [`LOSS_MIN_SLOW`] connects that succeeded after a SYN was sent
    /// again (a path that answers: a blackhole is failures, not loss). No
    /// baseline is needed: a new path is assumed healthy, at the floor
    /// rate, so a new deployment sees loss from its first minutes.
    pub fn lost_syns_within(&self, now_us: i64, bounds: &Bounds) -> State {
        if self.address.is_none() {
            return State::Unknown;
        }
        let sent: u64 = self.syn_recent.iter().map(|(_, s)| s.sent).sum();
        if sent < LATENCY_MIN_RECENT {
            return State::Unknown;
        }
        let p0 = baseline_rate(self.syn_baseline.lost, self.syn_baseline.sent);
        let mut windows: Vec<(f64, usize, Syns)> = Vec::new();
        let mut total = Syns::default();
        for (i, (_, s)) in self.syn_recent.iter().enumerate().rev() {
            total.add(*s);
            if s.lost > 0 {
                windows.push((binomial_tail(total.lost, total.sent, p0), i, total));
            }
        }
        let tried = windows.len().max(1) as f64;
        let qualifies = |w: &(f64, usize, Syns)| {
            let t = w.2;
            w.0 * tried < bounds.alpha
                && t.slow >= bounds.loss_min_slow
                && t.lost as f64 >= bounds.loss_min_share * t.sent as f64
        };
        let Some(best) = windows
            .iter()
            .filter(|w| qualifies(w))
            .map(|w| w.0)
            .min_by(f64::total_cmp)
        else {
            return State::Healthy;
        };
        // The windows were pushed newest first: the last qualifying one
        // nearly as telling as the best is the longest.
        let &(p, i, _) = windows
            .iter()
            .rev()
            .find(|w| w.0 <= best * NEARLY_AS_TELLING && qualifies(w))
            .expect("the best window qualifies");
        // The onset to the second: the first lost SYN seen in the window's
        // first minute (a retransmit, or a timeout). The SYNs that minute
        // sent before it were the path's healthy ones: counted at the
        // minute's own pace, they are left out of the rate, which is the
        // fault's since its onset.
        let minute_us = self.syn_recent[i].0 * MINUTE_US;
        let minute_end = (minute_us + MINUTE_US).min(now_us.max(minute_us + 1));
        let first_lost = self
            .retransmitted_at
            .iter()
            .copied()
            .chain(
                self.failures
                    .iter()
                    .filter(|(_, o)| o == ConnectOutcome::Timeout.as_str())
                    .map(|(at, _)| *at),
            )
            .filter(|at| (minute_us..minute_end).contains(at))
            .min();
        let since_us = first_lost.unwrap_or(minute_us);
        let t = self.syns_since(since_us, now_us);
        // Enough SYNs since the onset itself, not counting the healthy
        // ones of its first minute.
        if t.sent < bounds.loss_min_sent {
            return State::Healthy;
        }
        State::Failing(Failing {
            since_us,
            failures: t.lost,
            attempts: t.sent,
            p_value: p * tried,
            reasons: BTreeMap::from([("syn_lost".to_string(), t.lost)]),
            rtt: None,
            loss: Some(LossRate::new(t.lost, t.sent, t.slow)),
            signal: Signal::Loss,
        })
    }
}

impl Cell {
    /// The SYNs it sent from `since_us` to `now_us`: the recent window's
    /// minutes from the one `since_us` falls in, that minute's SYNs before
    /// it left out at the minute's own pace (as a loss fault's rate is).
    pub fn syns_since(&self, since_us: i64, now_us: i64) -> Syns {
        let minute = since_us.div_euclid(MINUTE_US);
        let mut total = Syns::default();
        for &(m, s) in self.syn_recent.iter().filter(|(m, _)| *m >= minute) {
            let mut s = s;
            if m == minute {
                let start = m * MINUTE_US;
                let end = (start + MINUTE_US).min(now_us.max(start + 1));
                let before = (s.sent as f64 * (since_us - start).max(0) as f64
                    / (end - start) as f64)
                    .floor() as u64;
                s.sent -= before.min(s.sent - s.lost);
            }
            total.add(s);
        }
        total
    }
}

/// Successful connects of a minute: (slower than [`SLOW_CONNECT_US`], all).
pub(crate) fn slow_of(c: &ConnectMinute) -> (u64, u64) {
    use vantage_probe::stats::CONNECT_BUCKETS_US as B;
    let first_slow = B.partition_point(|&b| b <= SLOW_CONNECT_US);
    let slow = c.duration.counts.iter().skip(first_slow).sum();
    (slow, c.outcomes[ConnectOutcome::Ok.index()])
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
        cell.add(
            row.minute,
            &Counts::of(&row.data),
            recent_minute,
            now_minute,
        );
    })?;
    snap.failure_outcomes(recent_minute * MINUTE_US, now_us, |series, at, outcome| {
        if let Some(cell) = cells.get_mut(&series) {
            if is_local(outcome) {
                cell.local_since_us = Some(cell.local_since_us.map_or(at, |s| s.min(at)));
            } else {
                cell.failures.push((at, outcome.to_string()));
            }
        }
    })?;
    snap.retransmits(recent_minute * MINUTE_US, now_us, |series, at, _| {
        if let Some(cell) = cells.get_mut(&series) {
            cell.retransmitted_at.push(at);
        }
    })?;
    let mut out: Vec<(i64, Cell)> = cells
        .into_iter()
        .filter(|(_, c)| c.attempts > 0 || !c.failures.is_empty())
        .map(|(s, c)| (s, c.finish()))
        .collect();
    sort(&mut out);
    Ok(out.into_iter().map(|(_, c)| c).collect())
}

/// An empty cell for the series of `row`.
fn new_cell(row: &MinuteRow<'_>) -> Cell {
    Cell::empty(row.src_region, row.target, row.labels, row.address)
}

impl Cell {
    /// An empty cell of a series: its region, target, the target's labels
    /// (JSON) and address (empty for DNS).
    pub(crate) fn empty(src_region: &str, target: &str, labels: &str, address: &str) -> Cell {
        let (group, control) = group_of(target, labels);
        Cell::named(
            src_region.to_string(),
            target.to_string(),
            group,
            control,
            (!address.is_empty()).then(|| address.to_string()),
        )
    }

    /// An empty cell with these names.
    pub(crate) fn named(
        src_region: String,
        target: String,
        group: String,
        control: bool,
        address: Option<String>,
    ) -> Cell {
        Cell {
            src_region,
            group,
            control,
            target,
            address,
            attempts: 0,
            first_us: i64::MAX,
            baseline_attempts: 0,
            baseline_failures: 0,
            failures: Vec::new(),
            local_failures: 0,
            local_since_us: None,
            rtt_baseline: Vec::new(),
            rtt_recent: Vec::new(),
            syn_baseline: Syns::default(),
            syn_recent: Vec::new(),
            retransmitted_at: Vec::new(),
        }
    }
}

/// What the evidence reads of one stored minute of a series: the same
/// numbers whether the minute comes from the store or from the cells kept
/// in memory ([`super::book`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Attempts that reached the wire (connects), or lookups.
    pub attempts: u64,
    /// Failures blamed on the target or path.
    pub remote: u64,
    /// Failures blamed on the probe's own host.
    pub local: u64,
    /// For connects: their SYNs, and their RTT histogram (the probe's
    /// connect buckets); `None` for lookups.
    pub connect: Option<(Syns, [u64; RTT_SLOTS])>,
}

/// Slots of an RTT histogram: one per connect bucket, and one above them.
pub(crate) const RTT_SLOTS: usize = vantage_probe::stats::CONNECT_BUCKETS_US.len() + 1;

impl Counts {
    /// The counts of a stored minute.
    pub(crate) fn of(data: &Minute) -> Counts {
        match data {
            Minute::Dns(d) => {
                let n: u64 = d.outcomes.iter().sum();
                Counts {
                    attempts: n,
                    remote: n - d.outcomes[DnsOutcome::Ok.index()],
                    local: 0,
                    connect: None,
                }
            }
            Minute::Connect(c) => {
                let (remote, local) = (c.blamed(Blame::Remote), c.blamed(Blame::Local));
                Counts {
                    attempts: c.attempts() - local,
                    remote,
                    local,
                    connect: Some((
                        Syns::of(c),
                        std::array::from_fn(|i| c.rtt.counts.get(i).copied().unwrap_or(0)),
                    )),
                }
            }
        }
    }
}

/// Whether a stored failure's outcome is blamed on the probe's own host.
pub(crate) fn is_local(outcome: &str) -> bool {
    ConnectOutcome::ALL
        .iter()
        .any(|o| o.blame() == Blame::Local && o.as_str() == outcome)
}

impl Cell {
    /// Adds one minute: to the recent window from `recent_minute` on, else
    /// to the baseline; RTT and slow connects by the latency window, which
    /// ends at `now_minute`.
    pub(crate) fn add(&mut self, minute: i64, m: &Counts, recent_minute: i64, now_minute: i64) {
        if let Some((syns, rtt)) = &m.connect {
            if minute >= recent_minute {
                self.local_failures += m.local;
            }
            // Lost SYNs by the recent window, as failures: a loss fault
            // stays beside its baseline for the whole window, not absorbed
            // into it minutes after its onset.
            if minute >= recent_minute {
                self.syn_recent.push((minute, *syns));
            } else {
                self.syn_baseline.add(*syns);
            }
            if minute > now_minute - LATENCY_WINDOW_MINUTES {
                self.rtt_recent.push((minute, rtt.to_vec()));
            } else {
                if self.rtt_baseline.is_empty() {
                    self.rtt_baseline = vec![0; rtt.len()];
                }
                for (a, b) in self.rtt_baseline.iter_mut().zip(rtt) {
                    *a += b;
                }
            }
        }
        if minute >= recent_minute {
            self.attempts += m.attempts;
            self.first_us = self.first_us.min(minute * MINUTE_US);
        } else {
            self.baseline_attempts += m.attempts;
            self.baseline_failures += m.remote;
        }
    }

    /// Puts what the cell gathered in the order judging reads it: the
    /// recent minutes oldest first.
    pub(crate) fn finish(mut self) -> Cell {
        self.rtt_recent.sort_by_key(|(m, _)| *m);
        self.syn_recent.sort_by_key(|(m, _)| *m);
        self
    }
}

/// Cells in the matrix's order: by region, target and address (and the
/// series, for two probes of one region).
pub(crate) fn sort(cells: &mut [(i64, Cell)]) {
    cells.sort_by(|(sa, a), (sb, b)| {
        (&a.src_region, &a.target, &a.address, sa).cmp(&(&b.src_region, &b.target, &b.address, sb))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;
    /// Just after the minutes 100..=104 that the loss tests fill.
    const NOW_TEST: i64 = 105 * MINUTE_US;

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
                syn_baseline: Syns::default(),
                syn_recent: Vec::new(),
                retransmitted_at: Vec::new(),
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

    /// SYNs of a minute of 60 connects of which `slow` needed one SYN again.
    fn syns(slow: u64) -> Syns {
        Syns {
            sent: 60 + slow,
            lost: slow,
            slow,
        }
    }

    #[test]
    fn the_syns_of_a_minute_count_retransmits_and_timed_out_connects_as_lost() {
        use vantage_probe::stats::CONNECT_BUCKETS_US as B;
        let mut m = ConnectMinute::default();
        for (us, n) in [(800, 50), (1_001_000, 5), (2_004_000, 2)] {
            for _ in 0..n {
                m.outcomes[ConnectOutcome::Ok.index()] += 1;
                m.duration.observe(&B, us);
            }
        }
        // 5 + 2x2 retransmits of the slow ones, and 3 timeouts of two SYNs
        // each; 4 connects that never reached the wire.
        m.outcomes[ConnectOutcome::Timeout.index()] += 3;
        m.outcomes[ConnectOutcome::LocalResources.index()] += 4;
        m.syn_retransmits = 5 + 4 + 3;
        let s = Syns::of(&m);
        assert_eq!((s.sent, s.lost, s.slow), (60 + 12, 12 + 3, 7));
    }

    #[test]
    fn lost_syns_are_a_signal_only_beyond_the_baseline() {
        // 60 connects a minute; `slow` of them a SYN late in each of the
        // last five minutes, against an hour with `base_slow` of 3600.
        let lossy = |slow: u64, base_slow: u64| {
            let (mut c, _) = cell(300, &[], (3600, 0));
            c.syn_baseline = Syns {
                sent: 3600 + base_slow,
                lost: base_slow,
                slow: base_slow,
            };
            c.syn_recent = (0..5).map(|m| (100 + m, syns(slow))).collect();
            c
        };
        let State::Failing(f) = lossy(6, 0).lost_syns(NOW_TEST, 1e-3) else {
            panic!("{:?}", lossy(6, 0).lost_syns(NOW_TEST, 1e-3));
        };
        assert_eq!((f.failures, f.attempts), (30, 330));
        assert_eq!(f.reasons["syn_lost"], 30);
        assert_eq!(f.signal, Signal::Loss);
        assert_eq!(f.since_us, 100 * MINUTE_US);
        let loss = f.loss.unwrap();
        assert!(
            loss.low < 30.0 / 330.0 && 30.0 / 330.0 < loss.high,
            "{loss:?}"
        );
        assert_eq!(loss.percent(), "9.1% ± 3.6%");
        // A path that always lost this many is its own normal.
        assert_eq!(lossy(6, 360).lost_syns(NOW_TEST, 1e-3), State::Healthy);
        // One slow connect in five minutes is not a lossy path.
        let mut one = lossy(0, 0);
        one.syn_recent[2].1 = syns(1);
        assert_eq!(one.lost_syns(NOW_TEST, 1e-3), State::Healthy);
        // Too little data to say, and no RTT for a name.
        let (thin, _) = cell(300, &[], (3600, 0));
        assert_eq!(thin.lost_syns(NOW_TEST, 1e-3), State::Unknown);
        let mut dns = lossy(6, 0);
        dns.address = None;
        assert_eq!(dns.lost_syns(NOW_TEST, 1e-3), State::Unknown);
        // A blackhole loses every SYN and answers none: failures, not loss.
        let mut hole = lossy(0, 0);
        hole.syn_recent[4].1 = Syns {
            sent: 60,
            lost: 60,
            slow: 0,
        };
        assert_eq!(hole.lost_syns(NOW_TEST, 1e-3), State::Healthy);
    }

    #[test]
    fn loss_needs_no_baseline_and_its_rate_is_the_faults_since_onset() {
        // A new deployment: three clean minutes, then 15% of SYNs lost
        // for two; no minute of baseline at all.
        let (mut c, _) = cell(300, &[], (0, 0));
        c.syn_recent = (0..3).map(|m| (100 + m, syns(0))).collect();
        for m in 3..5 {
            c.syn_recent.push((
                100 + m,
                Syns {
                    sent: 70,
                    lost: 11,
                    slow: 10,
                },
            ));
        }
        let State::Failing(f) = c.lost_syns(NOW_TEST, 1e-3) else {
            panic!("{:?}", c.lost_syns(NOW_TEST, 1e-3));
        };
        assert_eq!(f.since_us, 103 * MINUTE_US, "the first lossy minute");
        assert_eq!(
            (f.failures, f.attempts),
            (22, 140),
            "not diluted by the clean minutes"
        );
        let loss = f.loss.unwrap();
        assert!((loss.low..=loss.high).contains(&0.15), "{loss:?}");
        // The fault began 40 s into its first minute: dated to its first
        // retransmit, and the 40 healthy seconds before it left out of the
        // rate (the minute sent 70 SYNs, two thirds of them before).
        c.retransmitted_at = vec![103 * MINUTE_US + 40 * S, 103 * MINUTE_US + 51 * S];
        c.syn_recent[3].1 = Syns {
            sent: 70,
            lost: 4,
            slow: 4,
        };
        let State::Failing(f) = c.lost_syns(NOW_TEST, 1e-3) else {
            panic!("{:?}", c.lost_syns(NOW_TEST, 1e-3));
        };
        assert_eq!(f.since_us, 103 * MINUTE_US + 40 * S);
        assert_eq!((f.failures, f.attempts), (15, 70 - 46 + 70));
    }

    #[test]
    fn a_loss_fault_is_entered_on_enough_syns_that_its_first_rate_is_not_a_lucky_few() {
        // 30 s into a fault: 5 of the first 25 SYNs lost (20%), already
        // significant against a clean path, is not yet a finding: a cell
        // entering on so few would state rates biased high.
        let (mut c, _) = cell(300, &[], (0, 0));
        c.syn_recent = (0..4).map(|m| (100 + m, syns(0))).collect();
        c.syn_recent.push((
            104,
            Syns {
                sent: 25,
                lost: 5,
                slow: 5,
            },
        ));
        assert_eq!(c.lost_syns(NOW_TEST, 1e-3), State::Healthy);
        // A held cell stays on fewer.
        assert!(matches!(
            c.lost_syns_within(NOW_TEST, &Bounds::stay(1e-3)),
            State::Failing(_)
        ));
        // Forty SYNs on, it enters.
        c.syn_recent[4].1 = Syns {
            sent: 45,
            lost: 7,
            slow: 7,
        };
        assert!(matches!(c.lost_syns(NOW_TEST, 1e-3), State::Failing(_)));
        // The SYNs its first minute sent before the onset do not count: 70
        // in the minute, the first lost 40 s in, so about 24 since.
        c.syn_recent[4].1 = Syns {
            sent: 70,
            lost: 5,
            slow: 5,
        };
        c.retransmitted_at = vec![104 * MINUTE_US + 40 * S];
        assert_eq!(c.lost_syns(NOW_TEST, 1e-3), State::Healthy);
    }

    #[test]
    fn a_fault_near_its_bound_stays_until_the_looser_one() {
        // 4 of 300 SYNs lost (1.3%): below what enters a fault, above what
        // keeps one.
        let (mut c, _) = cell(300, &[], (3600, 0));
        c.syn_baseline = Syns {
            sent: 3600,
            lost: 0,
            slow: 0,
        };
        c.syn_recent = (0..5)
            .map(|m| {
                (
                    100 + m,
                    Syns {
                        sent: 60,
                        lost: [1, 0, 2, 0, 1][m as usize],
                        slow: [1, 0, 2, 0, 1][m as usize],
                    },
                )
            })
            .collect();
        assert_eq!(
            c.lost_syns_within(NOW_TEST, &Bounds::enter(1e-3)),
            State::Healthy
        );
        assert!(matches!(
            c.lost_syns_within(NOW_TEST, &Bounds::stay(1e-3)),
            State::Failing(_)
        ));
        // A clean path leaves even the looser bound.
        c.syn_recent = (0..5).map(|m| (100 + m, syns(0))).collect();
        assert_eq!(
            c.lost_syns_within(NOW_TEST, &Bounds::stay(1e-3)),
            State::Healthy
        );
    }

    #[test]
    fn a_new_fault_has_its_own_onset_not_an_earlier_ones() {
        // The target refused for 60 s and came back; minutes later the
        // region's egress blackholed: the onset is the blackhole's.
        let now = 10_000 * S;
        let mut ago: Vec<(i64, &str)> = (400..460).map(|a| (a, "refused")).collect();
        ago.extend((0..20).map(|a| (a, "timeout")));
        let (mut c, _) = cell(900, &[], (3600, 0));
        c.failures = ago
            .iter()
            .map(|(a, o)| (now - a * S, o.to_string()))
            .collect();
        c.failures.sort();
        let State::Failing(f) = c.state(now, 1e-3) else {
            panic!("{:?}", c.state(now, 1e-3));
        };
        assert_eq!(f.since_us, now - 19 * S);
        assert_eq!(f.reasons.keys().collect::<Vec<_>>(), ["timeout"]);
        assert_eq!(f.failures, 20);
        // The same with both faults timing out: a clean run of minutes at
        // their rate ended the first.
        for (at, o) in &mut c.failures {
            if *at < now - 300 * S {
                *o = "timeout".into();
            }
        }
        let State::Failing(f) = c.state(now, 1e-3) else {
            panic!("{:?}", c.state(now, 1e-3));
        };
        assert_eq!((f.since_us, f.failures), (now - 19 * S, 20));
        // An earlier intermittent fault (a lost SYN every 10 s for 40 s,
        // timing out as the new one does) and a clean 110 s before a
        // blackhole: the gap is judged at the rate of the failures beside
        // it, not diluted by the gap itself, and ends the first (the lab's
        // address fault was dated from seed 003's timeouts minutes before).
        let mut ago: Vec<i64> = vec![145, 135, 125, 115];
        ago.extend(0..4);
        let (c, now) = cell(900, &ago, (3600, 0));
        let State::Failing(f) = c.state(now, 1e-3) else {
            panic!("{:?}", c.state(now, 1e-3));
        };
        assert_eq!((f.since_us, f.failures), (now - 3 * S, 4), "{f:?}");
        // An intermittent fault's scattered failures are one fault.
        let ago: Vec<i64> = (0..300).filter(|s| s % 11 == 0 || s % 17 == 0).collect();
        let (c, now) = cell(900, &ago, (3600, 0));
        let State::Failing(f) = c.state(now, 1e-3) else {
            panic!("not failing");
        };
        assert_eq!(f.since_us, now - 297 * S, "{f:?}");
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
        // The new level, not the window's median that still holds the two
        // clean minutes.
        assert!(shift.since_p50_ms > 30.0, "{shift:?}");
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

    /// Read through the real store: fifteen minutes of 1-in-7 lost SYNs
    /// after five clean ones. The loss stays beside its clean baseline for
    /// the whole recent window (it was judged over its last 5 minutes
    /// against a baseline that had absorbed the fault's first 10, and
    /// faded), and its onset and rate are the fault's.
    #[tokio::test]
    async fn a_loss_fault_older_than_five_minutes_is_not_absorbed_into_its_baseline() {
        use std::sync::Arc;
        use std::time::{Duration, UNIX_EPOCH};
        use vantage_probe::result::{ConnectAttempt, Identity, RoundResult, Timestamp};
        use vantage_probe::wire::{Batch, SCHEMA_VERSION};

        let dir = std::env::temp_dir().join(format!("vantage-cells-loss-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let keep = Duration::from_secs(3650 * 86_400);
        let store = crate::store::Store::open(
            &dir,
            crate::config::Retention {
                rollups: keep,
                failures: keep,
                receipts: keep,
            },
        )
        .unwrap();
        // 2026-01-10T23:00:00Z, one connect every 2 s for 20 minutes.
        let start = 1_768_086_000u64;
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(start + s);
        let round = |s: u64| {
            let lost = s >= 300 && (s / 2).is_multiple_of(7);
            RoundResult {
                target: "api".into(),
                host: "10.1.0.1".into(),
                port: 443,
                labels: Arc::default(),
                started_at: Timestamp::from(at(s)),
                dns: None,
                attempts: vec![ConnectAttempt {
                    address: "10.1.0.1:443".parse().unwrap(),
                    local: None,
                    started_at: Timestamp::from(at(s)),
                    outcome: ConnectOutcome::Ok,
                    duration_us: if lost { 1_000_900 } else { 900 },
                    rtt_us: (!lost).then_some(800),
                    syn_retransmits: u32::from(lost),
                    errno: None,
                    icmp_from: None,
                }],
            }
        };
        let seconds: Vec<u64> = (0..1200).step_by(2).collect();
        for (seq, chunk) in seconds.chunks(30).enumerate() {
            let last = at(chunk[chunk.len() - 1]);
            let batch = Batch {
                schema: SCHEMA_VERSION,
                probe: Identity {
                    src_region: "onprem".into(),
                    zone: None,
                    probe_id: "onprem-1".into(),
                },
                stream: "s".into(),
                seq: seq as u64 + 1,
                sent_at: Timestamp::from(last),
                results: chunk.iter().map(|s| round(*s)).collect(),
                last: false,
            };
            store.submit(batch, last, last).await.unwrap();
        }
        let now = crate::time::us(at(1200));
        let params = super::super::Params::default();
        let recent_from = now - params.recent.as_micros() as i64;
        let baseline_from = recent_from - params.baseline.as_micros() as i64;
        let cells = store
            .read(|snap| read(snap, baseline_from, recent_from, now))
            .unwrap();
        assert_eq!(cells.len(), 1);
        let State::Failing(f) = cells[0].lost_syns(now, params.alpha) else {
            panic!(
                "fifteen minutes of loss faded: {:?}",
                cells[0].lost_syns(now, params.alpha)
            );
        };
        assert_eq!(f.since_us, crate::time::us(at(308)), "the first lost SYN");
        let rate = f.loss.unwrap();
        assert!(
            rate.low <= 1.0 / 8.0 && 1.0 / 8.0 <= rate.high,
            "1 SYN in 8 sent is lost: {rate:?}"
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
