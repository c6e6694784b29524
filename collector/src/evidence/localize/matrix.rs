//! The region x target matrix the rules vote on: one status per pair,
//! from the judged cells of that region and target.

use std::collections::{BTreeMap, BTreeSet};

use super::Judged;

/// Region x target status from cells: a pair is failing when any of its
/// cells fails, healthy when it has a healthy cell and no failing one, and
/// unknown (absent from `known`) otherwise.
pub(super) struct Matrix {
    pub(super) regions: BTreeSet<String>,
    pub(super) targets: BTreeSet<String>,
    /// Region to target to failing (`true`) or healthy (`false`).
    known: BTreeMap<String, BTreeMap<String, bool>>,
    groups: BTreeMap<String, String>,
}

impl Matrix {
    pub(super) fn new(cells: &[&Judged<'_>]) -> Matrix {
        let mut m = Matrix {
            regions: BTreeSet::new(),
            targets: BTreeSet::new(),
            known: BTreeMap::new(),
            groups: BTreeMap::new(),
        };
        for j in cells {
            let (r, t) = (&j.cell.src_region, &j.cell.target);
            m.regions.insert(r.clone());
            m.targets.insert(t.clone());
            m.groups.insert(t.clone(), j.cell.group.clone());
            let failing = j.failing.is_some();
            if failing || j.healthy {
                *m.known
                    .entry(r.clone())
                    .or_default()
                    .entry(t.clone())
                    .or_insert(failing) |= failing;
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

    pub(super) fn group<'a>(&'a self, t: &'a str) -> &'a str {
        self.groups.get(t).map_or(t, String::as_str)
    }

    pub(super) fn known_regions(&self, t: &str) -> Vec<&String> {
        self.regions
            .iter()
            .filter(|r| self.state(r, t).is_some())
            .collect()
    }

    pub(super) fn failing_regions(&self, t: &str) -> Vec<&String> {
        self.regions
            .iter()
            .filter(|r| self.is_failing(r, t))
            .collect()
    }

    pub(super) fn healthy_regions(&self, t: &str) -> Vec<String> {
        self.regions
            .iter()
            .filter(|r| self.is_healthy(r, t))
            .cloned()
            .collect()
    }

    pub(super) fn known_targets(&self, r: &str) -> Vec<&String> {
        self.known
            .get(r)
            .map_or_else(Vec::new, |m| m.keys().collect())
    }
}
