//! The words of an incident's timeline: each region's onset, in the terms
//! of the fault's own signal (connects that failed, SYNs lost, RTT risen,
//! lookups failed), and the lines for what changed.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Event, Incident};
use crate::evidence::localize::{Finding, RegionEvidence, Scope, Signal};

/// One region's onset line as written, so that a later, better dating of
/// it replaces the line rather than contradicting it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Onset {
    /// The line's time (µs since the epoch).
    pub at_us: i64,
    /// Its text.
    pub text: String,
    /// When the region's onset was first dated, if the line moved since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_us: Option<i64>,
}

impl Onset {
    /// The line as stored.
    pub(crate) fn event(&self, incident: u64) -> Event {
        Event {
            incident,
            at_us: self.at_us,
            kind: "onset".into(),
            text: self.text.clone(),
        }
    }
}

/// What a fault's regions do, for "now also ..." and "no longer ...".
fn verb(f: &Finding) -> &'static str {
    match (f.signal, f.scope) {
        (Signal::Latency, _) => "slower",
        (Signal::Loss, _) => "losing SYNs",
        (_, Scope::Dns) => "failing to resolve",
        (_, Scope::Silent) => "silent",
        _ => "failing",
    }
}

/// The line of one region's onset, in the words of the fault's signal:
/// connects that succeeded a second late are lost SYNs, not failures.
pub(super) fn onset(f: &Finding, e: &RegionEvidence, first_us: Option<i64>) -> Onset {
    let mut text = if let Some(r) = &e.rtt {
        // The level since the onset, not the window's: the same figure as
        // the finding's sentence.
        let (p50, p95) = if r.since_p50_ms > 0.0 || r.since_p95_ms > 0.0 {
            (r.since_p50_ms, r.since_p95_ms)
        } else {
            (r.recent_p50_ms, r.recent_p95_ms)
        };
        format!(
            "{}: slower since (median {p50} ms, p95 {p95} ms; was {} ms, p95 {} ms)",
            e.src_region, r.baseline_p50_ms, r.baseline_p95_ms
        )
    } else if let Some(l) = &e.loss {
        format!(
            "{}: SYNs lost since ({} of {} sent, {}; {} connects succeeded only after a SYN was sent again)",
            e.src_region,
            l.lost,
            l.sent,
            l.percent(),
            l.slow_connects
        )
    } else if f.scope == Scope::Dns {
        format!(
            "{}: lookups failing since ({} of {} lookups failed, mostly {})",
            e.src_region,
            e.failures,
            e.attempts,
            dominant(&e.reasons)
        )
    } else {
        format!(
            "{}: failures began ({} of {} connects failed since, mostly {})",
            e.src_region,
            e.failures,
            e.attempts,
            dominant(&e.reasons)
        )
    };
    if let Some(first) = first_us.filter(|&t| crate::time::hhmm(t) != crate::time::hhmm(e.since_us))
    {
        text.push_str(&format!(" (first dated {})", crate::time::hhmm(first)));
    }
    Onset {
        at_us: e.since_us,
        text,
        first_us: first_us.filter(|&t| t != e.since_us),
    }
}

fn dominant(reasons: &std::collections::BTreeMap<String, u64>) -> String {
    reasons
        .iter()
        .max_by_key(|(_, n)| **n)
        .map_or_else(|| "no reason".to_string(), |(r, _)| r.clone())
}

/// The first line of an incident.
pub(super) fn opened(
    id: u64,
    f: &Finding,
    earlier_scopes: &[Scope],
    settling: bool,
    now_us: i64,
) -> Event {
    let text = if settling {
        let was: Vec<&str> = earlier_scopes.iter().map(|s| s.as_str()).collect();
        format!(
            "Opened, scope {} (still settling: judged {} before): {}",
            f.scope.as_str(),
            was.join(", then "),
            f.explanation
        )
    } else {
        format!("Opened, scope {}: {}", f.scope.as_str(), f.explanation)
    };
    Event {
        incident: id,
        at_us: now_us,
        kind: "opened".into(),
        text,
    }
}

/// The line of regions that stopped showing the fault.
pub(super) fn no_longer(id: u64, f: &Finding, regions: &[String], now_us: i64) -> Event {
    Event {
        incident: id,
        at_us: now_us,
        kind: "regions".into(),
        text: format!("No longer {} from {}", verb(f), regions.join(", ")),
    }
}

/// The line of an incident resolved after `quiet` without a finding.
pub(super) fn resolved(i: &Incident, quiet: std::time::Duration, now_us: i64) -> Event {
    let what = match (i.finding.signal, i.finding.scope) {
        (Signal::Latency, _) => "no delay beyond baseline",
        (Signal::Loss, _) => "no SYN loss beyond baseline",
        (_, Scope::Silent) => "its probes reporting or replaced",
        (_, Scope::Dns) => "no failed lookups beyond baseline",
        _ => "no failures beyond baseline",
    };
    Event {
        incident: i.id,
        at_us: now_us,
        kind: "resolved".into(),
        text: format!(
            "Resolved: {what} since {} ({} without a finding)",
            crate::time::hhmm(i.last_seen_us),
            humantime::format_duration(std::time::Duration::from_secs(quiet.as_secs()))
        ),
    }
}

/// The lines of what changed between an incident's finding and `f`, other
/// than onsets.
pub(super) fn differences(i: &Incident, f: &Finding, now_us: i64) -> Vec<Event> {
    let mut out = Vec::new();
    let was: BTreeSet<&String> = i.finding.src_regions.iter().collect();
    let now: BTreeSet<&String> = f.src_regions.iter().collect();
    let added: Vec<String> = now.difference(&was).map(|s| s.to_string()).collect();
    let gone: Vec<String> = was.difference(&now).map(|s| s.to_string()).collect();
    if !added.is_empty() {
        out.push(Event {
            incident: i.id,
            at_us: now_us,
            kind: "regions".into(),
            text: format!("Now also {} from {}", verb(f), added.join(", ")),
        });
    }
    if !gone.is_empty() {
        out.push(no_longer(i.id, f, &gone, now_us));
    }
    if i.finding.scope != f.scope {
        out.push(Event {
            incident: i.id,
            at_us: now_us,
            kind: "scope".into(),
            text: format!(
                "Scope changed from {} to {}: {}",
                i.finding.scope.as_str(),
                f.scope.as_str(),
                f.explanation
            ),
        });
    } else if i.finding.probe_ids != f.probe_ids {
        // A silent incident widens and narrows with its region's
        // silent probes.
        out.extend(silent_probes(i, f, now_us));
    } else if i.finding.targets != f.targets {
        out.push(Event {
            incident: i.id,
            at_us: now_us,
            kind: "targets".into(),
            text: format!("Targets now {}", f.targets.join(", ")),
        });
    }
    out
}

/// The timeline lines of a silent incident whose probes changed.
fn silent_probes(i: &Incident, f: &Finding, now_us: i64) -> Vec<Event> {
    /// Probe ids a line names; the rest are counted.
    const NAMED: usize = 10;
    let was: BTreeSet<&String> = i.finding.probe_ids.iter().collect();
    let now: BTreeSet<&String> = f.probe_ids.iter().collect();
    let line = |verb: &str, ids: Vec<&String>| Event {
        incident: i.id,
        at_us: now_us,
        kind: "probes".into(),
        text: format!(
            "{verb} {}{}; now {} of {}",
            ids.iter()
                .take(NAMED)
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if ids.len() > NAMED {
                format!(" and {} more", ids.len() - NAMED)
            } else {
                String::new()
            },
            f.quorum,
            f.src_regions.join(", ")
        ),
    };
    let mut out = Vec::new();
    let added: Vec<&String> = now.difference(&was).copied().collect();
    let gone: Vec<&String> = was.difference(&now).copied().collect();
    if !added.is_empty() {
        out.push(line("Also silent:", added));
    }
    if !gone.is_empty() {
        out.push(line("Reporting again or replaced:", gone));
    }
    out
}
