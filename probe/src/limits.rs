//! Global caps: how many operations may be in flight, and how many connects
//! and DNS lookups may start per second. They sit below the scheduler, so no
//! target list, however long or however short its intervals, can exceed them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::Limits;
use crate::metrics::Metrics;

/// Spaces operation starts at a fixed rate, first come first served.
///
/// Each caller reserves the next free start slot and sleeps until it; an idle
/// pacer allows a small burst (10 ms worth of starts) so that targets
/// scheduled together are not serialised needlessly. Over any window `T` at
/// most `burst + T * rate` operations start.
#[derive(Debug)]
pub(crate) struct Pacer {
    period: Duration,
    burst: Duration,
    next: Mutex<Option<Instant>>,
}

/// The probe's caps, shared by every target.
#[derive(Debug)]
pub struct Limiter {
    in_flight: Arc<Semaphore>,
    rounds: Arc<Semaphore>,
    connects: Pacer,
    lookups: Pacer,
    waits: Option<WaitCounters>,
}

/// `vantage_probe_limit_wait_seconds_total` children, resolved once: label
/// lookups on every operation would cost more than the wait they count.
#[derive(Debug)]
struct WaitCounters {
    in_flight: prometheus::Counter,
    connects: prometheus::Counter,
    lookups: prometheus::Counter,
}

/// Held while an operation runs; dropping it frees the in-flight slot.
#[derive(Debug)]
pub struct Permit {
    _slot: OwnedSemaphorePermit,
}

/// Held by a round from its start to its end. Rounds are admitted before
/// they allocate anything, so a probe that cannot keep up (more rounds due
/// than the caps allow) queues small idle tasks, not half-started rounds.
#[derive(Debug)]
pub struct Admission {
    _slot: Option<OwnedSemaphorePermit>,
}

impl Admission {
    /// An admission that limits nothing (for runners without caps).
    pub fn unlimited() -> Admission {
        Admission { _slot: None }
    }
}

/// Which rate a permit is paced by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A TCP connect attempt.
    Connect,
    /// A DNS lookup.
    Lookup,
}

impl Pacer {
    /// A pacer for `rate` starts per second (at least 1).
    pub(crate) fn per_second(rate: u32) -> Pacer {
        let period = Duration::from_secs(1) / rate.max(1);
        let burst_starts = (rate / 100).max(1);
        Pacer {
            period,
            burst: period * (burst_starts - 1),
            next: Mutex::new(None),
        }
    }

    /// Reserves the next start slot and waits for it; returns the wait.
    pub(crate) async fn acquire(&self) -> Duration {
        let now = Instant::now();
        let slot = {
            let mut next = self.next.lock().unwrap();
            let earliest = now.checked_sub(self.burst).unwrap_or(now);
            let slot = next.map_or(earliest, |n| n.max(earliest));
            *next = Some(slot + self.period);
            slot
        };
        if slot > now {
            tokio::time::sleep_until(slot).await;
            slot - now
        } else {
            Duration::ZERO
        }
    }
}

impl Limiter {
    /// Caps from the config; waits are counted in `metrics` when given.
    pub fn new(limits: &Limits, metrics: Option<Metrics>) -> Limiter {
        Limiter {
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight as usize)),
            rounds: Arc::new(Semaphore::new(limits.max_in_flight as usize)),
            connects: Pacer::per_second(limits.max_connects_per_second),
            lookups: Pacer::per_second(limits.max_dns_lookups_per_second),
            waits: metrics.map(|m| WaitCounters {
                in_flight: m.limit_wait.with_label_values(&["in_flight"]),
                connects: m.limit_wait.with_label_values(&["connects"]),
                lookups: m.limit_wait.with_label_values(&["dns"]),
            }),
        }
    }

    /// Waits for an in-flight slot, then for the operation's start slot.
    pub async fn acquire(&self, op: Operation) -> Permit {
        let slot = self.slot(&self.in_flight).await;
        let (pacer, waited) = match (op, &self.waits) {
            (Operation::Connect, w) => (&self.connects, w.as_ref().map(|w| &w.connects)),
            (Operation::Lookup, w) => (&self.lookups, w.as_ref().map(|w| &w.lookups)),
        };
        count_wait(waited, pacer.acquire().await);
        Permit { _slot: slot }
    }

    /// Waits until fewer than `max_in_flight` rounds are in progress.
    pub async fn admit_round(&self) -> Admission {
        Admission {
            _slot: Some(self.slot(&self.rounds).await),
        }
    }

    /// A permit of `sem`, its wait counted as an in-flight wait.
    async fn slot(&self, sem: &Arc<Semaphore>) -> OwnedSemaphorePermit {
        let start = Instant::now();
        let permit = sem
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        count_wait(self.waits.as_ref().map(|w| &w.in_flight), start.elapsed());
        permit
    }

    /// Free in-flight slots right now.
    pub fn available(&self) -> usize {
        self.in_flight.available_permits()
    }
}

fn count_wait(counter: Option<&prometheus::Counter>, waited: Duration) {
    if let Some(c) = counter
        && !waited.is_zero()
    {
        c.inc_by(waited.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pacer_holds_the_rate_after_a_small_burst() {
        let pacer = Pacer::per_second(1000); // burst of 10
        let start = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..2010 {
            pacer.acquire().await;
            starts.push(Instant::now() - start);
        }
        // 10 go at once, then one per millisecond: 2010 starts take 2 s.
        assert_eq!(starts[9], Duration::ZERO);
        let last = *starts.last().unwrap();
        assert!(last >= Duration::from_millis(1999), "{last:?}");
        // No window of 100 ms holds more than burst + 100 starts.
        for (i, t) in starts.iter().enumerate() {
            let in_window = starts[i..]
                .iter()
                .take_while(|u| **u < *t + Duration::from_millis(100))
                .count();
            assert!(in_window <= 110, "window at {t:?} has {in_window}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_cap_blocks_until_a_permit_drops() {
        let limiter = Limiter::new(
            &Limits {
                max_in_flight: 2,
                max_connects_per_second: 100_000,
                max_dns_lookups_per_second: 100_000,
            },
            None,
        );
        let a = limiter.acquire(Operation::Connect).await;
        let _b = limiter.acquire(Operation::Lookup).await;
        assert_eq!(limiter.available(), 0);
        let third = limiter.acquire(Operation::Connect);
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(Duration::from_secs(10), &mut third)
                .await
                .is_err(),
            "a third operation must wait"
        );
        drop(a);
        tokio::time::timeout(Duration::from_millis(1), third)
            .await
            .expect("a freed slot admits the next operation");
    }
}
