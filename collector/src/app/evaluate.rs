//! The evaluation loop: every `evaluate_every` the matrix is judged, the
//! incidents updated, the changes written, and only then shown.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::App;
use crate::evidence::incidents;

/// Runs until `stop`.
pub(crate) async fn run(app: Arc<App>, stop: CancellationToken) {
    let every = app.config.evidence.evaluate_every;
    // The first evaluation one period after start: the open incidents are
    // already loaded from the store, and a restart's backfill gets to land.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let started = Instant::now();
        let result = evaluate(&app).await;
        app.metrics
            .evidence_seconds
            .set(started.elapsed().as_secs_f64());
        let label = if result.is_ok() { "ok" } else { "error" };
        app.metrics.evaluations.with_label_values(&[label]).inc();
        if let Err(e) = result {
            tracing::error!("evaluating the evidence: {e:#}");
        }
    }
}

/// One evaluation.
async fn evaluate(app: &App) -> anyhow::Result<()> {
    let now = SystemTime::now();
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
    // Readers see this judgment from now on: the one the incidents just
    // written were judged on.
    app.judge.publish(assessment);
    Ok(())
}
