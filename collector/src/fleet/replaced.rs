//! When a silent probe has been replaced. On Kubernetes a probe's id is
//! its pod's name, so a pod that comes back after an OOM kill or a
//! rollout reports under a new id, and the old id never speaks again. Its
//! silence is then not a blind spot: another probe of the region measures
//! in its place.
//!
//! The rule, per region: a probe that is reporting and whose first batch
//! was stored after a silent probe's last batch replaces that probe. Each
//! reporting probe replaces at most one silent probe, the one silent
//! longest first (the oldest last batch, then the id), so a region's silent
//! count is its silent probes less the probes that started reporting after
//! their silence began. Probes that stopped cleanly, were forgotten or
//! already report since before are never counted as replacements.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use super::{Liveness, ProbeKey};

/// One probe for the rule: its key, its first and last batch, and its
/// liveness by its own clock alone.
pub(super) struct Candidate<'a> {
    pub(super) key: &'a ProbeKey,
    pub(super) first_seen: SystemTime,
    pub(super) last_seen: SystemTime,
    pub(super) liveness: Liveness,
}

/// The silent probes among `probes` that a newer probe of their region
/// replaces.
pub(super) fn replaced<'a>(probes: &[Candidate<'a>]) -> BTreeSet<&'a ProbeKey> {
    let mut regions: BTreeMap<&str, (Vec<&Candidate<'a>>, Vec<&Candidate<'a>>)> = BTreeMap::new();
    for p in probes {
        let (silent, reporting) = regions.entry(&p.key.0).or_default();
        match p.liveness {
            Liveness::Silent => silent.push(p),
            Liveness::Reporting => reporting.push(p),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for (_, (mut silent, mut reporting)) in regions {
        silent.sort_by_key(|p| (p.last_seen, p.key));
        reporting.sort_by_key(|p| (p.first_seen, p.key));
        // Both in time order: the silent probes a reporting probe could
        // replace are a prefix of `silent`, and a later starter could
        // replace any of them, so taking the oldest first replaces as many
        // as can be.
        let mut next = silent.iter().peekable();
        for r in reporting {
            if let Some(s) = next.next_if(|s| s.last_seen < r.first_seen) {
                out.insert(s.key);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + s)
    }

    /// (region, id, first, last, liveness) to the ids replaced.
    fn run(probes: &[(&str, &str, u64, u64, Liveness)]) -> Vec<String> {
        let keys: Vec<ProbeKey> = probes
            .iter()
            .map(|(r, id, ..)| (r.to_string(), id.to_string()))
            .collect();
        let candidates: Vec<Candidate<'_>> = probes
            .iter()
            .zip(&keys)
            .map(|((_, _, first, last, l), key)| Candidate {
                key,
                first_seen: at(*first),
                last_seen: at(*last),
                liveness: *l,
            })
            .collect();
        replaced(&candidates)
            .into_iter()
            .map(|(r, id)| format!("{r}/{id}"))
            .collect()
    }

    use Liveness::{Reporting, Silent, Stopped};

    #[test]
    fn a_probe_that_starts_after_a_silence_replaces_one_silent_probe() {
        // Three pods killed at 100-102; two come back under new names.
        let r = run(&[
            ("west", "pod-a", 0, 100, Silent),
            ("west", "pod-b", 0, 101, Silent),
            ("west", "pod-c", 0, 102, Silent),
            ("west", "pod-d", 0, 500, Reporting),
            ("west", "pod-x", 150, 500, Reporting),
            ("west", "pod-y", 160, 500, Reporting),
        ]);
        assert_eq!(r, ["west/pod-a", "west/pod-b"], "the longest silent first");
    }

    #[test]
    fn only_a_probe_of_the_same_region_that_started_later_replaces() {
        let r = run(&[
            ("west", "pod-a", 0, 100, Silent),
            // Reported since before the silence: not a replacement.
            ("west", "pod-b", 50, 500, Reporting),
            // Another region's new probe: not a replacement.
            ("east", "pod-x", 150, 500, Reporting),
            // Started after, but stopped cleanly since: not in its place.
            ("west", "pod-y", 150, 200, Stopped),
        ]);
        assert!(r.is_empty(), "{r:?}");
    }

    #[test]
    fn a_starter_replaces_only_probes_silent_before_it_started() {
        // pod-x started at 150: it replaces pod-a (silent since 100), not
        // pod-b, whose last batch came later.
        let r = run(&[
            ("west", "pod-x", 150, 500, Reporting),
            ("west", "pod-b", 0, 300, Silent),
            ("west", "pod-a", 0, 100, Silent),
        ]);
        assert_eq!(r, ["west/pod-a"]);
        // Starters before and after: each replaces what it can.
        let r = run(&[
            ("west", "pod-a", 0, 100, Silent),
            ("west", "pod-b", 0, 300, Silent),
            ("west", "pod-x", 150, 500, Reporting),
            ("west", "pod-y", 350, 500, Reporting),
        ]);
        assert_eq!(r, ["west/pod-a", "west/pod-b"]);
    }
}
