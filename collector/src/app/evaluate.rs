//! The evaluation loop: every `evaluate_every` the matrix is judged, the
//! incidents updated, the changes written, and only then shown.
//!
//! Between ticks, a stored batch that adds failures wakes the loop, which
//! judges the cells it touched
//! ([`Judge::touched`](crate::evidence::Judge::touched)). It evaluates at
//! once when one of them now fails and the last judgment did not find it:
//! a hard fault is found as the batch that makes it significant lands.
//!
//! A new fault's incident opens on the second look that judges its scope
//! the same. That look waits until every region has had the time to
//! measure the fault's targets as the first region did: two of the
//! slowest region's attempt intervals (at most `evaluate_every`) after
//! the first look, and a push from every reporting probe after that. A
//! region whose next attempts would have joined the fault is then not
//! read as a healthy alternative on the first page.
//!
//! Evaluations asked for this way are spaced by at least
//! [`EARLY_SPACING`] and by as long as the last one took (judging takes at
//! most half of the time), and none comes before the first tick (a
//! restart's backfill lands first). After one, the period starts again.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::App;
use crate::evidence::incidents;

/// The least time between an evaluation and one a batch asks for.
pub(crate) const EARLY_SPACING: Duration = Duration::from_millis(250);

/// Why an evaluation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Tick,
    Batch,
}

/// Runs until `stop`.
pub(crate) async fn run(app: Arc<App>, stop: CancellationToken) {
    let every = app.config.evidence.evaluate_every;
    let wake = Arc::new(Notify::new());
    let notify = wake.clone();
    app.judge.on_failures(move || notify.notify_one());
    // The first evaluation one period after start: the open incidents are
    // already loaded from the store, and a restart's backfill gets to land.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticked = false;
    // When the last evaluation judged, when it ended and how long it took.
    let mut last: Option<(SystemTime, Instant, Duration)> = None;
    // When the faults that wait for their incidents may be looked at again.
    let mut confirm_at: Option<SystemTime> = None;
    loop {
        let trigger = tokio::select! {
            _ = tick.tick() => Trigger::Tick,
            () = wake.notified(), if ticked => Trigger::Batch,
            () = stop.cancelled() => return,
        };
        if trigger == Trigger::Batch {
            let Some((_, ended, took)) = last else {
                continue;
            };
            tokio::select! {
                () = tokio::time::sleep_until((ended + took.max(EARLY_SPACING)).into()) => {}
                () = stop.cancelled() => return,
            }
            if !wanted(&app, confirm_at).await {
                continue;
            }
            app.metrics.early_evaluations.inc();
        } else {
            ticked = true;
            app.judge.forget_tried();
        }
        let started = Instant::now();
        let now = SystemTime::now();
        let result = evaluate(&app, now).await;
        let took = started.elapsed();
        last = Some((now, Instant::now(), took));
        app.metrics.evidence_seconds.set(took.as_secs_f64());
        let label = if result.is_ok() { "ok" } else { "error" };
        app.metrics.evaluations.with_label_values(&[label]).inc();
        confirm_at = match result {
            Ok(settle) => settle.map(|s| now + s.min(every)),
            Err(e) => {
                tracing::error!("evaluating the evidence: {e:#}");
                None
            }
        };
        if trigger == Trigger::Batch {
            tick.reset();
        }
    }
}

/// Whether the batches stored since the last evaluation call for one now:
/// a cell they touched fails anew, or faults wait for their incidents
/// (`confirm_at` is set), that time has come and every reporting probe has
/// pushed since.
async fn wanted(app: &App, confirm_at: Option<SystemTime>) -> bool {
    let judge = app.judge.clone();
    let now = SystemTime::now();
    let touched = match tokio::task::spawn_blocking(move || judge.touched(now)).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("judging the cells a batch touched: {e}");
            return false;
        }
    };
    touched.new_faults > 0
        || confirm_at.is_some_and(|at| now >= at && app.fleet.all_heard_since(at, now))
}

/// One evaluation, at `now`. While new faults wait for their incidents,
/// how long after it they may be looked at again: two of the slowest
/// attempt intervals of their targets' cells.
async fn evaluate(app: &App, now: SystemTime) -> anyhow::Result<Option<Duration>> {
    let judge = app.judge.clone();
    let assessment = tokio::task::spawn_blocking(move || judge.assess(now)).await??;
    let changes = app
        .incidents
        .lock()
        .expect("incidents lock")
        .evaluate(&assessment.findings, assessment.at_us);
    if !changes.is_durable_empty() {
        incidents::write(&app.store, &changes).await?;
    }
    for i in &changes.upserts {
        let scope = i.finding.scope.as_str();
        if i.resolved_us.is_some() {
            app.metrics
                .incidents_resolved
                .with_label_values(&[scope])
                .inc();
            tracing::info!(incident = i.id, scope, "incident resolved");
        } else if i.opened_us == i.updated_us && i.opened_us == assessment.at_us {
            app.metrics
                .incidents_opened
                .with_label_values(&[scope])
                .inc();
            tracing::warn!(incident = i.id, scope, "{}", i.finding.explanation);
        }
    }
    let mut tracker = app.incidents.lock().expect("incidents lock");
    tracker.apply(&changes);
    // What the incidents now open hold: the next evaluation judges those
    // cells at the looser bound that keeps a fault (hysteresis).
    app.judge.hold(tracker.held());
    drop(tracker);
    let waiting: std::collections::BTreeSet<&str> = changes
        .pending
        .iter()
        .flat_map(|p| p.finding.targets.iter().map(String::as_str))
        .collect();
    let settle = (!changes.pending.is_empty()).then(|| {
        assessment
            .attempt_interval(|t| waiting.contains(t))
            .map_or(Duration::ZERO, |i| i * 2)
    });
    // Readers see this judgment from now on: the one the incidents just
    // written were judged on.
    app.judge.publish(assessment);
    Ok(settle)
}
