//! Incidents: findings that persist get a stable id, a timeline and a
//! resolution. Each evaluation pairs the current findings with the open
//! incidents ([`matching`]); a finding an incident continues updates it
//! (regions added or recovered, scope changed, an onset dated better), a
//! new fault waits until its scope settles ([`pending`]) and then opens an
//! incident of its own, and an incident without a finding for
//! `resolve_after` is resolved. Every change is written to the store before
//! it is shown, so incidents and their history survive restarts.

mod matching;
mod pending;
mod persist;
mod timeline;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::localize::Finding;
use matching::Pairs;
pub(crate) use pending::Pending;
pub(crate) use persist::{list, load_open, one, write};
pub(crate) use timeline::Onset;

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
    /// Each region's onset line as written, by region. Absent from older
    /// collectors' incidents.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) onsets: BTreeMap<String, Onset>,
}

pub(crate) use crate::store::Event;

/// What an evaluation changed, to be written and then shown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Incidents opened or changed (their new state).
    pub upserts: Vec<Incident>,
    /// New timeline lines.
    pub events: Vec<Event>,
    /// Timeline lines replaced by better ones in `events` (an onset dated
    /// again from the fault's own failures).
    pub retracted: Vec<Event>,
    /// New faults not yet open, as they stand after this evaluation.
    pub(crate) pending: Vec<Pending>,
}

impl Changes {
    /// Whether there is anything to write.
    pub fn is_durable_empty(&self) -> bool {
        self.upserts.is_empty() && self.events.is_empty() && self.retracted.is_empty()
    }
}

/// What an evaluation is to the new faults waiting for their incidents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// A look that settles their scopes: every region has had the time to
    /// measure them since the last such look, and has pushed since.
    Settling,
    /// An evaluation before that: open incidents are updated and new
    /// faults begin to wait, but those already waiting are not judged
    /// again (a scope seen twice from the same data is not settled).
    Passing,
}

/// The open incidents and the rules to update them.
#[derive(Debug, Clone)]
pub struct Tracker {
    /// Open incidents, by id.
    pub open: Vec<Incident>,
    /// New faults whose incidents are not open yet (kept in memory: after
    /// a restart they settle again).
    pub(crate) pending: Vec<Pending>,
    next_id: u64,
    resolve_after: Duration,
}

impl Tracker {
    /// A tracker with the store's open incidents; ids continue after `last_id`.
    pub fn new(open: Vec<Incident>, last_id: u64, resolve_after: Duration) -> Tracker {
        Tracker {
            open,
            pending: Vec::new(),
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
    /// are durable. A look that settles new faults' scopes.
    pub fn evaluate(&self, findings: &[Finding], now_us: i64) -> Changes {
        self.evaluate_as(findings, now_us, Look::Settling)
    }

    /// [`Tracker::evaluate`], as a look of the kind `look` says.
    pub fn evaluate_as(&self, findings: &[Finding], now_us: i64, look: Look) -> Changes {
        let mut changes = Changes::default();
        let found: Vec<(&Finding, Pairs)> =
            findings.iter().map(|f| (f, matching::pairs(f))).collect();
        let open: Vec<(&Finding, Pairs)> = self
            .open
            .iter()
            .map(|i| (&i.finding, matching::pairs(&i.finding)))
            .collect();
        let assigned = matching::assign(&found, &open);
        let handled: Vec<_> = open.iter().map(|(i, p)| (i.scope, p)).collect();
        let mut matched: BTreeSet<u64> = BTreeSet::new();
        let mut fresh = Vec::new();
        for (k, (f, fp)) in found.iter().enumerate() {
            match assigned[k] {
                Some(ii) => {
                    let i = &self.open[ii];
                    matched.insert(i.id);
                    // A region whose failures another finding now explains
                    // has not recovered.
                    let elsewhere = |pair: &(String, String)| {
                        found
                            .iter()
                            .enumerate()
                            .any(|(j, (_, p))| j != k && p.contains(pair))
                    };
                    self.update(i, f, fp, &elsewhere, now_us, &mut changes);
                }
                None => {
                    if !matching::part_of(f, fp, &handled) {
                        fresh.push((*f, fp));
                    }
                }
            }
        }
        self.settle(&fresh, now_us, look, &mut changes);
        for i in self.open.iter().filter(|i| !matched.contains(&i.id)) {
            self.resolve_if_quiet(i, now_us, &mut changes);
        }
        changes
    }

    /// New faults: each waits in [`Pending`] until its scope settles, then
    /// opens its own incident. A passing look continues those already
    /// waiting as they were.
    fn settle(&self, fresh: &[(&Finding, &Pairs)], now_us: i64, look: Look, changes: &mut Changes) {
        let mut next_id = self.next_id;
        let mut handled: Vec<(crate::evidence::localize::Scope, &Pairs)> = Vec::new();
        let mut continued = vec![false; self.pending.len()];
        for &(f, fp) in fresh {
            if matching::part_of(f, fp, &handled) {
                // Another finding of a fault handled this round.
                continue;
            }
            handled.push((f.scope, fp));
            let prior = self
                .pending
                .iter()
                .enumerate()
                .find(|(k, p)| !continued[*k] && !matching::pairs(&p.finding).is_disjoint(fp));
            let p = match prior {
                Some((k, p)) => {
                    continued[k] = true;
                    match look {
                        Look::Settling => p.again(f),
                        Look::Passing => p.clone(),
                    }
                }
                None => Pending::first(f),
            };
            if p.ready() {
                open(next_id, &p, now_us, changes);
                next_id += 1;
            } else {
                changes.pending.push(p);
            }
        }
    }

    /// An open incident that a finding (with pairs `now`) matched again;
    /// `elsewhere` says whether another finding of the evaluation speaks
    /// of a pair.
    fn update(
        &self,
        i: &Incident,
        f: &Finding,
        now: &Pairs,
        elsewhere: &dyn Fn(&(String, String)) -> bool,
        now_us: i64,
        changes: &mut Changes,
    ) {
        let mut next = i.clone();
        next.last_seen_us = now_us;
        let was = matching::pairs(&i.finding);
        if now.is_subset(&was) && *now != was {
            // Recovering: part of the fault has cleared. The incident keeps
            // its extent and scope (a source fault does not become a path
            // fault while it heals); what recovered goes on the timeline.
            // A region still failing to the same targets under another
            // finding (a second fault now explains it) has not recovered.
            let gone: BTreeSet<String> = i
                .finding
                .src_regions
                .iter()
                .filter(|r| !f.src_regions.contains(r))
                .filter(|r| !was.iter().any(|pair| &pair.0 == *r && elsewhere(pair)))
                .cloned()
                .collect();
            let fresh: Vec<String> = gone.difference(&i.recovered_regions).cloned().collect();
            if !fresh.is_empty() {
                next.recovered_regions.extend(fresh.iter().cloned());
                changes
                    .events
                    .push(timeline::no_longer(i.id, &i.finding, &fresh, now_us));
                next.updated_us = now_us;
            }
            changes.upserts.push(next);
            return;
        }
        next.recovered_regions.clear();
        let mut events = timeline::differences(i, f, now_us);
        // Onsets: a region new to the fault gets its line; one whose onset
        // is dated better (to another minute) has its line replaced, so the
        // timeline and the sentence's "since" agree. Better is earlier, or
        // later but still before the incident opened (its own failures
        // told apart from an earlier fault's); a "since" after the opening
        // is the recent window sliding past a long fault's start, and the
        // recorded onset stands, in the sentence too.
        let mut f = f.clone();
        let mut onsets = Vec::new();
        for e in &f.evidence {
            match i.onsets.get(&e.src_region) {
                None if i.finding.src_regions.contains(&e.src_region) => {
                    // An incident from before onsets were kept: its line
                    // stands as written.
                }
                None => {
                    let o = timeline::onset(&f, e, None);
                    onsets.push(o.event(i.id));
                    next.onsets.insert(e.src_region.clone(), o);
                }
                Some(o)
                    if crate::time::hhmm(o.at_us) != crate::time::hhmm(e.since_us)
                        && (e.since_us < o.at_us || e.since_us <= i.opened_us) =>
                {
                    let moved = timeline::onset(&f, e, Some(o.first_us.unwrap_or(o.at_us)));
                    changes.retracted.push(o.event(i.id));
                    onsets.push(moved.event(i.id));
                    next.onsets.insert(e.src_region.clone(), moved);
                }
                Some(_) => {}
            }
        }
        let kept = next.onsets.clone();
        let mut slid = false;
        for e in &mut f.evidence {
            if let Some(o) = kept.get(&e.src_region).filter(|o| o.at_us < e.since_us) {
                e.since_us = o.at_us;
                slid = true;
            }
        }
        if slid {
            f.since_us = f
                .evidence
                .iter()
                .map(|e| e.since_us)
                .min()
                .unwrap_or(f.since_us);
            f.explanation = super::localize::explain(&f);
        }
        onsets.append(&mut events);
        let events = onsets;
        if !events.is_empty() || i.finding.evidence != f.evidence || i.finding.quorum != f.quorum {
            if !events.is_empty() {
                next.updated_us = now_us;
            }
            next.finding = f;
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
        changes.events.push(timeline::resolved(i, quiet, now_us));
        changes.upserts.push(next);
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
        self.pending = changes.pending.clone();
    }
}

/// Opens incident `id` for a new fault whose scope settled (or would not).
fn open(id: u64, p: &Pending, now_us: i64, changes: &mut Changes) {
    let f = &p.finding;
    let mut onsets = BTreeMap::new();
    for e in &f.evidence {
        let o = timeline::onset(f, e, None);
        changes.events.push(o.event(id));
        onsets.insert(e.src_region.clone(), o);
    }
    changes.events.push(timeline::opened(
        id,
        f,
        &p.earlier_scopes,
        p.settling(),
        now_us,
    ));
    changes.upserts.push(Incident {
        id,
        opened_us: now_us,
        updated_us: now_us,
        resolved_us: None,
        last_seen_us: now_us,
        finding: f.clone(),
        recovered_regions: BTreeSet::new(),
        onsets,
    });
}

#[cfg(test)]
mod tests;
