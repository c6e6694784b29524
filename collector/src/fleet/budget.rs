//! The fleet's cardinality budget: what a batch may add to `/metrics`.
//!
//! Every probe costs [`SERIES_PER_PROBE`] series and every (region, target)
//! at most [`MAX_SERIES_PER_TARGET`]. A batch that would take its probe past
//! `limits.max_targets_per_probe`, or its region past its share of the
//! series, is refused before anything is stored. A region's share is
//! `limits.max_series_per_region`, or its fair part of `limits.max_series`
//! when that is smaller (`max_series` / the regions the tokens name): a
//! token speaks for one region, so no token can take what another region's
//! probes need. What no probe has reported for `forget_after` leaves the
//! budget, as it leaves `/metrics`.
//!
//! Memory is bounded with it: a probe's targets are a bit set over its
//! region's target slots, so the whole book is at most probes x targets
//! bits per region, both bounded by the share.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use vantage_probe::stats::MAX_SERIES_PER_TARGET;
use vantage_probe::wire::Batch;

use crate::config::SERIES_PER_PROBE;

/// How often forgotten probes and targets are taken out of the book.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The budget's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesLimits {
    /// `limits.max_targets_per_probe`.
    pub targets_per_probe: usize,
    /// `limits.max_series_per_region`.
    pub per_region: usize,
    /// `limits.max_series`.
    pub total: usize,
    /// `probes.forget_after`: what is quiet this long leaves the budget.
    pub forget_after: Duration,
}

/// A batch the budget cannot take: nothing of it was reserved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverBudget {
    /// Its probe would report more distinct targets than allowed.
    #[error(
        "probe {probe_id} would report {would_report} distinct targets, at most {max} (limits.max_targets_per_probe)"
    )]
    Targets {
        probe_id: String,
        /// Distinct targets it would have with the batch.
        would_report: usize,
        /// The cap.
        max: usize,
    },
    /// Its region would expose more series than its share.
    #[error(
        "region {region} would expose {would_expose} series on /metrics ({probes} probes, {targets} targets), at most {max} ({limit})"
    )]
    Series {
        region: String,
        would_expose: usize,
        probes: usize,
        targets: usize,
        max: usize,
        /// Which bound it met (also the refusal's reason).
        limit: SeriesLimit,
    },
}

/// The bound a region met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesLimit {
    /// `limits.max_series_per_region`.
    Region,
    /// Its share of `limits.max_series` (or the total itself).
    Fleet {
        /// Regions the total is shared between.
        regions: usize,
    },
}

impl std::fmt::Display for SeriesLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SeriesLimit::Region => f.write_str("limits.max_series_per_region"),
            SeriesLimit::Fleet { regions } => write!(
                f,
                "its share of limits.max_series, shared by the {regions} regions the tokens name"
            ),
        }
    }
}

/// The book: per region, its targets and its probes' targets.
#[derive(Debug)]
pub(super) struct Budget {
    limits: SeriesLimits,
    regions: HashMap<String, RegionBook>,
    pruned: Option<SystemTime>,
}

#[derive(Debug, Default)]
struct RegionBook {
    /// Target name -> its slot.
    names: HashMap<Arc<str>, u32>,
    /// Slot -> (name, when last reported); `None` is free.
    slots: Vec<Option<(Arc<str>, SystemTime)>>,
    free: Vec<u32>,
    probes: HashMap<String, ProbeBook>,
}

#[derive(Debug, Default)]
struct ProbeBook {
    targets: Bits,
    last_seen: Option<SystemTime>,
}

impl RegionBook {
    fn series(&self) -> usize {
        series(self.probes.len(), self.names.len())
    }

    fn slot(&mut self, name: &str, at: SystemTime) -> u32 {
        if let Some(&i) = self.names.get(name) {
            if let Some((_, seen)) = &mut self.slots[i as usize] {
                *seen = (*seen).max(at);
            }
            return i;
        }
        let name: Arc<str> = name.into();
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some((name.clone(), at));
                i
            }
            None => {
                self.slots.push(Some((name.clone(), at)));
                (self.slots.len() - 1) as u32
            }
        };
        self.names.insert(name, i);
        i
    }
}

fn series(probes: usize, targets: usize) -> usize {
    probes * SERIES_PER_PROBE + targets * MAX_SERIES_PER_TARGET
}

impl Budget {
    pub(super) fn new(limits: SeriesLimits) -> Budget {
        Budget {
            limits,
            regions: HashMap::new(),
            pruned: None,
        }
    }

    /// Books what the store already holds, unchecked: it was admitted.
    pub(super) fn restore(
        &mut self,
        region: &str,
        probe: &str,
        target: Option<&str>,
        at: SystemTime,
    ) {
        let book = self.regions.entry(region.to_string()).or_default();
        let slot = target.map(|t| book.slot(t, at));
        let p = book.probes.entry(probe.to_string()).or_default();
        p.last_seen = Some(p.last_seen.map_or(at, |s| s.max(at)));
        if let Some(slot) = slot {
            p.targets.insert(slot);
        }
    }

    /// Reserves what `batch` adds, or refuses it and reserves nothing.
    /// `regions` is how many regions the tokens name.
    pub(super) fn admit(
        &mut self,
        batch: &Batch,
        regions: usize,
        now: SystemTime,
    ) -> Result<(), OverBudget> {
        if self
            .pruned
            .is_none_or(|at| now.duration_since(at).unwrap_or_default() >= PRUNE_EVERY)
        {
            self.prune(now);
        }
        let limits = self.limits;
        let region = &batch.probe.src_region;
        let probe_id = &batch.probe.probe_id;
        let names: HashSet<&str> = batch.results.iter().map(|r| &*r.target).collect();
        let empty = RegionBook::default();
        let book = self.regions.get(region).unwrap_or(&empty);
        let probe = book.probes.get(probe_id);
        let known_to_probe = |n: &str| {
            book.names
                .get(n)
                .is_some_and(|&i| probe.is_some_and(|p| p.targets.contains(i)))
        };
        let probe_targets = probe.map_or(0, |p| p.targets.len());
        let new_for_probe = names.iter().filter(|n| !known_to_probe(n)).count();
        if probe_targets + new_for_probe > limits.targets_per_probe {
            return Err(OverBudget::Targets {
                probe_id: probe_id.clone(),
                would_report: probe_targets + new_for_probe,
                max: limits.targets_per_probe,
            });
        }
        let new_targets = names
            .iter()
            .filter(|n| !book.names.contains_key(**n))
            .count();
        let probes = book.probes.len() + usize::from(probe.is_none());
        let targets = book.names.len() + new_targets;
        let would_expose = series(probes, targets);
        let added = would_expose - book.series();
        let share = limits.total / regions.max(1);
        let (max, limit) = if limits.per_region <= share {
            (limits.per_region, SeriesLimit::Region)
        } else {
            (share, SeriesLimit::Fleet { regions })
        };
        // The total holds too: after a reload that names fewer regions,
        // the others' books are still full until they are forgotten.
        let over_total = added > 0 && self.total() + added > limits.total;
        if (added > 0 && would_expose > max) || over_total {
            let (max, limit) = if over_total && would_expose <= max {
                (limits.total, SeriesLimit::Fleet { regions })
            } else {
                (max, limit)
            };
            return Err(OverBudget::Series {
                region: region.clone(),
                would_expose,
                probes,
                targets,
                max,
                limit,
            });
        }
        let book = self.regions.entry(region.clone()).or_default();
        let slots: Vec<u32> = names.iter().map(|n| book.slot(n, now)).collect();
        let p = book.probes.entry(probe_id.clone()).or_default();
        p.last_seen = Some(now);
        for slot in slots {
            p.targets.insert(slot);
        }
        Ok(())
    }

    /// Takes out what no probe reported for `forget_after`.
    fn prune(&mut self, now: SystemTime) {
        self.pruned = Some(now);
        let forget = self.limits.forget_after;
        let stale = |at: SystemTime| now.duration_since(at).unwrap_or_default() > forget;
        for book in self.regions.values_mut() {
            book.probes
                .retain(|_, p| p.last_seen.is_some_and(|at| !stale(at)));
            for i in 0..book.slots.len() {
                let Some((name, at)) = &book.slots[i] else {
                    continue;
                };
                if !stale(*at) {
                    continue;
                }
                book.names.remove(name);
                book.slots[i] = None;
                book.free.push(i as u32);
                for p in book.probes.values_mut() {
                    p.targets.remove(i as u32);
                }
            }
        }
        self.regions
            .retain(|_, b| !b.probes.is_empty() || !b.names.is_empty());
    }

    /// Series of every region together (summed only when a batch adds
    /// some: a steady fleet adds none).
    fn total(&self) -> usize {
        self.regions.values().map(RegionBook::series).sum()
    }

    /// Series booked: the whole fleet's, and one region's.
    #[cfg(test)]
    pub(super) fn series(&self, region: &str) -> (usize, usize) {
        (
            self.total(),
            self.regions.get(region).map_or(0, RegionBook::series),
        )
    }
}

/// A set of slot numbers, one bit each.
#[derive(Debug, Default)]
struct Bits {
    words: Vec<u64>,
    len: usize,
}

impl Bits {
    fn contains(&self, i: u32) -> bool {
        let (w, b) = (i as usize / 64, i % 64);
        self.words.get(w).is_some_and(|x| x & (1 << b) != 0)
    }

    fn insert(&mut self, i: u32) {
        let (w, b) = (i as usize / 64, i % 64);
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        if self.words[w] & (1 << b) == 0 {
            self.words[w] |= 1 << b;
            self.len += 1;
        }
    }

    fn remove(&mut self, i: u32) {
        let (w, b) = (i as usize / 64, i % 64);
        if let Some(x) = self.words.get_mut(w)
            && *x & (1 << b) != 0
        {
            *x &= !(1 << b);
            self.len -= 1;
        }
    }

    fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vantage_probe::outcome::ConnectOutcome;
    use vantage_probe::result::{Identity, RoundResult, Timestamp};

    const HOUR: Duration = Duration::from_secs(3600);

    fn batch(region: &str, probe: &str, targets: &[&str]) -> Batch {
        let results = targets
            .iter()
            .map(|t| RoundResult {
                target: (*t).into(),
                host: "127.0.0.1".into(),
                port: 80,
                labels: Arc::default(),
                started_at: Timestamp::from_unix_micros(0),
                dns: None,
                attempts: vec![vantage_probe::result::ConnectAttempt {
                    address: "127.0.0.1:80".parse().unwrap(),
                    local: None,
                    started_at: Timestamp::from_unix_micros(0),
                    outcome: ConnectOutcome::Ok,
                    duration_us: 100,
                    rtt_us: Some(50),
                    syn_retransmits: 0,
                    errno: None,
                    icmp_from: None,
                }],
            })
            .collect();
        Batch {
            schema: vantage_probe::wire::SCHEMA_VERSION,
            probe: Identity {
                probe_id: probe.into(),
                src_region: region.into(),
                zone: None,
            },
            stream: "s".into(),
            seq: 1,
            sent_at: Timestamp::from_unix_micros(0),
            results,
            last: false,
        }
    }

    fn budget(per_region: usize, total: usize) -> Budget {
        Budget::new(SeriesLimits {
            targets_per_probe: 100,
            per_region,
            total,
            forget_after: HOUR,
        })
    }

    #[test]
    fn a_region_is_held_to_its_own_bound_and_names_it() {
        let mut b = budget(series(1, 2), series(100, 100));
        let t0 = SystemTime::UNIX_EPOCH + HOUR;
        b.admit(&batch("east", "e1", &["a", "b"]), 2, t0).unwrap();
        // Targets it has are free; a third is past the region's bound.
        b.admit(&batch("east", "e1", &["a", "b"]), 2, t0).unwrap();
        let err = b.admit(&batch("east", "e1", &["c"]), 2, t0).unwrap_err();
        assert!(
            matches!(
                err,
                OverBudget::Series {
                    limit: SeriesLimit::Region,
                    targets: 3,
                    probes: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("limits.max_series_per_region"),
            "{err}"
        );
        // So is a second probe, even with the same targets.
        let err = b.admit(&batch("east", "e2", &["a"]), 2, t0).unwrap_err();
        assert!(
            matches!(err, OverBudget::Series { probes: 2, .. }),
            "{err:?}"
        );
        // Nothing of the refused batches was booked; west has its own room.
        assert_eq!(b.series("east"), (series(1, 2), series(1, 2)));
        b.admit(&batch("west", "e1", &["a", "b"]), 2, t0).unwrap();
    }

    #[test]
    fn a_region_cannot_take_another_regions_share_of_the_total() {
        // Per region alone would allow 3 targets, but the total is shared
        // by two regions: 2 each.
        let mut b = budget(series(1, 3), series(2, 4));
        let t0 = SystemTime::UNIX_EPOCH + HOUR;
        b.admit(&batch("east", "e1", &["a", "b"]), 2, t0).unwrap();
        let err = b.admit(&batch("east", "e1", &["c"]), 2, t0).unwrap_err();
        assert!(
            matches!(
                err,
                OverBudget::Series {
                    limit: SeriesLimit::Fleet { regions: 2 },
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("limits.max_series"), "{err}");
        // West's share is whole.
        b.admit(&batch("west", "w1", &["a", "b"]), 2, t0).unwrap();
        assert_eq!(b.series("west"), (series(2, 4), series(1, 2)));
    }

    #[test]
    fn the_total_holds_after_a_reload_names_fewer_regions() {
        let mut b = budget(series(1, 3), series(2, 4));
        let t0 = SystemTime::UNIX_EPOCH + HOUR;
        b.admit(&batch("east", "e1", &["a", "b"]), 2, t0).unwrap();
        b.admit(&batch("west", "w1", &["a", "b"]), 2, t0).unwrap();
        // Now the tokens name one region: east's share is the whole total,
        // but west's book is still full.
        let err = b.admit(&batch("east", "e1", &["c"]), 1, t0).unwrap_err();
        assert!(
            matches!(err, OverBudget::Series { max, limit: SeriesLimit::Fleet { .. }, .. } if max == series(2, 4)),
            "{err:?}"
        );
    }

    #[test]
    fn the_per_probe_cap_counts_the_probes_own_targets() {
        let mut b = Budget::new(SeriesLimits {
            targets_per_probe: 2,
            per_region: series(10, 10),
            total: series(10, 10),
            forget_after: HOUR,
        });
        let t0 = SystemTime::UNIX_EPOCH + HOUR;
        b.admit(&batch("east", "e1", &["a", "b"]), 1, t0).unwrap();
        // e2 may report targets e1 has: they are new to e2 only.
        b.admit(&batch("east", "e2", &["b", "c"]), 1, t0).unwrap();
        let err = b.admit(&batch("east", "e1", &["c"]), 1, t0).unwrap_err();
        assert_eq!(
            err,
            OverBudget::Targets {
                probe_id: "e1".into(),
                would_report: 3,
                max: 2
            }
        );
    }

    #[test]
    fn what_is_forgotten_leaves_the_budget() {
        let mut b = budget(series(1, 2), series(10, 10));
        let t0 = SystemTime::UNIX_EPOCH + HOUR;
        b.admit(&batch("east", "e1", &["a", "b"]), 1, t0).unwrap();
        let later = t0 + HOUR / 2;
        b.admit(&batch("east", "e1", &["b"]), 1, later).unwrap();
        // Past forget_after of "a" (but not of "b"): "a" leaves, "c" fits.
        let t1 = t0 + HOUR + Duration::from_secs(61);
        b.admit(&batch("east", "e1", &["c"]), 1, t1).unwrap();
        assert_eq!(b.series("east"), (series(1, 2), series(1, 2)));
        // A probe quiet past forget_after leaves too, with its targets.
        let t2 = t1 + HOUR + Duration::from_secs(61);
        b.admit(&batch("east", "e2", &["x", "y"]), 1, t2).unwrap();
        assert_eq!(b.series("east"), (series(1, 2), series(1, 2)));
    }

    #[test]
    fn a_restored_book_counts_what_the_store_holds() {
        let mut b = budget(series(1, 2), series(10, 10));
        let t0 = SystemTime::UNIX_EPOCH + HOUR;
        b.restore("east", "e1", Some("a"), t0);
        b.restore("east", "e1", Some("b"), t0);
        b.restore("east", "e1", Some("a"), t0);
        assert_eq!(b.series("east"), (series(1, 2), series(1, 2)));
        assert!(b.admit(&batch("east", "e1", &["c"]), 1, t0).is_err());
        b.admit(&batch("east", "e1", &["a"]), 1, t0).unwrap();
    }

    #[test]
    fn bits_count_what_they_hold() {
        let mut bits = Bits::default();
        for i in [0, 63, 64, 1000, 64] {
            bits.insert(i);
        }
        assert_eq!(bits.len(), 4);
        assert!(bits.contains(1000) && !bits.contains(999));
        bits.remove(64);
        bits.remove(64);
        bits.remove(5000);
        assert_eq!(bits.len(), 3);
        assert!(!bits.contains(64));
    }
}
