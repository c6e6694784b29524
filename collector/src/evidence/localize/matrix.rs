//! The region x target matrix the rules vote on: one status per pair,
//! from the judged cells of that region and target. It borrows the cells'
//! names: built on every evaluation over every cell, it copies none.

use std::collections::{BTreeMap, BTreeSet};

use super::Judged;

/// Region x target status from cells: a pair is failing when any of its
/// cells fails, healthy when it has a healthy cell and no failing one, and
/// unknown (absent from `known`) otherwise.
pub(super) struct Matrix<'a> {
    pub(super) regions: BTreeSet<&'a str>,
    pub(super) targets: BTreeSet<&'a str>,
    /// Region to target to failing (`true`) or healthy (`false`).
    known: BTreeMap<&'a str, BTreeMap<&'a str, bool>>,
    groups: BTreeMap<&'a str, &'a str>,
}

impl<'a> Matrix<'a> {
    pub(super) fn new(cells: &[&'a Judged<'a>]) -> Matrix<'a> {
        let mut m = Matrix {
            regions: BTreeSet::new(),
            targets: BTreeSet::new(),
            known: BTreeMap::new(),
            groups: BTreeMap::new(),
        };
        for j in cells {
            let (r, t) = (j.cell.src_region.as_str(), j.cell.target.as_str());
            m.regions.insert(r);
            if m.targets.insert(t) {
                m.groups.insert(t, &j.cell.group);
            }
            let failing = j.failing.is_some();
            if failing || j.healthy {
                *m.known.entry(r).or_default().entry(t).or_insert(failing) |= failing;
            }
        }
        m
    }

    fn state(&self, r: &str, t: &str) -> Option<bool> {
        self.known.get(r)?.get(t).copied()
    }

    pub(super) fn is_failing(&self, r: &str, t: &str) -> bool {
        self.state(r, t) == Some(true)
    }

    pub(super) fn is_healthy(&self, r: &str, t: &str) -> bool {
        self.state(r, t) == Some(false)
    }

    pub(super) fn group<'b>(&'b self, t: &'b str) -> &'b str {
        self.groups.get(t).copied().unwrap_or(t)
    }

    pub(super) fn known_regions(&self, t: &str) -> Vec<&'a str> {
        self.regions
            .iter()
            .copied()
            .filter(|r| self.state(r, t).is_some())
            .collect()
    }

    pub(super) fn failing_regions(&self, t: &str) -> Vec<&'a str> {
        self.regions
            .iter()
            .copied()
            .filter(|r| self.is_failing(r, t))
            .collect()
    }

    pub(super) fn healthy_regions(&self, t: &str) -> Vec<String> {
        self.regions
            .iter()
            .filter(|r| self.is_healthy(r, t))
            .map(|r| r.to_string())
            .collect()
    }

    pub(super) fn known_targets(&self, r: &str) -> Vec<&'a str> {
        self.known
            .get(r)
            .map_or_else(Vec::new, |m| m.keys().copied().collect())
    }
}
