//! The region x target matrix the rules vote on: one status per pair,
//! from the judged cells of that region and target. It borrows the cells'
//! names: built on every evaluation over every cell, it copies none.
//!
//! Regions and targets are numbered in their sorted order and the pairs
//! kept in one dense table, so that the rules' questions ("which regions
//! fail to this target", asked of every target) are array reads, not
//! lookups by name: at 100 regions x 1k targets each signal asks them
//! 200,000 times.

use std::collections::{HashMap, HashSet};

use super::Judged;

/// A pair's status in the table.
const UNKNOWN: u8 = 0;
const HEALTHY: u8 = 1;
const FAILING: u8 = 2;

/// Region x target status from cells: a pair is failing when any of its
/// cells fails, healthy when it has a healthy cell and no failing one, and
/// unknown otherwise.
pub(super) struct Matrix<'a> {
    /// Every region with a cell, sorted.
    pub(super) regions: Vec<&'a str>,
    /// Every target with a cell, sorted.
    pub(super) targets: Vec<&'a str>,
    region_ix: HashMap<&'a str, usize>,
    target_ix: HashMap<&'a str, usize>,
    /// Each target's group, by target number.
    groups: Vec<&'a str>,
    /// The pairs' status, a row of `targets.len()` per region.
    known: Vec<u8>,
}

/// `names` sorted, and each one's place.
fn numbered<'a>(names: impl Iterator<Item = &'a str>) -> (Vec<&'a str>, HashMap<&'a str, usize>) {
    let mut sorted: Vec<&'a str> = names.collect();
    sorted.sort_unstable();
    let ix = sorted.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    (sorted, ix)
}

impl<'a> Matrix<'a> {
    pub(super) fn new(cells: &[&'a Judged<'a>]) -> Matrix<'a> {
        // The cells come in the matrix's order (a region's run of cells, a
        // target's cells next to each other): a name is looked up only
        // when it differs from the previous cell's. A target's group is
        // its first cell's.
        let mut regions: HashSet<&'a str> = HashSet::new();
        let mut groups_by_name: HashMap<&'a str, &'a str> = HashMap::new();
        let (mut last_r, mut last_t) = (None, None);
        for j in cells {
            let (r, t) = (j.cell.src_region.as_str(), j.cell.target.as_str());
            if last_r != Some(r) {
                regions.insert(r);
                last_r = Some(r);
            }
            if last_t != Some(t) {
                groups_by_name.entry(t).or_insert(j.cell.group.as_str());
                last_t = Some(t);
            }
        }
        let (regions, region_ix) = numbered(regions.into_iter());
        let (targets, target_ix) = numbered(groups_by_name.keys().copied());
        let groups = targets.iter().map(|t| groups_by_name[t]).collect();
        let mut m = Matrix {
            known: vec![UNKNOWN; regions.len() * targets.len()],
            regions,
            targets,
            region_ix,
            target_ix,
            groups,
        };
        let (mut last, mut row, mut col) = (None::<(&str, &str)>, 0, 0);
        for j in cells {
            let status = if j.failing.is_some() {
                FAILING
            } else if j.healthy {
                HEALTHY
            } else {
                continue;
            };
            let (r, t) = (j.cell.src_region.as_str(), j.cell.target.as_str());
            if last != Some((r, t)) {
                (row, col) = (m.region_ix[r], m.target_ix[t]);
                last = Some((r, t));
            }
            let at = &mut m.known[row * m.targets.len() + col];
            *at = (*at).max(status);
        }
        m
    }

    /// A pair's status by numbers.
    fn at(&self, row: usize, col: usize) -> u8 {
        self.known[row * self.targets.len() + col]
    }

    fn state(&self, r: &str, t: &str) -> u8 {
        match (self.region_ix.get(r), self.target_ix.get(t)) {
            (Some(&row), Some(&col)) => self.at(row, col),
            _ => UNKNOWN,
        }
    }

    pub(super) fn is_failing(&self, r: &str, t: &str) -> bool {
        self.state(r, t) == FAILING
    }

    pub(super) fn is_healthy(&self, r: &str, t: &str) -> bool {
        self.state(r, t) == HEALTHY
    }

    pub(super) fn group<'b>(&'b self, t: &'b str) -> &'b str {
        self.target_ix.get(t).map_or(t, |&col| self.groups[col])
    }

    /// The regions whose status toward `t` is one that `keep` accepts,
    /// sorted.
    fn regions_where(&self, t: &str, keep: impl Fn(u8) -> bool) -> Vec<&'a str> {
        let Some(&col) = self.target_ix.get(t) else {
            return Vec::new();
        };
        (0..self.regions.len())
            .filter(|&row| keep(self.at(row, col)))
            .map(|row| self.regions[row])
            .collect()
    }

    pub(super) fn known_regions(&self, t: &str) -> Vec<&'a str> {
        self.regions_where(t, |s| s != UNKNOWN)
    }

    pub(super) fn failing_regions(&self, t: &str) -> Vec<&'a str> {
        self.regions_where(t, |s| s == FAILING)
    }

    pub(super) fn healthy_regions(&self, t: &str) -> Vec<String> {
        self.regions_where(t, |s| s == HEALTHY)
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// The targets `r` has a known status toward, sorted.
    pub(super) fn known_targets(&self, r: &str) -> Vec<&'a str> {
        let Some(&row) = self.region_ix.get(r) else {
            return Vec::new();
        };
        (0..self.targets.len())
            .filter(|&col| self.at(row, col) != UNKNOWN)
            .map(|col| self.targets[col])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Signal;
    use super::*;
    use crate::evidence::cells::{Cell, Failing};

    fn cell(r: &str, t: &str, g: &str) -> Cell {
        Cell::named(
            r.into(),
            t.into(),
            g.into(),
            false,
            Some("10.0.0.1:443".into()),
        )
    }

    fn failing() -> Failing {
        Failing {
            since_us: 0,
            failures: 2,
            attempts: 2,
            p_value: 1e-9,
            reasons: Default::default(),
            rtt: None,
            loss: None,
            signal: Signal::Failures,
        }
    }

    /// Cells in any order (the matrix's, or not): a pair fails when any of
    /// its cells fails, is healthy with a healthy cell and no failing one,
    /// and is unknown without either; names are sorted.
    #[test]
    fn a_pair_is_its_worst_cell_in_whatever_order_the_cells_come() {
        let cells = [
            cell("west", "db", "gcp"),
            cell("east", "db", "gcp"),
            cell("east", "web", "aws"),
            cell("west", "db", "gcp"),
            cell("east", "db", "gcp"),
            cell("north", "web", "aws"),
        ];
        let judged: Vec<Judged<'_>> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| Judged {
                cell: c,
                healthy: [0, 1, 2].contains(&i),
                failing: [3, 4].contains(&i).then(failing),
            })
            .collect();
        let refs: Vec<&Judged<'_>> = judged.iter().collect();
        let m = Matrix::new(&refs);
        assert_eq!(m.regions, ["east", "north", "west"]);
        assert_eq!(m.targets, ["db", "web"]);
        assert!(m.is_failing("west", "db") && m.is_failing("east", "db"));
        assert!(m.is_healthy("east", "web"));
        assert!(!m.is_healthy("north", "web") && !m.is_failing("north", "web"));
        assert_eq!(m.known_regions("db"), ["east", "west"]);
        assert_eq!(m.failing_regions("db"), ["east", "west"]);
        assert_eq!(m.healthy_regions("web"), ["east"]);
        assert_eq!(m.known_targets("east"), ["db", "web"]);
        assert_eq!(m.known_targets("north"), Vec::<&str>::new());
        assert_eq!(m.group("web"), "aws");
        assert_eq!(m.group("nothing"), "nothing");
        assert!(!m.is_failing("south", "db") && m.known_regions("nothing").is_empty());
    }
}
