//! The sentences: the [`Finding`] built from its judged cells, and the one
//! sentence a person can read aloud on a call, for failures, latency and
//! loss alike.

use std::collections::{BTreeMap, BTreeSet};

use super::{Finding, Judged, RegionEvidence, Scope, Signal};
use crate::evidence::cells::{LossRate, RttShift};

/// One finding of `scope` from the failing cells among `cells`: their
/// evidence summed per region, its onset the earliest of theirs, and its
/// sentence.
pub(super) fn finding(
    scope: Scope,
    cells: &[&Judged<'_>],
    healthy_alternatives: Vec<String>,
    target_group: Option<String>,
    address: Option<String>,
    quorum: String,
) -> Finding {
    let mut per_region: BTreeMap<String, RegionEvidence> = BTreeMap::new();
    let mut targets = BTreeSet::new();
    for j in cells {
        let Some(f) = &j.failing else { continue };
        targets.insert(j.cell.target.clone());
        let e = per_region
            .entry(j.cell.src_region.clone())
            .or_insert_with(|| RegionEvidence {
                src_region: j.cell.src_region.clone(),
                failures: 0,
                attempts: 0,
                reasons: BTreeMap::new(),
                since_us: i64::MAX,
                baseline_failures: 0,
                baseline_attempts: 0,
                p_value: 1.0,
                rtt: None,
                loss: None,
            });
        e.failures += f.failures;
        e.attempts += f.attempts;
        for (k, v) in &f.reasons {
            *e.reasons.entry(k.clone()).or_insert(0) += v;
        }
        e.since_us = e.since_us.min(f.since_us);
        e.baseline_failures += j.cell.baseline_failures;
        e.baseline_attempts += j.cell.baseline_attempts;
        e.p_value = e.p_value.min(f.p_value);
        if let Some(l) = f.loss {
            let sum = e.loss.map_or(l, |s| {
                LossRate::new(
                    s.lost + l.lost,
                    s.sent + l.sent,
                    s.slow_connects + l.slow_connects,
                )
            });
            e.loss = Some(sum);
        }
        if let Some(shift) = f.rtt {
            let added = |s: &RttShift| s.recent_p50_ms - s.baseline_p50_ms;
            if e.rtt.as_ref().is_none_or(|r| added(&shift) > added(r)) {
                e.rtt = Some(shift);
            }
        }
    }
    let signal = cells
        .iter()
        .find_map(|j| j.failing.as_ref().map(|f| f.signal))
        .unwrap_or_default();
    let evidence: Vec<RegionEvidence> = per_region.into_values().collect();
    let mut f = Finding {
        scope,
        signal,
        src_regions: evidence.iter().map(|e| e.src_region.clone()).collect(),
        targets: targets.into_iter().collect(),
        target_group,
        address,
        probe_ids: Vec::new(),
        since_us: evidence.iter().map(|e| e.since_us).min().unwrap_or(0),
        evidence,
        healthy_alternatives,
        quorum,
        explanation: String::new(),
    };
    f.explanation = explain(&f);
    f
}

fn explain_latency(
    f: &Finding,
    since: &str,
    regions: &str,
    targets: &str,
    alternatives: &str,
) -> String {
    let shift = f.evidence.iter().filter_map(|e| e.rtt).max_by(|a, b| {
        (a.recent_p50_ms - a.baseline_p50_ms).total_cmp(&(b.recent_p50_ms - b.baseline_p50_ms))
    });
    // The level since the onset, beside the baseline's: the window's own
    // median still holds the clean minutes before the onset.
    let moved = shift.map_or_else(String::new, |s| {
        let (p50, p95) = if s.since_p50_ms > 0.0 || s.since_p95_ms > 0.0 {
            (s.since_p50_ms, s.since_p95_ms)
        } else {
            (s.recent_p50_ms, s.recent_p95_ms)
        };
        format!(
            " to a median of {p50} ms (p95 {p95}), from {} ms (p95 {})",
            s.baseline_p50_ms, s.baseline_p95_ms
        )
    });
    let group = f.target_group.as_deref().unwrap_or("these");
    match f.scope {
        Scope::Target => format!(
            "Since {since} connect RTT to {targets} rose{moved} from {regions} ({}): the target answers slowly, not one region's network.",
            f.quorum
        ),
        Scope::Source => format!(
            "Since {since} connect RTT from {regions} to {targets} rose{moved}{alternatives}: {regions}'s own network adds the delay."
        ),
        Scope::Path => format!(
            "Since {since} connect RTT from {regions} to {group} targets ({targets}) rose{moved}{alternatives}: the delay is on the {regions} -> {group} path."
        ),
        Scope::Address => format!(
            "Since {since} connect RTT to {} of {targets} rose{moved} from {regions} while its other addresses did not: that backend address is slow.",
            f.address.as_deref().unwrap_or("one address")
        ),
        _ => format!(
            "Since {since} connect RTT from {regions} to {targets} rose{moved}, and the data cannot say whether the target or the path is slower."
        ),
    }
}

fn explain_loss(
    f: &Finding,
    since: &str,
    regions: &str,
    targets: &str,
    alternatives: &str,
) -> String {
    let sum = f
        .evidence
        .iter()
        .filter_map(|e| e.loss)
        .fold(LossRate::new(0, 0, 0), |a, l| {
            LossRate::new(
                a.lost + l.lost,
                a.sent + l.sent,
                a.slow_connects + l.slow_connects,
            )
        });
    let rate = sum.percent();
    let counts = format!(
        "({} of {} sent; {} connects succeeded only after a SYN was sent again, a second or more late)",
        sum.lost, sum.sent, sum.slow_connects
    );
    let group = f.target_group.as_deref().unwrap_or("these");
    match f.scope {
        Scope::Target => format!(
            "Since {since} {rate} of SYNs to {targets} from {regions} ({}) are lost {counts}: packets are lost at or near the target, not in one region's network.",
            f.quorum
        ),
        Scope::Source => format!(
            "Since {since} {rate} of SYNs from {regions} to {targets} are lost {counts}{alternatives}: {regions}'s own network or egress loses packets."
        ),
        Scope::Path => format!(
            "Since {since} {rate} of SYNs from {regions} to {group} targets ({targets}) are lost {counts}{alternatives}: packets are lost on the {regions} -> {group} path, not at the targets."
        ),
        Scope::Address => format!(
            "Since {since} {rate} of SYNs to {} of {targets} from {regions} are lost {counts}, while its other addresses lose none: that backend address loses packets.",
            f.address.as_deref().unwrap_or("one address")
        ),
        _ => format!(
            "Since {since} {rate} of SYNs from {regions} to {targets} are lost {counts}, and the data cannot say whether the target or the path loses them."
        ),
    }
}

fn list(items: &[String]) -> String {
    match items {
        [] => "no region".to_string(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Silent probes a sentence names; the rest are counted (the finding's
/// `probe_ids` has them all).
const SILENT_NAMED: usize = 10;

/// The first `named` of `items`, listed, and how many more there are.
fn some(items: &[String], named: usize) -> String {
    if items.len() <= named {
        return list(items);
    }
    format!(
        "{} and {} more",
        items[..named].join(", "),
        items.len() - named
    )
}

/// The finding in one sentence: when, what share failed how, where the
/// fault therefore is, and who still gets through.
pub(crate) fn explain(f: &Finding) -> String {
    let (failures, attempts) = f
        .evidence
        .iter()
        .fold((0, 0), |(k, n), e| (k + e.failures, n + e.attempts));
    let share = (failures * 100 + attempts / 2)
        .checked_div(attempts)
        .unwrap_or(0);
    let mut reasons: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &f.evidence {
        for (r, n) in &e.reasons {
            *reasons.entry(r.as_str()).or_insert(0) += n;
        }
    }
    let reason = reasons
        .iter()
        .max_by_key(|(_, n)| **n)
        .map_or("failing", |(r, _)| *r);
    let since = crate::time::hhmm(f.since_us);
    let regions = list(&f.src_regions);
    let targets = list(&f.targets);
    let alternatives = if f.healthy_alternatives.is_empty() {
        String::new()
    } else {
        format!(
            "; {} reach{} the same targets fine",
            list(&f.healthy_alternatives),
            if f.healthy_alternatives.len() == 1 {
                "es"
            } else {
                ""
            }
        )
    };
    if f.signal == Signal::Latency {
        return explain_latency(f, &since, &regions, &targets, &alternatives);
    }
    if f.signal == Signal::Loss {
        return explain_loss(f, &since, &regions, &targets, &alternatives);
    }
    match f.scope {
        Scope::Target => format!(
            "Since {since} {share}% of connects to {targets} fail ({reason}) from {regions} ({}): the target itself is down or refusing, not one region's network.",
            f.quorum
        ),
        Scope::Source => format!(
            "Since {since} {share}% of connects from {regions} fail ({reason}) to {} ({}){alternatives}: the fault is {regions}'s own network or egress, not the targets.",
            targets, f.quorum
        ),
        Scope::Path => format!(
            "Since {since} {share}% of connects from {regions} to {} targets ({targets}) fail ({reason}){alternatives}, and {regions} reaches other targets: the fault is on the {regions} -> {} path, not the targets.",
            f.target_group.as_deref().unwrap_or("these"),
            f.target_group.as_deref().unwrap_or("target")
        ),
        Scope::Address => format!(
            "Since {since} connects to {} of {targets} fail ({reason}) from {regions} while its other addresses work: that one backend address is at fault.",
            f.address.as_deref().unwrap_or("one address")
        ),
        Scope::Dns => format!(
            "Since {since} {share}% of lookups of {targets} fail ({}) from {regions}{alternatives}: name resolution is at fault, not the connects.",
            reason.trim_start_matches("dns_")
        ),
        Scope::Global => format!(
            "Since {since} connects from {regions} to most targets fail ({reason}; {}): a shared cause, no single region or target to blame.",
            f.quorum
        ),
        Scope::Probe => format!(
            "Since {since} the probe host in {regions} is failing on its own ({}): its failures say nothing about the targets and {regions} is left out of the vote.",
            if f.targets.is_empty() {
                "local errors".to_string()
            } else {
                format!("it cannot reach its control target {targets}")
            }
        ),
        Scope::Silent => format!(
            "Since {since} {} of {regions} went silent ({}): silent is neither \"its targets are down\" nor healthy.",
            f.quorum,
            some(&f.probe_ids, SILENT_NAMED),
        ),
        Scope::Inconclusive => format!(
            "Since {since} {share}% of connects from {regions} to {targets} fail ({reason}), but no other region measures the same targets healthily to compare with: the data cannot say whether the target or the path is at fault."
        ),
    }
}
