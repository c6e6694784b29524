//! Localization: from the states of the matrix's cells to findings with a
//! scope. Every rule needs a quorum of the regions (or targets) that have
//! data, and a scope the data cannot support is reported as inconclusive,
//! never guessed.

mod explain;
mod finding;
mod held;
mod host;
mod matrix;
mod rules;

use std::collections::{BTreeMap, BTreeSet};

use super::cells::{Cell, Failing, STAY_ALPHA, State};
pub(crate) use super::signal::Signal;
use crate::fleet::Liveness;
pub(crate) use explain::explain;
use explain::finding;
pub(crate) use finding::{Finding, ProbeLiveness, RegionEvidence, Scope};
pub use held::Held;
use host::{probe_host_findings, silent_finding};
use matrix::Matrix;
use rules::localize_judged;

/// The share of regions (or targets) with data that must agree.
pub(crate) const QUORUM: f64 = 2.0 / 3.0;

/// How often a fleet may see a false finding, per evaluation. Each cell is
/// tested at its own level; a finding stands only if its evidence (the
/// product of its regions' p-values) is unlikely across all the cells that
/// were tested (a Bonferroni bound). A single path in a large fleet so
/// needs a round more than a fault seen from several regions at once.
pub(crate) const FLEET_ALPHA: f64 = 0.01;

/// A cell with its state.
struct Judged<'a> {
    cell: &'a Cell,
    failing: Option<Failing>,
    healthy: bool,
}

/// Whether `agree` of `of` is a quorum: [`QUORUM`] of them, rounded up.
fn meets_quorum(agree: usize, of: usize) -> bool {
    of > 0 && agree as f64 >= (QUORUM * of as f64).ceil() - 1e-9
}

/// Localizes the failing cells among `cells` at `now_us`. A region's
/// silent probes are one finding of that region; regions whose probe host
/// is broken, or whose every probe is silent, are reported as such and
/// left out of the vote. Cells that open incidents `held` are judged at
/// the looser bound that keeps a fault, the rest at the one that enters it.
pub(crate) fn localize(
    cells: &[Cell],
    probes: &[ProbeLiveness],
    now_us: i64,
    alpha: f64,
    held: &Held,
) -> Vec<Finding> {
    let mut own = Vec::new();
    let mut excluded: BTreeSet<String> = BTreeSet::new();
    // Per region: its silent probes, of those that report or are silent.
    let mut regions: BTreeMap<&str, (Vec<&ProbeLiveness>, usize)> = BTreeMap::new();
    for p in probes {
        let (silent, of) = regions.entry(&p.src_region).or_default();
        match p.liveness {
            Liveness::Silent => {
                silent.push(p);
                *of += 1;
            }
            Liveness::Reporting => *of += 1,
            _ => {}
        }
    }
    for (region, (silent, of)) in regions.into_iter().filter(|(_, (s, _))| !s.is_empty()) {
        if silent.len() == of {
            excluded.insert(region.to_string());
        }
        own.push(silent_finding(region, &silent, of));
    }
    for f in probe_host_findings(cells, now_us, alpha) {
        excluded.extend(f.src_regions.iter().cloned());
        own.push(f);
    }
    let voting: Vec<&Cell> = cells
        .iter()
        .filter(|c| !excluded.contains(&c.src_region))
        .collect();
    let mut findings = localize_voting(&voting, held, &|c: &Cell| {
        c.state_within(now_us, &held.bounds(Signal::Failures, c, alpha))
    });
    let latency: Vec<&Cell> = voting
        .iter()
        .copied()
        .filter(|c| c.address.is_some())
        .collect();
    findings.extend(localize_voting(&latency, held, &|c: &Cell| {
        c.latency_within(&held.bounds(Signal::Latency, c, alpha))
    }));
    let mut loss = localize_voting(&latency, held, &|c: &Cell| {
        c.lost_syns_within(now_us, &held.bounds(Signal::Loss, c, alpha))
    });
    for f in &mut loss {
        restate_loss(f, &latency, now_us);
    }
    findings.extend(loss);
    findings.extend(own);
    sorted(findings)
}

/// The findings among `cells` whose evidence survives [`FLEET_ALPHA`]
/// across the `cells.len()` cells tested; a finding an open incident
/// already holds whole stays at the looser [`STAY_ALPHA`], uncorrected.
fn localize_voting(cells: &[&Cell], held: &Held, judge: &dyn Fn(&Cell) -> State) -> Vec<Finding> {
    let tested = cells.len().max(1) as f64;
    let mut findings = localize_judged(cells, judge);
    findings.retain(|f| {
        let log_p: f64 = f.evidence.iter().map(|e| e.p_value.max(1e-300).ln()).sum();
        if held.holds_all(f) {
            log_p < STAY_ALPHA.ln()
        } else {
            log_p + tested.ln() < FLEET_ALPHA.ln()
        }
    });
    findings
}

/// A loss finding's rate, per region, over every cell of what it names
/// since the region's onset, not only over the cells that crossed the
/// bound: the first cell to cross is the one whose first SYNs happened to
/// be lost most, and its rate alone would overstate the loss (the lab's
/// first pages said 30% for 15%). What it names: a path, every target of
/// its group; a source (or everything), every target; a target, each of
/// its addresses; an address, that one.
fn restate_loss(f: &mut Finding, cells: &[&Cell], now_us: i64) {
    let scope = f.scope;
    let group = f.target_group.clone();
    let address = f.address.clone();
    let targets = f.targets.clone();
    let names = |c: &Cell| match scope {
        Scope::Path => group.as_ref() == Some(&c.group),
        Scope::Source | Scope::Global => true,
        Scope::Address => address.is_some() && c.address == address,
        _ => targets.contains(&c.target),
    };
    for e in &mut f.evidence {
        let mut syns = crate::evidence::cells::Syns::default();
        for c in cells
            .iter()
            .filter(|c| c.src_region == e.src_region && names(c))
        {
            let s = c.syns_since(e.since_us, now_us);
            syns.sent += s.sent;
            syns.lost += s.lost;
            syns.slow += s.slow;
        }
        if syns.sent > 0 {
            e.loss = Some(crate::evidence::cells::LossRate::new(
                syns.lost, syns.sent, syns.slow,
            ));
            e.failures = syns.lost;
            e.attempts = syns.sent;
            e.reasons = BTreeMap::from([("syn_lost".to_string(), syns.lost)]);
        }
    }
    f.explanation = explain(f);
}

/// Findings in a stable order: by onset, then scope, regions and targets.
fn sorted(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by(|a, b| {
        (a.since_us, a.scope, &a.src_regions, &a.targets).cmp(&(
            b.since_us,
            b.scope,
            &b.src_regions,
            &b.targets,
        ))
    });
    findings
}

#[cfg(test)]
mod tests;
