//! The scheduler: one task per target, each running its rounds on its own
//! timetable ([`Schedule`]), recording them into the target's stats and
//! handing them to the result sink.
//!
//! A reload is a diff: targets whose definition did not change keep running
//! undisturbed (same timetable, same counters); changed ones restart; removed
//! ones stop and their series leave `/metrics`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Host, Target};
use crate::metrics::Metrics;
use crate::result::RoundResult;
use crate::round::Runner;
use crate::schedule::Schedule;
use crate::stats::{StatsRegistry, TargetStats};

/// Runs every target's rounds.
#[derive(Debug)]
pub(crate) struct Engine<R: Runner> {
    epoch: Instant,
    probe_id: String,
    shared: Arc<Shared>,
    stats: Arc<StatsRegistry>,
    tracker: TaskTracker,
    running: HashMap<Arc<str>, Running<R>>,
}

/// What every target task reads; one allocation for all of them.
#[derive(Debug)]
struct Shared {
    metrics: Metrics,
    results: Option<mpsc::Sender<RoundResult>>,
}

#[derive(Debug)]
struct Running<R> {
    target: Arc<Target>,
    runner: Arc<R>,
    stop: CancellationToken,
}

impl<R: Runner> Engine<R> {
    /// An engine with no targets yet. Rounds go to `stats` and, when given,
    /// to `results` (a full channel drops the round from the channel only,
    /// never from the stats).
    pub(crate) fn new(
        probe_id: &str,
        metrics: Metrics,
        stats: Arc<StatsRegistry>,
        results: Option<mpsc::Sender<RoundResult>>,
    ) -> Engine<R> {
        Engine {
            epoch: Instant::now(),
            probe_id: probe_id.to_string(),
            shared: Arc::new(Shared { metrics, results }),
            stats,
            tracker: TaskTracker::new(),
            running: HashMap::new(),
        }
    }

    /// Makes `targets` the running set, each run by `runner`.
    pub(crate) fn apply(&mut self, targets: &[Arc<Target>], runner: &Arc<R>) {
        let wanted: BTreeSet<Arc<str>> = targets.iter().map(|t| t.name.clone()).collect();
        self.running.retain(|name, r| {
            let keep = wanted.contains(name);
            if !keep {
                r.stop.cancel();
            }
            keep
        });
        for target in targets {
            if let Some(r) = self.running.get(&target.name)
                && r.target == *target
                && Arc::ptr_eq(&r.runner, runner)
            {
                continue;
            }
            if let Some(old) = self.running.remove(&target.name) {
                old.stop.cancel();
            }
            let stop = CancellationToken::new();
            let stats = self.stats.target(&target.name, &target.labels);
            match &target.host {
                Host::Ip(ip) => stats.prepare(ip.is_ipv4(), ip.is_ipv6(), false),
                Host::Name(_) => stats.prepare(target.families.ipv4, target.families.ipv6, true),
            }
            let task = TargetTask {
                schedule: Schedule::new(
                    self.epoch,
                    target.interval,
                    &format!("{}/{}", self.probe_id, target.name),
                ),
                target: target.clone(),
                runner: runner.clone(),
                stats,
                shared: self.shared.clone(),
                stop: stop.clone(),
            };
            self.tracker.spawn(task.run());
            self.running.insert(
                target.name.clone(),
                Running {
                    target: target.clone(),
                    runner: runner.clone(),
                    stop,
                },
            );
        }
        self.stats.retain(&wanted);
        self.shared.metrics.targets.set(self.running.len() as i64);
    }

    /// Stops scheduling, lets rounds in flight finish within `grace`, and
    /// reports whether they all did.
    pub(crate) async fn shutdown(self, grace: Duration) -> bool {
        for r in self.running.values() {
            r.stop.cancel();
        }
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }
}

struct TargetTask<R> {
    schedule: Schedule,
    target: Arc<Target>,
    runner: Arc<R>,
    stats: Arc<TargetStats>,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl<R: Runner> TargetTask<R> {
    async fn run(self) {
        let mut k = self.schedule.next_round(Instant::now());
        // One waiter on the token for the task's whole life, not one per round.
        let stopped = self.stop.cancelled();
        tokio::pin!(stopped);
        loop {
            let due = self.schedule.slot(k) + self.schedule.jitter();
            tokio::select! {
                biased;
                () = &mut stopped => return,
                () = tokio::time::sleep_until(due) => {}
            }
            let metrics = &self.shared.metrics;
            metrics
                .scheduler_lag
                .observe(Instant::now().saturating_duration_since(due).as_secs_f64());
            let _admission = tokio::select! {
                biased;
                () = &mut stopped => return,
                a = self.runner.admit() => a,
            };
            // A round in flight is finished even during shutdown: it is
            // bounded by its timeouts, and its result is evidence. It is
            // boxed so that an idle target (most of them, most of the time)
            // holds only this small loop, not a round's worth of state.
            let round = Box::pin(self.runner.run(&self.target)).await;
            self.stats.record(&round);
            metrics.rounds.inc();
            if let Some(tx) = &self.shared.results
                && tx.try_send(round).is_err()
            {
                metrics.results_dropped.inc();
            }
            let next = self.schedule.next_round(Instant::now()).max(k + 1);
            let skipped = next - k - 1;
            if skipped > 0 {
                metrics.rounds_skipped.inc_by(skipped);
            }
            k = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::config::ConnectOptions;
    use crate::config::Families;
    use crate::config::Limits;
    use crate::limits::{Limiter, Operation};
    use crate::result::{Identity, Timestamp};

    /// A round that records when it started and holds the caps like a real
    /// connect would, for `hold`.
    struct Recorder {
        starts: Mutex<Vec<(Arc<str>, Instant)>>,
        hold: Duration,
        limiter: Option<Limiter>,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
    }

    impl Recorder {
        fn new(hold: Duration, limits: Option<Limits>) -> Arc<Recorder> {
            Arc::new(Recorder {
                starts: Mutex::new(Vec::new()),
                hold,
                limiter: limits.map(|l| Limiter::new(&l, None)),
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
            })
        }

        fn starts_of(&self, name: &str) -> Vec<Instant> {
            let log = self.starts.lock().unwrap();
            log.iter()
                .filter(|(n, _)| &**n == name)
                .map(|(_, t)| *t)
                .collect()
        }
    }

    impl Runner for Recorder {
        async fn admit(&self) -> crate::limits::Admission {
            match &self.limiter {
                Some(l) => l.admit_round().await,
                None => crate::limits::Admission::unlimited(),
            }
        }

        async fn run(&self, target: &Target) -> RoundResult {
            let _permit = match &self.limiter {
                Some(l) => Some(l.acquire(Operation::Connect).await),
                None => None,
            };
            self.starts
                .lock()
                .unwrap()
                .push((target.name.clone(), Instant::now()));
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.hold).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            RoundResult {
                target: target.name.clone(),
                host: "127.0.0.1".into(),
                port: target.port,
                labels: target.labels.clone(),
                started_at: Timestamp::now(),
                dns: None,
                attempts: Vec::new(),
            }
        }
    }

    fn target(name: &str, interval_ms: u64) -> Arc<Target> {
        Arc::new(Target {
            name: name.into(),
            host: Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            port: 9,
            labels: Arc::new(BTreeMap::new()),
            interval: Duration::from_millis(interval_ms),
            families: Families::BOTH,
            connect: ConnectOptions {
                timeout: Duration::from_millis(interval_ms / 2),
                source: None,
                bind_device: None,
            },
        })
    }

    fn engine() -> (Engine<Recorder>, Metrics) {
        let metrics = Metrics::new(&Identity {
            src_region: "test".into(),
            zone: None,
            probe_id: "p1".into(),
        });
        let stats = Arc::new(StatsRegistry::default());
        (Engine::new("p1", metrics.clone(), stats, None), metrics)
    }

    #[tokio::test(start_paused = true)]
    async fn targets_start_staggered_across_the_interval() {
        let (mut engine, _) = engine();
        let epoch = Instant::now();
        let rec = Recorder::new(Duration::ZERO, None);
        let targets: Vec<_> = (0..100).map(|i| target(&format!("t{i}"), 1000)).collect();
        engine.apply(&targets, &rec);
        // Slots fall in [0, 1 s), plus up to 10 ms of jitter.
        tokio::time::sleep(Duration::from_millis(1010)).await;
        let firsts: Vec<Duration> = (0..100)
            .map(|i| rec.starts_of(&format!("t{i}"))[0] - epoch)
            .collect();
        // Every target ran once in the first interval, spread over it:
        // each tenth of the interval holds some, none holds a crowd.
        let mut tenths = [0; 10];
        for f in &firsts {
            tenths[((f.as_millis() / 100) as usize).min(9)] += 1;
        }
        assert!(tenths.iter().all(|&n| (2..=25).contains(&n)), "{tenths:?}");
        engine.shutdown(Duration::from_secs(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn rounds_do_not_drift_over_an_hour() {
        let (mut engine, metrics) = engine();
        let rec = Recorder::new(Duration::from_millis(3), None);
        engine.apply(&[target("t", 1000)], &rec);
        tokio::time::sleep(Duration::from_secs(3601)).await;
        let starts = rec.starts_of("t");
        assert!(starts.len() >= 3600, "{} rounds", starts.len());
        // Round k starts at first + k seconds, give or take the jitter
        // (at most 1% of the interval), however long each round took.
        let first = starts[0];
        for (k, s) in starts.iter().enumerate() {
            let ideal = first + Duration::from_secs(k as u64);
            let off = if *s > ideal { *s - ideal } else { ideal - *s };
            assert!(off <= Duration::from_millis(10), "round {k} off by {off:?}");
        }
        assert_eq!(metrics.rounds_skipped.get(), 0);
        engine.shutdown(Duration::from_secs(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn caps_hold_whatever_the_targets_ask() {
        let (mut engine, metrics) = engine();
        let limits = Limits {
            max_in_flight: 5,
            max_connects_per_second: 100,
            max_dns_lookups_per_second: 100,
        };
        // 200 targets every 100 ms ask for 2000 connects/s.
        let rec = Recorder::new(Duration::from_millis(20), Some(limits));
        let targets: Vec<_> = (0..200).map(|i| target(&format!("t{i}"), 100)).collect();
        engine.apply(&targets, &rec);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let log = rec.starts.lock().unwrap().clone();
        // At most 100/s plus the pacer's one-start burst, in any window.
        let times: Vec<Instant> = log.iter().map(|(_, t)| *t).collect();
        for (i, t) in times.iter().enumerate() {
            let in_second = times[i..]
                .iter()
                .take_while(|u| **u < *t + Duration::from_secs(1))
                .count();
            assert!(
                in_second <= 101,
                "{in_second} starts in the second after {t:?}"
            );
        }
        assert!(
            times.len() >= 950,
            "the cap is used, not undershot: {}",
            times.len()
        );
        assert!(rec.max_in_flight.load(Ordering::SeqCst) <= 5);
        assert!(
            metrics.rounds_skipped.get() > 0,
            "overrun rounds are counted"
        );
        engine.shutdown(Duration::from_secs(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn reload_keeps_unchanged_targets_and_stops_removed_ones() {
        let (mut engine, _) = engine();
        let rec = Recorder::new(Duration::ZERO, None);
        let keep = target("keep", 1000);
        engine.apply(
            &[keep.clone(), target("drop", 1000), target("change", 1000)],
            &rec,
        );
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let before_keep = rec.starts_of("keep");
        let before_drop = rec.starts_of("drop").len();

        let changed = target("change", 500);
        engine.apply(&[keep, changed, target("new", 1000)], &rec);
        tokio::time::sleep(Duration::from_secs(4)).await;

        assert_eq!(
            rec.starts_of("drop").len(),
            before_drop,
            "removed: no more rounds"
        );
        assert!(!rec.starts_of("new").is_empty(), "added: runs");
        // Unchanged: same timetable, one round a second throughout.
        let keep_starts = rec.starts_of("keep");
        assert_eq!(keep_starts[..before_keep.len()], before_keep[..]);
        assert!(
            (6..=7).contains(&keep_starts.len()),
            "{}",
            keep_starts.len()
        );
        // Changed: now every 500 ms.
        let change = rec.starts_of("change");
        let last = &change[change.len() - 3..];
        let gap = last[2] - last[1];
        assert!(gap < Duration::from_millis(520), "{gap:?}");
        engine.shutdown(Duration::from_secs(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_lets_rounds_in_flight_finish() {
        let (mut engine, metrics) = engine();
        let rec = Recorder::new(Duration::from_millis(800), None);
        engine.apply(&[target("t", 1000)], &rec);
        // Wait until the round is in flight.
        while rec.in_flight.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(
            engine.shutdown(Duration::from_secs(5)).await,
            "drained in time"
        );
        assert_eq!(metrics.rounds.get(), 1, "the round in flight was recorded");
    }
}
