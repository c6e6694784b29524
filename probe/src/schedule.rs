//! When a target's rounds run.
//!
//! Round `k` of a target is due at `epoch + offset + k * interval`, plus a
//! small random jitter drawn afresh each round. Computing every slot from the
//! epoch (instead of sleeping one interval after the last round) is what
//! keeps a probe from drifting over hours. The offset spreads targets across
//! the interval; it is a hash of the probe id and the target name, so it is
//! stable across restarts and reloads, and different probes of the fleet do
//! not hit the same backend in the same instant.

use std::time::Duration;

use tokio::time::Instant;

/// Largest jitter: 1% of the interval, at most this much.
pub(crate) const MAX_JITTER: Duration = Duration::from_millis(100);

/// The timetable of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schedule {
    epoch: Instant,
    offset_ns: u128,
    interval_ns: u128,
    jitter_max: Duration,
}

impl Schedule {
    /// The timetable of the target `key` (probe id and target name) with
    /// `interval`, counted from `epoch`.
    pub(crate) fn new(epoch: Instant, interval: Duration, key: &str) -> Schedule {
        let interval_ns = interval.as_nanos().max(1);
        Schedule {
            epoch,
            offset_ns: u128::from(stable_hash(key.as_bytes())) % interval_ns,
            interval_ns,
            jitter_max: (interval / 100).min(MAX_JITTER),
        }
    }

    /// The offset of this target's slots within the interval.
    #[cfg(test)]
    pub(crate) fn offset(&self) -> Duration {
        nanos(self.offset_ns)
    }

    /// Round `k`'s slot, before jitter.
    pub(crate) fn slot(&self, k: u64) -> Instant {
        self.epoch + nanos(self.offset_ns + u128::from(k) * self.interval_ns)
    }

    /// The first round whose slot is at or after `now`.
    pub(crate) fn next_round(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch).as_nanos();
        if since <= self.offset_ns {
            return 0;
        }
        let k = (since - self.offset_ns).div_ceil(self.interval_ns);
        u64::try_from(k).unwrap_or(u64::MAX)
    }

    /// A fresh jitter for one round, below the schedule's maximum.
    pub(crate) fn jitter(&self) -> Duration {
        let max = self.jitter_max.as_nanos() as u64;
        if max == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(fastrand::u64(0..max))
    }
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

/// 64-bit FNV-1a with a murmur3 finaliser: stable across builds and
/// platforms (unlike std's hasher), and well spread even for names that
/// differ only in their last character (plain FNV-1a is not).
fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slots_do_not_drift_over_a_day() {
        let epoch = Instant::now();
        let s = Schedule::new(epoch, Duration::from_millis(333), "p/t");
        let k = 24 * 3600 * 1000 / 333;
        let expected = s.offset() + Duration::from_millis(333) * k as u32;
        assert_eq!(s.slot(k) - epoch, expected);
    }

    #[test]
    fn offsets_are_stable_and_spread() {
        let epoch = Instant::now();
        let i = Duration::from_secs(10);
        let a = Schedule::new(epoch, i, "probe-1/api");
        assert_eq!(a.offset(), Schedule::new(epoch, i, "probe-1/api").offset());
        assert_ne!(a.offset(), Schedule::new(epoch, i, "probe-2/api").offset());
        // 1000 targets over 10 s: every 1 s tenth of the interval gets some.
        let mut tenths = [0; 10];
        for n in 0..1000 {
            let o = Schedule::new(epoch, i, &format!("p/t{n}")).offset();
            tenths[o.as_secs() as usize] += 1;
        }
        assert!(
            tenths.iter().all(|&c| (50..=150).contains(&c)),
            "{tenths:?}"
        );
    }

    proptest! {
        #[test]
        fn next_round_is_the_first_slot_not_before_now(
            interval_ms in 50u64..100_000,
            elapsed_ms in 0u64..10_000_000,
            key in "[a-z]{1,12}",
        ) {
            let epoch = Instant::now();
            let s = Schedule::new(epoch, Duration::from_millis(interval_ms), &key);
            let now = epoch + Duration::from_millis(elapsed_ms);
            let k = s.next_round(now);
            prop_assert!(s.slot(k) >= now);
            if k > 0 {
                prop_assert!(s.slot(k - 1) < now);
            }
        }

        #[test]
        fn jitter_stays_small(interval_ms in 50u64..3_600_000) {
            let s = Schedule::new(Instant::now(), Duration::from_millis(interval_ms), "k");
            let j = s.jitter();
            prop_assert!(j <= MAX_JITTER);
            prop_assert!(j <= Duration::from_millis(interval_ms) / 100);
        }
    }
}
