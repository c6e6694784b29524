//! The rules, one function per scope, applied in order: addresses first,
//! then targets (or the whole fleet), source regions, and paths from what
//! is left; DNS cells apart. Each rule needs a quorum of what has data.

use std::collections::{BTreeMap, BTreeSet};

use super::{Finding, Judged, Matrix, Scope, finding, meets_quorum, sorted};
use crate::evidence::cells::{Cell, State};

/// The findings among `cells` as `judge` sees them.
pub(super) fn localize_judged(cells: &[&Cell], judge: &dyn Fn(&Cell) -> State) -> Vec<Finding> {
    let judged: Vec<Judged<'_>> = cells
        .iter()
        .map(|c| {
            let state = judge(c);
            Judged {
                cell: c,
                healthy: state == State::Healthy,
                failing: match state {
                    State::Failing(f) => Some(f),
                    _ => None,
                },
            }
        })
        .collect();
    let (dns, connect): (Vec<&Judged<'_>>, Vec<&Judged<'_>>) =
        judged.iter().partition(|j| j.cell.address.is_none());
    let (mut findings, explained) = address_findings(&connect);

    // The region x target matrix from what addresses leave unexplained.
    let remaining: Vec<&Judged<'_>> = connect
        .iter()
        .filter(|j| explained.is_empty() || !explained.contains(&key(j.cell)))
        .copied()
        .collect();
    let status = Matrix::new(&remaining);

    let target_side = target_side(&status);
    if let Some(global) = global_finding(&status, &remaining, &target_side) {
        findings.push(global);
        findings.extend(dns_findings(&dns));
        return sorted(findings);
    }
    findings.extend(target_findings(&status, &remaining, &target_side));
    let (source, source_side) = source_findings(&status, &remaining, &target_side);
    findings.extend(source);
    findings.extend(path_findings(
        &status,
        &remaining,
        &target_side,
        &source_side,
    ));
    findings.extend(dns_findings(&dns));
    sorted(findings)
}

/// Addresses: one address of a target failing in a quorum of regions
/// while a sibling address works in a quorum of its regions. Also returns
/// the cells these findings explain, which the other rules then leave out.
fn address_findings<'a>(connect: &[&'a Judged<'a>]) -> (Vec<Finding>, BTreeSet<CellKey<'a>>) {
    let mut findings = Vec::new();
    let mut explained: BTreeSet<CellKey<'a>> = BTreeSet::new();
    // Only a target with a failing cell can have a failing address: the
    // others are not grouped at all (a healthy fleet has none).
    let failing: BTreeSet<&str> = connect
        .iter()
        .filter(|j| j.failing.is_some())
        .map(|j| j.cell.target.as_str())
        .collect();
    let mut targets: BTreeMap<&str, Vec<&&Judged<'_>>> = BTreeMap::new();
    if failing.is_empty() {
        return (findings, explained);
    }
    for j in connect
        .iter()
        .filter(|j| failing.contains(j.cell.target.as_str()))
    {
        targets.entry(j.cell.target.as_str()).or_default().push(j);
    }
    for of_t in targets.values() {
        if !of_t.iter().any(|j| j.failing.is_some()) {
            continue;
        }
        let addresses: BTreeSet<&str> = of_t
            .iter()
            .filter_map(|j| j.cell.address.as_deref())
            .collect();
        if addresses.len() < 2 {
            continue;
        }
        let verdict = |a: &str| {
            let cells: Vec<&&&Judged<'_>> = of_t
                .iter()
                .filter(|j| j.cell.address.as_deref() == Some(a))
                .collect();
            let known = cells
                .iter()
                .filter(|j| j.healthy || j.failing.is_some())
                .count();
            let failing = cells.iter().filter(|j| j.failing.is_some()).count();
            let healthy = cells.iter().filter(|j| j.healthy).count();
            (
                meets_quorum(failing, known),
                meets_quorum(healthy, known) && healthy > 0,
            )
        };
        for a in &addresses {
            let (fails, _) = verdict(a);
            let sibling_ok = addresses.iter().any(|b| b != a && verdict(b).1);
            if fails && sibling_ok {
                let failing: Vec<&Judged<'_>> = of_t
                    .iter()
                    .filter(|j| j.cell.address.as_deref() == Some(*a) && j.failing.is_some())
                    .map(|j| **j)
                    .collect();
                for j in &failing {
                    explained.insert(key(j.cell));
                }
                let regions = regions_of(&failing);
                let known = of_t
                    .iter()
                    .filter(|j| j.cell.address.as_deref() == Some(*a))
                    .filter(|j| j.healthy || j.failing.is_some())
                    .count();
                findings.push(finding(
                    Scope::Address,
                    &failing,
                    Vec::new(),
                    None,
                    Some(a.to_string()),
                    format!("{} of {known} regions", regions.len()),
                ));
            }
        }
    }
    (findings, explained)
}

/// Targets that a quorum of the regions with data (at least two) fail to.
fn target_side<'a>(status: &Matrix<'a>) -> BTreeSet<&'a str> {
    let mut target_side = BTreeSet::new();
    for &t in &status.targets {
        let known = status.known_regions(t);
        let failing = status.failing_regions(t);
        if known.len() >= 2 && meets_quorum(failing.len(), known.len()) {
            target_side.insert(t);
        }
    }
    target_side
}

/// Global when most targets (at least three) are target-side: a shared
/// cause, no single target to blame.
fn global_finding(
    status: &Matrix<'_>,
    remaining: &[&Judged<'_>],
    target_side: &BTreeSet<&str>,
) -> Option<Finding> {
    let all_targets = status.targets.len();
    if target_side.len() >= 3 && meets_quorum(target_side.len(), all_targets) {
        let cells: Vec<&Judged<'_>> = remaining
            .iter()
            .filter(|j| j.failing.is_some() && target_side.contains(j.cell.target.as_str()))
            .copied()
            .collect();
        return Some(finding(
            Scope::Global,
            &cells,
            Vec::new(),
            None,
            None,
            format!("{} of {all_targets} targets", target_side.len()),
        ));
    }
    None
}

/// Target-side: one finding per target that most of its regions fail to.
fn target_findings(
    status: &Matrix<'_>,
    remaining: &[&Judged<'_>],
    target_side: &BTreeSet<&str>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut failing: BTreeMap<&str, Vec<&Judged<'_>>> = BTreeMap::new();
    for j in remaining.iter().filter(|j| j.failing.is_some()) {
        if target_side.contains(j.cell.target.as_str()) {
            failing.entry(&j.cell.target).or_default().push(j);
        }
    }
    for &t in target_side {
        let cells = failing.remove(t).unwrap_or_default();
        let known = status.known_regions(t).len();
        let healthy = status.healthy_regions(t);
        findings.push(finding(
            Scope::Target,
            &cells,
            healthy,
            None,
            None,
            format!("{} of {known} regions", regions_of(&cells).len()),
        ));
    }
    findings
}

/// Source-side: a region failing to most of the other targets, across
/// more than one group. Also returns those regions, which the paths leave
/// out.
fn source_findings<'a>(
    status: &Matrix<'a>,
    remaining: &[&Judged<'_>],
    target_side: &BTreeSet<&str>,
) -> (Vec<Finding>, BTreeSet<&'a str>) {
    let mut findings = Vec::new();
    let mut source_side = BTreeSet::new();
    for &r in &status.regions {
        let known: Vec<&str> = status
            .known_targets(r)
            .into_iter()
            .filter(|t| !target_side.contains(t))
            .collect();
        let failing: Vec<&str> = known
            .iter()
            .filter(|t| status.is_failing(r, t))
            .copied()
            .collect();
        let groups: BTreeSet<&str> = failing.iter().map(|t| status.group(t)).collect();
        if known.len() >= 3 && groups.len() >= 2 && meets_quorum(failing.len(), known.len()) {
            source_side.insert(r);
            let cells: Vec<&Judged<'_>> = remaining
                .iter()
                .filter(|j| {
                    j.failing.is_some()
                        && j.cell.src_region == r
                        && !target_side.contains(j.cell.target.as_str())
                })
                .copied()
                .collect();
            let alternatives = alternatives(status, r, &failing);
            findings.push(finding(
                Scope::Source,
                &cells,
                alternatives,
                None,
                None,
                format!("{} of {} targets", failing.len(), known.len()),
            ));
        }
    }
    (findings, source_side)
}

/// Paths: what is left, per region and target group; inconclusive when no
/// other region reaches the same targets or the region reaches no other
/// group.
fn path_findings(
    status: &Matrix<'_>,
    remaining: &[&Judged<'_>],
    target_side: &BTreeSet<&str>,
    source_side: &BTreeSet<&str>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut paths: BTreeMap<(&str, &str), Vec<&Judged<'_>>> = BTreeMap::new();
    for j in remaining {
        if j.failing.is_some()
            && !target_side.contains(j.cell.target.as_str())
            && !source_side.contains(j.cell.src_region.as_str())
        {
            paths
                .entry((&j.cell.src_region, &j.cell.group))
                .or_default()
                .push(j);
        }
    }
    for ((r, g), cells) in paths {
        let failing: Vec<&str> = cells
            .iter()
            .map(|j| j.cell.target.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let in_group = status
            .known_targets(r)
            .into_iter()
            .filter(|t| status.group(t) == g)
            .count();
        let alternatives = alternatives(status, r, &failing);
        let reaches_elsewhere = status
            .known_targets(r)
            .into_iter()
            .any(|t| status.group(t) != g && status.is_healthy(r, t));
        let scope = if !alternatives.is_empty() && reaches_elsewhere {
            Scope::Path
        } else {
            Scope::Inconclusive
        };
        findings.push(finding(
            scope,
            &cells,
            alternatives,
            Some(g.to_string()),
            None,
            format!("{} of {in_group} targets in {g}", failing.len()),
        ));
    }
    findings
}

/// DNS cells: everywhere for a name, region-wide for a resolver, else one
/// region and one name.
fn dns_findings(dns: &[&Judged<'_>]) -> Vec<Finding> {
    let mut out = Vec::new();
    // Only failing cells make findings; the matrix counts the rest.
    let failing_cells: Vec<&Judged<'_>> = dns
        .iter()
        .filter(|j| j.failing.is_some())
        .copied()
        .collect();
    if failing_cells.is_empty() {
        return out;
    }
    let status = Matrix::new(dns);
    let mut explained: BTreeSet<(&str, &str)> = BTreeSet::new();
    for &t in &status.targets {
        let known = status.known_regions(t);
        let failing = status.failing_regions(t);
        if known.len() >= 2 && meets_quorum(failing.len(), known.len()) {
            let cells: Vec<&Judged<'_>> = failing_cells
                .iter()
                .filter(|j| j.cell.target == t)
                .copied()
                .collect();
            for j in &cells {
                explained.insert((&j.cell.src_region, t));
            }
            out.push(finding(
                Scope::Dns,
                &cells,
                Vec::new(),
                None,
                None,
                format!("{} of {} regions", failing.len(), known.len()),
            ));
        }
    }
    for &r in &status.regions {
        let cells: Vec<&Judged<'_>> = failing_cells
            .iter()
            .filter(|j| j.cell.src_region == r && !explained.contains(&(r, j.cell.target.as_str())))
            .copied()
            .collect();
        if cells.is_empty() {
            continue;
        }
        let names: BTreeSet<&str> = cells.iter().map(|j| j.cell.target.as_str()).collect();
        let known = status.known_targets(r).len();
        let alternatives: Vec<String> = status
            .regions
            .iter()
            .filter(|o| **o != r && names.iter().all(|t| status.is_healthy(o, t)))
            .map(|o| o.to_string())
            .collect();
        out.push(finding(
            Scope::Dns,
            &cells,
            alternatives,
            None,
            None,
            format!("{} of {known} names", names.len()),
        ));
    }
    out
}

/// A connect cell's identity: region, target and address.
type CellKey<'a> = (&'a str, &'a str, Option<&'a str>);

fn key(c: &Cell) -> CellKey<'_> {
    (&c.src_region, &c.target, c.address.as_deref())
}

fn regions_of(cells: &[&Judged<'_>]) -> BTreeSet<String> {
    cells.iter().map(|j| j.cell.src_region.clone()).collect()
}

/// Regions other than `r` that reach every one of `targets`.
fn alternatives(status: &Matrix<'_>, r: &str, targets: &[&str]) -> Vec<String> {
    status
        .regions
        .iter()
        .filter(|o| **o != r && targets.iter().all(|t| status.is_healthy(o, t)))
        .map(|o| o.to_string())
        .collect()
}
