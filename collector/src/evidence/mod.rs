//! Cross-region evidence: which paths fail beyond their baseline, where the
//! fault is (target, source region, path, address, DNS), and the numbers
//! that prove it.
//!
//! - [`stats`]: the binomial test and histogram quantiles;
//! - [`cells`]: the region x target x address matrix read from the store,
//!   and the test of one cell;
//! - [`localize`]: from cell states to scoped findings;
//! - [`api`]: `GET /api/v1/findings` and `GET /api/v1/reachability`.

pub mod alertmanager;
pub mod api;
pub mod cells;
pub mod incidents;
pub mod localize;
pub mod runner;
pub mod stats;

use std::time::{Duration, SystemTime};

use crate::store::{Store, StoreError, us};
use localize::Finding;

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

/// Judges the store's data at `now`, with the fleet's probes as they are.
pub fn assess(
    store: &Store,
    probes: &[localize::ProbeLiveness],
    now: SystemTime,
    params: Params,
) -> Result<Assessment, StoreError> {
    let now_us = us(now);
    let recent_from = now_us - params.recent.as_micros() as i64;
    let baseline_from = recent_from - params.baseline.as_micros() as i64;
    let cells = store.read(|conn| cells::read(conn, baseline_from, recent_from, now_us))?;
    let findings = localize::localize(&cells, probes, now_us, params.alpha);
    Ok(Assessment {
        at_us: now_us,
        cells,
        findings,
        alpha: params.alpha,
    })
}

/// The fleet's probes for [`assess`].
pub fn probes_of(fleet: &crate::fleet::Fleet, now: SystemTime) -> Vec<localize::ProbeLiveness> {
    fleet
        .probes(now)
        .into_iter()
        .filter(|(_, _, l)| *l != crate::fleet::Liveness::Forgotten)
        .map(|(id, p, l)| localize::ProbeLiveness {
            probe_id: id,
            src_region: p.src_region,
            last_seen_us: us(p.last_seen),
            silent: l == crate::fleet::Liveness::Silent,
        })
        .collect()
}

/// `HH:MM UTC` of a time in microseconds since the epoch, for sentences.
pub(crate) fn hhmm(at_us: i64) -> String {
    let s = humantime::format_rfc3339_seconds(crate::store::from_us(at_us)).to_string();
    format!("{} UTC", &s[11..16])
}
