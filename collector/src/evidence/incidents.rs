//! Incidents: findings that persist get a stable id, a timeline and a
//! resolution. Each evaluation matches the current findings to the open
//! incidents by the (region, target) pairs they share; a match updates the
//! incident (regions added or recovered, scope changed), a finding without
//! one opens a new incident, and an incident without a matching finding
//! for `resolve_after` is resolved. Every change is written to the store
//! before it is shown, so incidents and their history survive restarts.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::localize::{Finding, Scope};
use crate::store::{IncidentRow, Snapshot, Store, StoreError};

/// One incident as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Stable id, from 1.
    pub id: u64,
    /// When it was opened (µs since the epoch).
    pub opened_us: i64,
    /// When it last changed.
    pub updated_us: i64,
    /// When it was resolved, if it was.
    pub resolved_us: Option<i64>,
    /// When a finding last matched it.
    pub last_seen_us: i64,
    /// The latest finding: scope, regions, targets, evidence, explanation.
    /// While the fault heals (its finding shrinks), this stays the fault at
    /// its widest.
    pub finding: Finding,
    /// Regions of `finding` that have recovered while the rest heals.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub recovered_regions: BTreeSet<String>,
}

pub(crate) use crate::store::Event;

/// What an evaluation changed, to be written and then shown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Incidents opened or changed (their new state).
    pub upserts: Vec<Incident>,
    /// New timeline lines.
    pub events: Vec<Event>,
}

/// The open incidents and the rules to update them.
#[derive(Debug, Clone)]
pub struct Tracker {
    /// Open incidents, by id.
    pub open: Vec<Incident>,
    next_id: u64,
    resolve_after: Duration,
}

/// The (region, target) pairs a finding speaks of; silent and probe-host
/// findings speak of their region's probes, whichever of them: a region
/// has one silent incident however many of its probes fall silent or come
/// back while it is open.
fn pairs(f: &Finding) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for r in &f.src_regions {
        match f.scope {
            Scope::Silent => {
                out.insert((r.clone(), "silent-probes".to_string()));
            }
            Scope::Probe => {
                out.insert((r.clone(), "probe-host".to_string()));
            }
            _ => {
                // A slow path and a failing path are separate incidents.
                let signal = match f.signal {
                    super::localize::Signal::Failures => "",
                    super::localize::Signal::Latency => "latency:",
                    super::localize::Signal::Loss => "loss:",
                };
                for t in &f.targets {
                    out.insert((r.clone(), format!("{signal}{t}")));
                }
                if let Some(a) = &f.address {
                    out.insert((r.clone(), format!("address:{a}")));
                }
            }
        }
    }
    out
}

impl Tracker {
    /// A tracker with the store's open incidents; ids continue after `last_id`.
    pub fn new(open: Vec<Incident>, last_id: u64, resolve_after: Duration) -> Tracker {
        Tracker {
            open,
            next_id: last_id + 1,
            resolve_after,
        }
    }

    /// The cells the open incidents hold (see [`super::Held`]).
    pub(crate) fn held(&self) -> super::Held {
        super::Held::of(self.open.iter().map(|i| &i.finding))
    }

    /// Matches `findings` at `now_us` against the open incidents. The
    /// tracker changes only through [`Tracker::apply`], after the changes
    /// are durable.
    pub fn evaluate(&self, findings: &[Finding], now_us: i64) -> Changes {
        let mut changes = Changes::default();
        let mut matched: BTreeSet<u64> = BTreeSet::new();
        let mut next_id = self.next_id;
        for f in findings {
            let fp = pairs(f);
            let hit = self
                .open
                .iter()
                .find(|i| !matched.contains(&i.id) && !pairs(&i.finding).is_disjoint(&fp));
            if hit.is_none()
                && changes
                    .upserts
                    .iter()
                    .any(|u| !pairs(&u.finding).is_disjoint(&fp))
            {
                // Another finding of a fault already handled this round
                // (they share pairs): the incident that took the first one
                // stands for both.
                continue;
            }
            match hit {
                Some(i) => {
                    matched.insert(i.id);
                    self.update(i, f, fp, now_us, &mut changes);
                }
                None => {
                    let id = next_id;
                    next_id += 1;
                    matched.insert(id);
                    open(id, f, now_us, &mut changes);
                }
            }
        }
        for i in self.open.iter().filter(|i| !matched.contains(&i.id)) {
            self.resolve_if_quiet(i, now_us, &mut changes);
        }
        changes
    }

    /// An open incident that a finding (with pairs `now`) matched again.
    fn update(
        &self,
        i: &Incident,
        f: &Finding,
        now: BTreeSet<(String, String)>,
        now_us: i64,
        changes: &mut Changes,
    ) {
        let mut next = i.clone();
        next.last_seen_us = now_us;
        let was = pairs(&i.finding);
        if now.is_subset(&was) && now != was {
            // Recovering: part of the fault has cleared. The incident keeps
            // its extent and scope (a source fault does not become a path
            // fault while it heals); what recovered goes on the timeline.
            let gone: BTreeSet<String> = i
                .finding
                .src_regions
                .iter()
                .filter(|r| !f.src_regions.contains(r))
                .cloned()
                .collect();
            let fresh: Vec<String> = gone.difference(&i.recovered_regions).cloned().collect();
            if !fresh.is_empty() {
                next.recovered_regions.extend(fresh.iter().cloned());
                changes.events.push(Event {
                    incident: i.id,
                    at_us: now_us,
                    kind: "regions".into(),
                    text: format!("No longer failing from {}", fresh.join(", ")),
                });
                next.updated_us = now_us;
            }
            changes.upserts.push(next);
            return;
        }
        next.recovered_regions.clear();
        let events = self.differences(i, f, now_us);
        if !events.is_empty() || i.finding.evidence != f.evidence || i.finding.quorum != f.quorum {
            next.finding = f.clone();
            if !events.is_empty() {
                next.updated_us = now_us;
            }
        }
        changes.events.extend(events);
        changes.upserts.push(next);
    }

    /// Resolves an incident no finding matched, once it has been quiet for
    /// `resolve_after`.
    fn resolve_if_quiet(&self, i: &Incident, now_us: i64, changes: &mut Changes) {
        let quiet = Duration::from_micros((now_us - i.last_seen_us).max(0) as u64);
        if quiet < self.resolve_after {
            return;
        }
        let mut next = i.clone();
        next.resolved_us = Some(now_us);
        next.updated_us = now_us;
        changes.events.push(Event {
            incident: i.id,
            at_us: now_us,
            kind: "resolved".into(),
            text: format!(
                "Resolved: no failures beyond baseline since {} ({} without a finding)",
                crate::time::hhmm(i.last_seen_us),
                humantime::format_duration(Duration::from_secs(quiet.as_secs()))
            ),
        });
        changes.upserts.push(next);
    }

    fn differences(&self, i: &Incident, f: &Finding, now_us: i64) -> Vec<Event> {
        let mut out = Vec::new();
        let was: BTreeSet<&String> = i.finding.src_regions.iter().collect();
        let now: BTreeSet<&String> = f.src_regions.iter().collect();
        let added: Vec<String> = now.difference(&was).map(|s| s.to_string()).collect();
        let gone: Vec<String> = was.difference(&now).map(|s| s.to_string()).collect();
        if !added.is_empty() {
            // Each region's own onset stays on the timeline.
            for e in f.evidence.iter().filter(|e| added.contains(&e.src_region)) {
                out.push(onset(i.id, e));
            }
            out.push(Event {
                incident: i.id,
                at_us: now_us,
                kind: "regions".into(),
                text: format!("Now also failing from {}", added.join(", ")),
            });
        }
        if !gone.is_empty() {
            out.push(Event {
                incident: i.id,
                at_us: now_us,
                kind: "regions".into(),
                text: format!("No longer failing from {}", gone.join(", ")),
            });
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

    /// Takes in changes that were written.
    pub fn apply(&mut self, changes: &Changes) {
        for u in &changes.upserts {
            self.next_id = self.next_id.max(u.id + 1);
            self.open.retain(|i| i.id != u.id);
            if u.resolved_us.is_none() {
                self.open.push(u.clone());
            }
        }
        self.open.sort_by_key(|i| i.id);
    }
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

/// Opens incident `id` for a finding no open incident matched.
fn open(id: u64, f: &Finding, now_us: i64, changes: &mut Changes) {
    for e in &f.evidence {
        changes.events.push(onset(id, e));
    }
    changes.events.push(Event {
        incident: id,
        at_us: now_us,
        kind: "opened".into(),
        text: format!("Opened, scope {}: {}", f.scope.as_str(), f.explanation),
    });
    changes.upserts.push(Incident {
        id,
        opened_us: now_us,
        updated_us: now_us,
        resolved_us: None,
        last_seen_us: now_us,
        finding: f.clone(),
        recovered_regions: BTreeSet::new(),
    });
}

/// The timeline line of one region's first failure.
fn onset(incident: u64, e: &super::localize::RegionEvidence) -> Event {
    let text = match &e.rtt {
        Some(r) => format!(
            "{}: slower since (median {} ms, was {} ms)",
            e.src_region, r.recent_p50_ms, r.baseline_p50_ms
        ),
        None => format!(
            "{}: failures began ({} of {} connects failed since, mostly {})",
            e.src_region,
            e.failures,
            e.attempts,
            dominant(&e.reasons)
        ),
    };
    Event {
        incident,
        at_us: e.since_us,
        kind: "onset".into(),
        text,
    }
}

fn dominant(reasons: &std::collections::BTreeMap<String, u64>) -> String {
    reasons
        .iter()
        .max_by_key(|(_, n)| **n)
        .map_or_else(|| "no reason".to_string(), |(r, _)| r.clone())
}

impl Incident {
    /// The incident as the store keeps it.
    fn row(&self) -> IncidentRow {
        IncidentRow {
            id: self.id,
            opened_us: self.opened_us,
            updated_us: self.updated_us,
            resolved_us: self.resolved_us,
            state: serde_json::to_string(self).expect("an incident serializes"),
        }
    }

    fn parse(state: &str) -> Result<Incident, StoreError> {
        serde_json::from_str(state).map_err(|e| StoreError::Unreadable {
            what: "incident",
            message: e.to_string(),
        })
    }
}

/// Writes `changes`; durable when this returns `Ok`.
pub(crate) async fn write(store: &Store, changes: &Changes) -> Result<(), StoreError> {
    let upserts = changes.upserts.iter().map(Incident::row).collect();
    store.write_incidents(upserts, changes.events.clone()).await
}

/// The open incidents and the highest id ever given.
pub(crate) fn load_open(snap: &Snapshot<'_>) -> Result<(Vec<Incident>, u64), StoreError> {
    let (open, last) = snap.open_incidents()?;
    let open = open
        .iter()
        .map(|s| Incident::parse(s))
        .collect::<Result<_, _>>()?;
    Ok((open, last))
}

/// Incidents updated since `since_us`, newest first, at most `limit`.
pub(crate) fn list(
    snap: &Snapshot<'_>,
    since_us: i64,
    limit: usize,
) -> Result<Vec<Incident>, StoreError> {
    snap.incidents_since(since_us, limit)?
        .iter()
        .map(|s| Incident::parse(s))
        .collect()
}

/// One incident and its timeline, oldest line first.
pub(crate) fn one(
    snap: &Snapshot<'_>,
    id: u64,
) -> Result<Option<(Incident, Vec<Event>)>, StoreError> {
    match snap.incident(id)? {
        Some((state, events)) => Ok(Some((Incident::parse(&state)?, events))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::evidence::localize::RegionEvidence;

    const S: i64 = 1_000_000;

    fn finding(scope: Scope, regions: &[&str], targets: &[&str]) -> Finding {
        Finding {
            scope,
            signal: crate::evidence::localize::Signal::Failures,
            src_regions: regions.iter().map(|s| s.to_string()).collect(),
            targets: targets.iter().map(|s| s.to_string()).collect(),
            target_group: None,
            address: None,
            probe_ids: Vec::new(),
            since_us: 1_000 * S,
            evidence: regions
                .iter()
                .map(|r| RegionEvidence {
                    src_region: r.to_string(),
                    failures: 10,
                    attempts: 50,
                    reasons: BTreeMap::from([("timeout".to_string(), 10)]),
                    since_us: 1_000 * S,
                    baseline_failures: 0,
                    baseline_attempts: 3600,
                    p_value: 1e-9,
                    rtt: None,
                    loss: None,
                })
                .collect(),
            healthy_alternatives: Vec::new(),
            quorum: String::new(),
            explanation: "it broke".into(),
        }
    }

    #[test]
    fn an_incident_opens_evolves_and_resolves_with_its_timeline() {
        let mut t = Tracker::new(Vec::new(), 0, Duration::from_secs(180));
        let c = t.evaluate(
            &[finding(Scope::Path, &["east"], &["api", "db"])],
            1_010 * S,
        );
        assert_eq!(c.upserts.len(), 1);
        assert_eq!(c.upserts[0].id, 1);
        let kinds: Vec<&str> = c.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["onset", "opened"]);
        t.apply(&c);

        // The same fault, unchanged: no new lines.
        let c = t.evaluate(
            &[finding(Scope::Path, &["east"], &["api", "db"])],
            1_020 * S,
        );
        assert!(c.events.is_empty());
        t.apply(&c);

        // It spreads to a second region and becomes target-side.
        let c = t.evaluate(
            &[finding(Scope::Target, &["east", "west"], &["db"])],
            1_030 * S,
        );
        assert_eq!(c.upserts[0].id, 1, "the same incident");
        let texts: Vec<&str> = c.events.iter().map(|e| e.text.as_str()).collect();
        assert!(
            texts[0].starts_with("west: failures began (10 of 50"),
            "{texts:?}"
        );
        assert_eq!(texts[1], "Now also failing from west");
        assert!(
            texts[2].starts_with("Scope changed from path to target"),
            "{texts:?}"
        );
        t.apply(&c);

        // It heals from one region: the scope and extent stay, once.
        let c = t.evaluate(&[finding(Scope::Path, &["east"], &["db"])], 1_035 * S);
        assert_eq!(c.upserts[0].finding.scope, Scope::Target);
        let texts: Vec<&str> = c.events.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["No longer failing from west"]);
        t.apply(&c);
        let c = t.evaluate(&[finding(Scope::Path, &["east"], &["db"])], 1_036 * S);
        assert!(c.events.is_empty(), "said once: {:?}", c.events);
        t.apply(&c);

        // An unrelated fault is another incident.
        let c = t.evaluate(
            &[
                finding(Scope::Target, &["east", "west"], &["db"]),
                finding(Scope::Dns, &["onprem"], &["web"]),
            ],
            1_040 * S,
        );
        assert_eq!(c.upserts.iter().map(|i| i.id).collect::<Vec<_>>(), [1, 2]);
        t.apply(&c);

        // Quiet, but not for long enough: still open.
        let c = t.evaluate(&[], 1_100 * S);
        assert!(c.upserts.is_empty());
        // Three minutes without a finding: both resolve.
        let c = t.evaluate(&[], 1_040 * S + 180 * S);
        assert_eq!(c.upserts.len(), 2);
        assert!(c.upserts.iter().all(|i| i.resolved_us.is_some()));
        assert!(c.events.iter().all(|e| e.kind == "resolved"));
        t.apply(&c);
        assert!(t.open.is_empty());

        // The fault comes back: a new incident, not a resurrected one.
        let c = t.evaluate(&[finding(Scope::Target, &["east"], &["db"])], 2_000 * S);
        assert_eq!(c.upserts[0].id, 3);
    }

    /// A silent finding of `region`: `ids` of `of` probes.
    fn silent(region: &str, ids: &[&str], of: usize) -> Finding {
        Finding {
            scope: Scope::Silent,
            probe_ids: ids.iter().map(|s| s.to_string()).collect(),
            evidence: Vec::new(),
            quorum: format!("{} of {of} probes", ids.len()),
            explanation: format!("{} of {of} probes of {region} went silent", ids.len()),
            ..finding(Scope::Silent, &[region], &[])
        }
    }

    #[test]
    fn a_region_has_one_silent_incident_however_many_probes_fall_silent() {
        let mut t = Tracker::new(Vec::new(), 0, Duration::from_secs(180));
        // Two regions' probes go silent: two incidents, not one per probe.
        let c = t.evaluate(
            &[
                silent("us-west-1", &["w1", "w2"], 12),
                silent("onprem", &["o1"], 3),
            ],
            1_010 * S,
        );
        assert_eq!(c.upserts.iter().map(|i| i.id).collect::<Vec<_>>(), [1, 2]);
        t.apply(&c);

        // Five more of us-west-1's go silent: the same incident, widened.
        let more = ["w1", "w2", "w3", "w4", "w5", "w6", "w7"];
        let c = t.evaluate(
            &[silent("us-west-1", &more, 12), silent("onprem", &["o1"], 3)],
            1_020 * S,
        );
        assert_eq!(c.upserts.iter().map(|i| i.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(c.upserts[0].finding.probe_ids, more);
        assert_eq!(c.upserts[0].finding.quorum, "7 of 12 probes");
        let texts: Vec<&str> = c.events.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(
            texts,
            ["Also silent: w3, w4, w5, w6, w7; now 7 of 12 probes of us-west-1"]
        );
        t.apply(&c);

        // Replacements end most of the silence: narrowed, still incident 1.
        let c = t.evaluate(
            &[
                silent("us-west-1", &["w7"], 12),
                silent("onprem", &["o1"], 3),
            ],
            1_030 * S,
        );
        assert_eq!(c.upserts[0].id, 1);
        assert_eq!(c.upserts[0].finding.probe_ids, ["w7"]);
        let texts: Vec<&str> = c.events.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Reporting again or replaced: w1, w2, w3, w4, w5, w6; now 1 of 12 probes of us-west-1"
            ]
        );
        t.apply(&c);

        // The last one is replaced too: us-west-1's resolves in time,
        // onprem's stays open.
        let c = t.evaluate(&[silent("onprem", &["o1"], 3)], 1_030 * S + 180 * S);
        let resolved: Vec<u64> = c
            .upserts
            .iter()
            .filter(|i| i.resolved_us.is_some())
            .map(|i| i.id)
            .collect();
        assert_eq!(resolved, [1]);
        t.apply(&c);
        assert_eq!(t.open.iter().map(|i| i.id).collect::<Vec<_>>(), [2]);
    }
}
