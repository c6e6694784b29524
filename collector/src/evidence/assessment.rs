//! One judgment of the matrix: the parameters it is judged at, and the
//! cells and findings at one moment, judged from the store (the
//! reference) or from cells already read. A leaf of the evidence: the book,
//! reachability and the judge all build on it.

use std::time::{Duration, SystemTime};

use super::cells;
use super::localize::{self, Finding, Held};
use crate::store::{Store, StoreError};
use crate::time::us;

/// How the matrix is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// The recent window, in which faults are looked for.
    pub recent: Duration,
    /// The baseline before it.
    pub baseline: Duration,
    /// Significance of one cell's test.
    pub alpha: f64,
}

impl Params {
    /// The parameters a collector config asks for.
    pub fn from_policy(p: &crate::config::EvidencePolicy) -> Params {
        Params {
            recent: p.recent,
            baseline: p.baseline,
            ..Params::default()
        }
    }
}

impl Default for Params {
    fn default() -> Self {
        Params {
            recent: Duration::from_secs(15 * 60),
            baseline: Duration::from_secs(60 * 60),
            alpha: 1e-3,
        }
    }
}

/// The cells and findings at one moment.
#[derive(Debug, Clone)]
pub struct Assessment {
    /// When (µs since the epoch).
    pub at_us: i64,
    /// Every cell with recent data.
    pub cells: Vec<cells::Cell>,
    /// The localized faults.
    pub findings: Vec<Finding>,
    /// The significance the cells were judged at.
    pub alpha: f64,
}

impl Assessment {
    /// The longest time between two attempts of a cell `among` accepts:
    /// how long the slowest of them takes to be measured once more. Its
    /// attempts are counted from its first minute, or from `began` (µs)
    /// when its region's data began later (a fleet younger than a minute).
    /// `None` when no such cell has attempts.
    pub(crate) fn attempt_interval(
        &self,
        among: impl Fn(&cells::Cell) -> bool,
        began: impl Fn(&str) -> Option<i64>,
    ) -> Option<Duration> {
        self.cells
            .iter()
            .filter(|c| c.attempts > 0 && among(c))
            .map(|c| {
                let from = began(&c.src_region).map_or(c.first_us, |b| b.max(c.first_us));
                (self.at_us - from).max(1) as f64 / 1e6 / c.attempts as f64
            })
            .reduce(f64::max)
            .map(Duration::from_secs_f64)
    }
}

/// Judges the store's data at `now`, with the fleet's probes as they are;
/// cells the open incidents `held` stay failing at the looser bound.
pub fn assess(
    store: &Store,
    probes: &[localize::ProbeLiveness],
    now: SystemTime,
    params: Params,
    held: &Held,
) -> Result<Assessment, StoreError> {
    let now_us = us(now);
    let recent_from = now_us - params.recent.as_micros() as i64;
    let baseline_from = recent_from - params.baseline.as_micros() as i64;
    let cells = store.read(|snap| cells::read(snap, baseline_from, recent_from, now_us))?;
    Ok(judge(cells, probes, now_us, params, held))
}

/// Judges `cells` (the matrix at `now_us`), as [`assess`] does.
pub(crate) fn judge(
    cells: Vec<cells::Cell>,
    probes: &[localize::ProbeLiveness],
    now_us: i64,
    params: Params,
    held: &Held,
) -> Assessment {
    let findings = localize::localize(&cells, probes, now_us, params.alpha, held);
    Assessment {
        at_us: now_us,
        cells,
        findings,
        alpha: params.alpha,
    }
}
