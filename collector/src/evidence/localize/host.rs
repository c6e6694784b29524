//! The exclusions: a region whose probe host is broken, and a region's
//! probes that went silent, are findings of their own; a broken region,
//! and one whose every probe is silent, sit out the vote on the targets.

use std::collections::BTreeMap;

use super::{Finding, ProbeLiveness, RegionEvidence, Scope, Signal, explain};
use crate::evidence::cells::{Cell, Failing, State};

/// A region whose probes fail with local errors (at least 3, and a tenth of
/// their attempts), or fail a control target.
pub(super) fn probe_host_findings(cells: &[Cell], now_us: i64, alpha: f64) -> Vec<Finding> {
    let mut regions: BTreeMap<&str, Vec<&Cell>> = BTreeMap::new();
    for c in cells {
        regions.entry(&c.src_region).or_default().push(c);
    }
    let mut out = Vec::new();
    for (r, of_r) in regions {
        let local: u64 = of_r.iter().map(|c| c.local_failures).sum();
        let attempts: u64 = of_r.iter().map(|c| c.attempts).sum::<u64>() + local;
        let controls: Vec<(&Cell, Failing)> = of_r
            .iter()
            .filter(|c| c.control)
            .filter_map(|c| match c.state(now_us, alpha) {
                State::Failing(f) => Some((*c, f)),
                _ => None,
            })
            .collect();
        let local_broken = local >= 3 && local * 10 >= attempts;
        if !local_broken && controls.is_empty() {
            continue;
        }
        let mut reasons = BTreeMap::new();
        let mut failures = 0;
        let mut since = i64::MAX;
        if local_broken {
            reasons.insert("local_errors".to_string(), local);
            failures += local;
            since = of_r
                .iter()
                .filter_map(|c| c.local_since_us)
                .min()
                .unwrap_or(now_us);
        }
        for (_, f) in &controls {
            failures += f.failures;
            since = since.min(f.since_us);
            for (k, v) in &f.reasons {
                *reasons.entry(k.clone()).or_insert(0) += v;
            }
        }
        let targets: Vec<String> = controls.iter().map(|(c, _)| c.target.clone()).collect();
        let mut f = Finding {
            scope: Scope::Probe,
            signal: Signal::Failures,
            src_regions: vec![r.to_string()],
            targets,
            target_group: None,
            address: None,
            probe_ids: Vec::new(),
            since_us: since,
            evidence: vec![RegionEvidence {
                src_region: r.to_string(),
                failures,
                attempts,
                reasons,
                since_us: since,
                baseline_failures: 0,
                baseline_attempts: 0,
                p_value: controls.iter().map(|(_, f)| f.p_value).fold(1.0, f64::min),
                rtt: None,
                loss: None,
            }],
            healthy_alternatives: Vec::new(),
            quorum: if local_broken {
                format!("{local} local errors in {attempts} attempts")
            } else {
                format!("{} control targets failing", controls.len())
            },
            explanation: String::new(),
        };
        f.explanation = explain(&f);
        out.push(f);
    }
    out
}

/// The finding of a region's silent probes, `silent` of the `of` that
/// report or are silent (stopped and replaced probes are neither). When
/// they are all of them, no probe of the region reports any more and it
/// sits out the vote.
pub(super) fn silent_finding(region: &str, silent: &[&ProbeLiveness], of: usize) -> Finding {
    let mut probe_ids: Vec<String> = silent.iter().map(|p| p.probe_id.clone()).collect();
    probe_ids.sort();
    let mut f = Finding {
        scope: Scope::Silent,
        signal: Signal::Failures,
        src_regions: vec![region.to_string()],
        targets: Vec::new(),
        target_group: None,
        address: None,
        probe_ids,
        since_us: silent.iter().map(|p| p.last_seen_us).min().unwrap_or(0),
        evidence: Vec::new(),
        healthy_alternatives: Vec::new(),
        quorum: format!(
            "{} of {of} probe{}",
            silent.len(),
            if of == 1 { "" } else { "s" }
        ),
        explanation: String::new(),
    };
    f.explanation = explain(&f);
    if silent.len() == of {
        f.explanation.pop(); // the full stop
        f.explanation
            .push_str(&format!("; {region} is left out of the vote."));
    }
    f
}
