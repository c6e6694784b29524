//! What the collector knows about the fleet right now: every probe it has
//! heard from (and when), and per (src_region, target) totals for
//! `/metrics`. Updated only after a batch is committed, so `/metrics` never
//! shows what the store does not hold.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use vantage_probe::stats::TargetStats;
use vantage_probe::wire::Batch;

use crate::config::ProbePolicy;
use crate::store::ProbeRecord;

mod budget;
mod cadence;
mod replaced;

pub(crate) use budget::{OverBudget, SeriesLimit, SeriesLimits};
pub(crate) use cadence::Cadence;

/// (src_region, target name).
type TargetKey = (Arc<str>, Arc<str>);

/// A probe's identity: (src_region, probe id). Ids are chosen per region
/// (a pod name, a host name), and a token speaks for one region only, so
/// the same id in two regions is two probes, neither able to touch the
/// other's state.
type ProbeKey = (String, String);

/// The live fleet.
#[derive(Debug)]
pub struct Fleet {
    policy: ProbePolicy,
    probes: RwLock<BTreeMap<ProbeKey, ProbeState>>,
    targets: RwLock<BTreeMap<TargetKey, TargetEntry>>,
    budget: Mutex<budget::Budget>,
}

/// The identity of the probe a batch speaks for.
fn key_of(batch: &Batch) -> ProbeKey {
    (batch.probe.src_region.clone(), batch.probe.probe_id.clone())
}

/// A (src_region, target)'s totals and when a probe last reported it.
#[derive(Debug)]
struct TargetEntry {
    stats: Arc<TargetStats>,
    last_seen: SystemTime,
}

/// One probe as last heard from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeState {
    pub src_region: String,
    pub zone: Option<String>,
    /// When its first batch was stored.
    pub first_seen: SystemTime,
    /// When its last batch was stored.
    pub last_seen: SystemTime,
    /// Its clock minus ours when that batch arrived, microseconds.
    pub clock_offset_us: i64,
    /// Its newest batch said it was stopping.
    pub stopped: bool,
    /// The gaps between its recent batches: how long it may be quiet.
    pub cadence: Cadence,
}

/// Whether a probe is reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Reported within its patience: five of its longest recent gaps
    /// between batches (at least 30 s), at most `silent_after`
    /// (`fleet/cadence.rs`).
    Reporting,
    /// Quiet for longer: silent is its own state, not "its targets are down".
    Silent,
    /// Quiet for longer, but a probe of its region that started reporting
    /// after its last batch measures in its place (a pod back under another
    /// name): not a blind spot, nothing to alert on. The rule is in
    /// `fleet/replaced.rs`.
    Replaced,
    /// Quiet for longer, after a last batch that said it was stopping (a
    /// rollout, a removed host): not a blind spot, nothing to alert on.
    Stopped,
    /// Quiet for longer than `forget_after`: no longer exposed.
    Forgotten,
}

impl Fleet {
    /// The fleet as the store remembers it: its probes, and which probe
    /// reported which target as (src_region, probe id, target).
    pub fn new(
        policy: ProbePolicy,
        limits: SeriesLimits,
        probes: Vec<ProbeRecord>,
        probe_targets: Vec<(String, String, String)>,
    ) -> Fleet {
        let mut budget = budget::Budget::new(limits);
        let last_seen: HashMap<(&str, &str), SystemTime> = probes
            .iter()
            .map(|p| ((p.src_region.as_str(), p.probe_id.as_str()), p.last_seen))
            .collect();
        for p in &probes {
            budget.restore(&p.src_region, &p.probe_id, None, p.last_seen);
        }
        for (region, probe, target) in &probe_targets {
            if let Some(at) = last_seen.get(&(region.as_str(), probe.as_str())) {
                budget.restore(region, probe, Some(target), *at);
            }
        }
        Fleet {
            policy,
            probes: RwLock::new(
                probes
                    .into_iter()
                    .map(|p| {
                        (
                            (p.src_region.clone(), p.probe_id),
                            ProbeState {
                                src_region: p.src_region,
                                zone: p.zone,
                                first_seen: p.first_seen,
                                last_seen: p.last_seen,
                                clock_offset_us: p.clock_offset_us,
                                stopped: p.stopped,
                                cadence: Cadence::default(),
                            },
                        )
                    })
                    .collect(),
            ),
            targets: RwLock::new(BTreeMap::new()),
            budget: Mutex::new(budget),
        }
    }

    /// Refuses a batch that would take its probe past the distinct-target
    /// cap or its region past its share of the series (`regions`: how many
    /// regions the tokens name); otherwise reserves what it adds.
    pub fn admit(&self, batch: &Batch, regions: usize, now: SystemTime) -> Result<(), OverBudget> {
        self.budget.lock().unwrap().admit(batch, regions, now)
    }

    /// Adds a committed batch, received at `received`, sent when the
    /// probe's clock read `probe_clock`.
    pub fn record(&self, batch: &Batch, received: SystemTime, probe_clock: SystemTime) {
        let region: Arc<str> = batch.probe.src_region.as_str().into();
        {
            let mut targets = self.targets.write().unwrap();
            for r in &batch.results {
                let entry = targets
                    .entry((region.clone(), r.target.clone()))
                    .or_insert_with(|| TargetEntry {
                        stats: Arc::new(TargetStats::new(r.target.clone(), r.labels.clone())),
                        last_seen: received,
                    });
                entry.stats.record(r);
                entry.last_seen = entry.last_seen.max(received);
            }
        }
        let offset = micros(probe_clock, received);
        let mut probes = self.probes.write().unwrap();
        if let Some(p) = probes.get_mut(&key_of(batch)) {
            p.cadence.record(p.last_seen, received);
        }
        let p = probes.entry(key_of(batch)).or_insert_with(|| ProbeState {
            src_region: batch.probe.src_region.clone(),
            zone: batch.probe.zone.clone(),
            first_seen: received,
            last_seen: received,
            clock_offset_us: offset,
            stopped: batch.last,
            cadence: Cadence::default(),
        });
        p.zone = batch.probe.zone.clone();
        p.last_seen = p.last_seen.max(received);
        p.clock_offset_us = offset;
        p.stopped = batch.last;
    }

    /// Every probe with its liveness at `now`, by region and id.
    pub fn probes(&self, now: SystemTime) -> Vec<(String, ProbeState, Liveness)> {
        let probes = self.probes.read().unwrap();
        // The fleet's own clock: the newest batch any probe got through.
        let heard = probes.values().map(|p| p.last_seen).max().unwrap_or(now);
        let candidates: Vec<replaced::Candidate<'_>> = probes
            .iter()
            .map(|(key, p)| replaced::Candidate {
                key,
                first_seen: p.first_seen,
                last_seen: p.last_seen,
                liveness: self.liveness(p, now, heard),
            })
            .collect();
        let replaced = replaced::replaced(&candidates);
        candidates
            .iter()
            .map(|c| {
                let liveness = if replaced.contains(c.key) {
                    Liveness::Replaced
                } else {
                    c.liveness
                };
                (c.key.1.clone(), probes[c.key].clone(), liveness)
            })
            .collect()
    }

    /// Whether every probe reporting at `now` was heard from after
    /// `since`: every region has had its say on what came after then.
    pub fn all_heard_since(&self, since: SystemTime, now: SystemTime) -> bool {
        self.probes(now)
            .iter()
            .filter(|(_, _, l)| *l == Liveness::Reporting)
            .all(|(_, p, _)| p.last_seen > since)
    }

    /// Per (src_region, target) totals for the exposition, in key order.
    /// A series no probe has reported for `forget_after` is removed: a
    /// target dropped from every probe's config leaves `/metrics`.
    pub fn target_stats(&self, now: SystemTime) -> Vec<(Arc<str>, Arc<TargetStats>)> {
        let forget = self.policy.forget_after;
        let fresh = |e: &TargetEntry| now.duration_since(e.last_seen).unwrap_or_default() <= forget;
        let stale = self.targets.read().unwrap().values().any(|e| !fresh(e));
        if stale {
            self.targets.write().unwrap().retain(|_, e| fresh(e));
        }
        self.targets
            .read()
            .unwrap()
            .iter()
            .map(|((region, _), e)| (region.clone(), e.stats.clone()))
            .collect()
    }

    /// Whether a probe's clock is off by more than the policy allows.
    pub fn clock_flagged(&self, p: &ProbeState) -> bool {
        p.clock_offset_us.unsigned_abs() > self.policy.max_clock_offset.as_micros() as u64
    }

    /// A probe's state at `now`, `heard` being the newest batch of the
    /// whole fleet. Its own cadence is held against the fleet's clock, not
    /// the wall: when the collector itself stalls (its disk, its CPU), every
    /// probe falls behind the wall together and none is silent for it; a
    /// probe that stops while the others keep reporting falls behind the
    /// fleet. `silent_after` is held against the wall, so a fleet that
    /// stops as a whole is still seen.
    fn liveness(&self, p: &ProbeState, now: SystemTime, heard: SystemTime) -> Liveness {
        let age = now.duration_since(p.last_seen).unwrap_or(Duration::ZERO);
        let behind = heard.duration_since(p.last_seen).unwrap_or(Duration::ZERO);
        let quiet =
            behind > p.cadence.patience(self.policy.silent_after) || age > self.policy.silent_after;
        if age > self.policy.forget_after {
            Liveness::Forgotten
        } else if quiet && p.stopped {
            Liveness::Stopped
        } else if quiet {
            Liveness::Silent
        } else {
            Liveness::Reporting
        }
    }
}

impl Liveness {
    /// The state's name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Reporting => "reporting",
            Liveness::Silent => "silent",
            Liveness::Replaced => "replaced",
            Liveness::Stopped => "stopped",
            Liveness::Forgotten => "forgotten",
        }
    }
}

/// `a - b` in microseconds, signed.
pub(crate) fn micros(a: SystemTime, b: SystemTime) -> i64 {
    match a.duration_since(b) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vantage_probe::result::{Identity, Timestamp};
    use vantage_probe::wire::SCHEMA_VERSION;

    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    fn fleet() -> Fleet {
        Fleet::new(
            ProbePolicy {
                silent_after: Duration::from_secs(60),
                forget_after: Duration::from_secs(86_400),
                max_clock_offset: Duration::from_secs(5),
            },
            SeriesLimits {
                targets_per_probe: 10,
                per_region: 1_000_000,
                total: 1_000_000,
                forget_after: Duration::from_secs(86_400),
            },
            Vec::new(),
            Vec::new(),
        )
    }

    fn heard(f: &Fleet, probe: &str, at: SystemTime) {
        let batch = Batch {
            schema: SCHEMA_VERSION,
            probe: Identity {
                src_region: "east".into(),
                zone: None,
                probe_id: probe.into(),
            },
            stream: "s".into(),
            seq: 1,
            sent_at: Timestamp::from(at),
            results: Vec::new(),
            last: false,
        };
        f.record(&batch, at, at);
    }

    fn states(f: &Fleet, now: SystemTime) -> Vec<(String, Liveness)> {
        f.probes(now)
            .into_iter()
            .map(|(id, _, l)| (id, l))
            .collect()
    }

    /// Whether every region has had its say since an evaluation: every
    /// reporting probe pushed after it; a silent probe is not waited for.
    #[test]
    fn every_reporting_probe_heard_since_waits_for_each_but_not_the_silent() {
        let f = fleet();
        let s = Duration::from_secs;
        for i in 0..10 {
            heard(&f, "a", T0 + s(i));
            heard(&f, "b", T0 + s(i));
        }
        assert!(!f.all_heard_since(T0 + s(9), T0 + s(10)));
        heard(&f, "a", T0 + s(10));
        assert!(
            !f.all_heard_since(T0 + s(9), T0 + s(10)),
            "b has not pushed"
        );
        heard(&f, "b", T0 + s(11));
        assert!(f.all_heard_since(T0 + s(9), T0 + s(11)));
        // b goes on alone: a falls silent and is no longer waited for.
        for i in 12..60 {
            heard(&f, "b", T0 + s(i));
        }
        assert!(f.all_heard_since(T0 + s(58), T0 + s(59)));
    }

    /// Two probes pushing every second: one stops. It is silent once it
    /// is more than 30 s (the floor) behind the other, while the collector
    /// hears the other. When the collector stops hearing anyone (it
    /// stalled), the other is not silent until `silent_after` by the wall.
    #[test]
    fn a_probe_is_silent_when_it_falls_behind_the_fleet_not_the_wall() {
        let f = fleet();
        let s = Duration::from_secs;
        for i in 0..10 {
            heard(&f, "a", T0 + s(i));
            heard(&f, "b", T0 + s(i));
        }
        for i in 10..40 {
            heard(&f, "b", T0 + s(i));
        }
        // a's last batch was at 9 s, b's at 39 s: 30 s behind, not more.
        assert_eq!(
            states(&f, T0 + s(39)),
            [
                ("a".into(), Liveness::Reporting),
                ("b".into(), Liveness::Reporting)
            ]
        );
        heard(&f, "b", T0 + s(40));
        assert_eq!(
            states(&f, T0 + s(40)),
            [
                ("a".into(), Liveness::Silent),
                ("b".into(), Liveness::Reporting)
            ]
        );
        // The collector hears nobody for 50 s more: b is not silent for
        // it, a stays silent; past silent_after by the wall, both are.
        assert_eq!(
            states(&f, T0 + s(90)),
            [
                ("a".into(), Liveness::Silent),
                ("b".into(), Liveness::Reporting)
            ]
        );
        assert_eq!(
            states(&f, T0 + s(101)),
            [
                ("a".into(), Liveness::Silent),
                ("b".into(), Liveness::Silent)
            ]
        );
    }
}
