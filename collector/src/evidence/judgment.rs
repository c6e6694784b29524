//! What readers are shown of a judgment: the evaluation loop's last one,
//! kept between evaluations without the cells.

use super::assessment::Assessment;
use super::localize::Finding;
use super::reachability::{self, Reachability};

/// A judgment as readers are shown it: when, its findings, and each
/// target's view from every region (what reachability answers), without
/// the cells (a fleet's worth of them is not kept between evaluations).
#[derive(Debug)]
pub struct Judgment {
    /// When (µs since the epoch).
    pub at_us: i64,
    /// The localized faults.
    pub findings: Vec<Finding>,
    views: reachability::Views,
}

impl Judgment {
    /// What readers are shown of `a`.
    pub fn of(a: Assessment) -> Judgment {
        Judgment {
            views: reachability::Views::of(&a),
            at_us: a.at_us,
            findings: a.findings,
        }
    }

    /// The reachability of `target` in it, seen `from` a region if asked.
    pub(crate) fn reachability(&self, target: &str, from: Option<&str>) -> Reachability {
        reachability::judge(&self.views, &self.findings, self.at_us, target, from)
    }
}
