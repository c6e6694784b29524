//! How long a probe may be quiet before it is silent: judged from its own
//! cadence, not one figure for every probe.
//!
//! A probe that pushes every 2 s and stops is a blind spot long before
//! `probes.silent_after` (60 s) passes. The collector keeps the gaps
//! between a probe's last few batches; once it has seen enough of them, the
//! probe is silent after [`MISSED`] of its longest recent gap, at least
//! [`FLOOR`] and never later than `silent_after`. The longest gap, not the
//! usual one, so that a probe whose batches come unevenly (targets probed
//! every 30 s, results flushed every 2 s) does not flap; and a long gap
//! (an outage of its link) stretches its patience until the gap ages out.
//! Until then, and after a collector restart (the gaps are not kept), the
//! probe gets `silent_after`.

use std::time::{Duration, SystemTime};

/// Gaps kept per probe.
const KEPT: usize = 8;
/// Gaps needed before the cadence is trusted.
const ENOUGH: usize = 4;
/// How many of its longest recent gaps a probe may miss.
pub(super) const MISSED: u32 = 5;
/// The shortest patience. In the lab under heavy CPU and disk load, a live
/// probe's batches were seen to pause for more than 10 s behind the rest
/// of the fleet (the cause is not yet known), which a 10 s floor called
/// silent; 30 s has held.
pub(super) const FLOOR: Duration = Duration::from_secs(30);

/// A probe's recent gaps between batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cadence {
    gaps: [Duration; KEPT],
    len: usize,
    next: usize,
}

impl Cadence {
    /// Notes a batch received at `at`, the one before at `previous`.
    pub fn record(&mut self, previous: SystemTime, at: SystemTime) {
        let Ok(gap) = at.duration_since(previous) else {
            return;
        };
        self.gaps[self.next] = gap;
        self.next = (self.next + 1) % KEPT;
        self.len = (self.len + 1).min(KEPT);
    }

    /// How long the probe may be quiet before it is silent.
    pub fn patience(&self, silent_after: Duration) -> Duration {
        if self.len < ENOUGH {
            return silent_after;
        }
        let longest = self.gaps[..self.len]
            .iter()
            .max()
            .copied()
            .unwrap_or_default();
        (longest * MISSED).clamp(FLOOR.min(silent_after), silent_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: SystemTime = SystemTime::UNIX_EPOCH;
    const MINUTE: Duration = Duration::from_secs(60);

    fn every(gaps: &[u64]) -> Cadence {
        let mut c = Cadence::default();
        let mut at = T0;
        for g in gaps {
            let next = at + Duration::from_millis(*g);
            c.record(at, next);
            at = next;
        }
        c
    }

    #[test]
    fn a_probe_pushing_every_2_s_is_silent_after_the_floor() {
        assert_eq!(every(&[2_000, 2_100, 1_900, 2_000]).patience(MINUTE), FLOOR);
        assert_eq!(
            every(&[6_000, 7_000, 6_000, 6_000]).patience(MINUTE),
            Duration::from_secs(35)
        );
        assert_eq!(
            every(&[1_000; 8]).patience(MINUTE),
            FLOOR,
            "never under the floor"
        );
    }

    #[test]
    fn until_enough_gaps_were_seen_silent_after_holds() {
        assert_eq!(Cadence::default().patience(MINUTE), MINUTE);
        assert_eq!(every(&[2_000; 3]).patience(MINUTE), MINUTE);
    }

    #[test]
    fn uneven_and_long_gaps_stretch_patience_up_to_silent_after() {
        // Results every 30 s flushed every 2 s: the 30 s gaps count.
        assert_eq!(
            every(&[2_000, 30_000, 2_000, 30_000]).patience(MINUTE),
            MINUTE
        );
        // One long gap ages out after KEPT more batches.
        let mut gaps = vec![2_000, 2_000, 2_000, 20_000];
        assert_eq!(every(&gaps).patience(MINUTE * 5), Duration::from_secs(100));
        gaps.extend([2_000; KEPT]);
        assert_eq!(every(&gaps).patience(MINUTE * 5), FLOOR);
        // A silent_after under the floor is the patience.
        assert_eq!(
            every(&[1_000; 8]).patience(Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn a_clock_step_back_is_no_gap() {
        let mut c = every(&[2_000; 4]);
        c.record(T0 + MINUTE, T0);
        assert_eq!(c.len, 4);
    }
}
