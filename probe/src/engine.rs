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

use crate::config::Target;
use crate::metrics::Metrics;
use crate::result::RoundResult;
use crate::round::Runner;
use crate::schedule::Schedule;
use crate::stats::{StatsRegistry, TargetStats};

/// Runs every target's rounds.
#[derive(Debug)]
pub struct Engine<R: Runner> {
    epoch: Instant,
    probe_id: String,
    metrics: Metrics,
    stats: Arc<StatsRegistry>,
    results: Option<mpsc::Sender<RoundResult>>,
    tracker: TaskTracker,
    running: HashMap<Arc<str>, Running<R>>,
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
    pub fn new(
        probe_id: &str,
        metrics: Metrics,
        stats: Arc<StatsRegistry>,
        results: Option<mpsc::Sender<RoundResult>>,
    ) -> Engine<R> {
        Engine {
            epoch: Instant::now(),
            probe_id: probe_id.to_string(),
            metrics,
            stats,
            results,
            tracker: TaskTracker::new(),
            running: HashMap::new(),
        }
    }

    /// Makes `targets` the running set, each run by `runner`.
    pub fn apply(&mut self, targets: &[Arc<Target>], runner: &Arc<R>) {
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
            let task = TargetTask {
                schedule: Schedule::new(
                    self.epoch,
                    target.interval,
                    &format!("{}/{}", self.probe_id, target.name),
                ),
                target: target.clone(),
                runner: runner.clone(),
                stats,
                metrics: self.metrics.clone(),
                results: self.results.clone(),
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
        self.metrics.targets.set(self.running.len() as i64);
    }

    /// Stops scheduling, lets rounds in flight finish within `grace`, and
    /// reports whether they all did.
    pub async fn shutdown(self, grace: Duration) -> bool {
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
    metrics: Metrics,
    results: Option<mpsc::Sender<RoundResult>>,
    stop: CancellationToken,
}

impl<R: Runner> TargetTask<R> {
    async fn run(self) {
        let mut k = self.schedule.next_round(Instant::now());
        loop {
            let due = self.schedule.slot(k) + self.schedule.jitter();
            tokio::select! {
                biased;
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep_until(due) => {}
            }
            self.metrics
                .scheduler_lag
                .observe(Instant::now().saturating_duration_since(due).as_secs_f64());
            // A round in flight is finished even during shutdown: it is
            // bounded by its timeouts, and its result is evidence.
            let round = self.runner.run(&self.target).await;
            self.stats.record(&round);
            self.metrics.rounds.inc();
            if let Some(tx) = &self.results {
                let _ = tx.try_send(round);
            }
            let next = self.schedule.next_round(Instant::now()).max(k + 1);
            let skipped = next - k - 1;
            if skipped > 0 {
                self.metrics.rounds_skipped.inc_by(skipped);
            }
            k = next;
        }
    }
}
