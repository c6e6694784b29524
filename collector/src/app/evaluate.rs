//! The evaluation loop: every `evaluate_every` the matrix is judged, the
//! incidents updated, the changes written, and only then shown.
//!
//! Between ticks, a stored batch that adds failures wakes the loop, which
//! judges the cells it touched
//! ([`Judge::new_faults`](crate::evidence::Judge::new_faults)). It evaluates at
//! once when one of them now fails and the last judgment did not find it:
//! a hard fault is found as the batch that makes it significant lands.
//!
//! A new fault's incident opens on the second look that judges its scope
//! the same ([`Look::Settling`]). Such a look waits until every region has
//! had the time to measure what the fault may reach as the first region
//! did: the slowest attempt interval among the cells of its regions and
//! of its targets (at most a minute, or `evaluate_every` if longer) after
//! the look before, and then a push from every reporting probe (waited
//! for one period at most). A region whose next attempts would have
//! joined the fault is then never read as a healthy alternative on the
//! first page. A tick before that is a passing look
//! ([`Look::Passing`]): it updates the open incidents, but does not count
//! towards settling a scope. While a fault waits, cells that fail anew
//! ask for nothing: they are most often the same fault reaching more of
//! its targets, which the settling look sees.
//!
//! Evaluations asked for by batches are spaced by at least
//! [`EARLY_SPACING`] and by as long as the last one took (judging takes at
//! most half of the time), and none comes before the first tick (a
//! restart's backfill lands first). After one, the period starts again.
//! While the evidence loads its recent window at start, nothing is
//! evaluated; a tick that comes meanwhile judges as soon as it is in.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::App;
use crate::evidence::incidents::{self, Look};

/// The least time between an evaluation and one a batch asks for.
pub(crate) const EARLY_SPACING: Duration = Duration::from_millis(250);

/// The longest a settling look waits for the slowest attempt interval,
/// unless `evaluate_every` is longer.
const SETTLE_AT_MOST: Duration = Duration::from_secs(60);

/// Why an evaluation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Tick,
    Batch,
}

/// Runs until `stop`.
pub(crate) async fn run(app: Arc<App>, stop: CancellationToken) {
    let every = app.config.evidence.evaluate_every;
    let settle_at_most = every.max(SETTLE_AT_MOST);
    let wake = Arc::new(Notify::new());
    let notify = wake.clone();
    app.judge.on_failures(move || notify.notify_one());
    // The first evaluation one period after start: the open incidents are
    // already loaded from the store, and a restart's backfill gets to land.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticked = false;
    // When the last evaluation ended and how long it took.
    let mut last: Option<(Instant, Duration)> = None;
    // While new faults wait for their incidents: from when the next look
    // may settle their scopes.
    let mut settle_from: Option<SystemTime> = None;
    loop {
        let trigger = tokio::select! {
            _ = tick.tick() => Trigger::Tick,
            () = wake.notified(), if ticked => Trigger::Batch,
            () = stop.cancelled() => return,
        };
        // Judging half a window could resolve what is still failing: the
        // tick waits for the load, and judges as soon as it is in.
        if app.judge.loaded().is_err() {
            tokio::select! {
                () = app.evidence_loaded.notified() => {}
                () = stop.cancelled() => return,
            }
        }
        if trigger == Trigger::Batch {
            let Some((ended, took)) = last else {
                continue;
            };
            tokio::select! {
                () = tokio::time::sleep_until((ended + took.max(EARLY_SPACING)).into()) => {}
                () = stop.cancelled() => return,
            }
            if !wanted(&app, settle_from, every).await {
                continue;
            }
            app.metrics.early_evaluations.inc();
        } else {
            ticked = true;
            app.judge.forget_tried();
        }
        let started = Instant::now();
        let now = SystemTime::now();
        let look = if settle_from.is_none_or(|at| settles(&app, at, now, every)) {
            Look::Settling
        } else {
            Look::Passing
        };
        let result = evaluate(&app, now, look).await;
        let took = started.elapsed();
        last = Some((Instant::now(), took));
        app.metrics.evidence_seconds.set(took.as_secs_f64());
        let label = if result.is_ok() { "ok" } else { "error" };
        app.metrics.evaluations.with_label_values(&[label]).inc();
        settle_from = match result {
            // A passing look leaves the faults waiting as they were.
            Ok(Some(_)) if look == Look::Passing => settle_from,
            Ok(settle) => settle.map(|s| now + s.min(settle_at_most)),
            Err(e) => {
                tracing::error!("evaluating the evidence: {e:#}");
                settle_from
            }
        };
        if trigger == Trigger::Batch {
            tick.reset();
        }
    }
}

/// Whether a look at `now` settles the scopes of the faults waiting since
/// a look whose settling time came `at`: that time has come, and every
/// reporting probe has pushed since (or a whole period went by waiting).
fn settles(app: &App, at: SystemTime, now: SystemTime, every: Duration) -> bool {
    now >= at && (now >= at + every || app.fleet.all_heard_since(at, now))
}

/// Whether the batches stored since the last evaluation call for one now.
/// While faults wait for their incidents (`settle_from` is set), only a
/// look that settles them: cells failing meanwhile are most often the same
/// fault reaching more of its targets. Otherwise, when a cell they touched
/// fails anew.
async fn wanted(app: &App, settle_from: Option<SystemTime>, every: Duration) -> bool {
    let now = SystemTime::now();
    if let Some(at) = settle_from {
        return settles(app, at, now, every);
    }
    let judge = app.judge.clone();
    match tokio::task::spawn_blocking(move || judge.new_faults(now)).await {
        Ok(n) => n > 0,
        Err(e) => {
            tracing::error!("judging the cells a batch touched: {e}");
            false
        }
    }
}

/// One evaluation, at `now`, as a `look` of that kind. While new faults
/// wait for their incidents, how long after it a look may settle them:
/// the slowest attempt interval of the cells of their regions and of
/// their targets.
async fn evaluate(app: &App, now: SystemTime, look: Look) -> anyhow::Result<Option<Duration>> {
    let judge = app.judge.clone();
    let assessment = tokio::task::spawn_blocking(move || judge.assess(now)).await??;
    let changes = app.incidents.lock().expect("incidents lock").evaluate_as(
        &assessment.findings,
        assessment.at_us,
        look,
    );
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
    let (mut regions, mut targets) = (
        std::collections::BTreeSet::new(),
        std::collections::BTreeSet::new(),
    );
    for p in &changes.pending {
        regions.extend(p.finding.src_regions.iter().map(String::as_str));
        targets.extend(p.finding.targets.iter().map(String::as_str));
    }
    let settle = (!changes.pending.is_empty()).then(|| {
        // When each region's data began: its first probe's first batch.
        let mut began: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
        for (_, p, _) in app.fleet.probes(now) {
            let at = crate::time::us(p.first_seen);
            began
                .entry(p.src_region)
                .and_modify(|b| *b = (*b).min(at))
                .or_insert(at);
        }
        assessment
            .attempt_interval(
                |c| regions.contains(c.src_region.as_str()) || targets.contains(c.target.as_str()),
                |r| began.get(r).copied(),
            )
            .unwrap_or(Duration::ZERO)
    });
    // Readers see this judgment from now on: the one the incidents just
    // written were judged on.
    app.judge.publish(assessment);
    Ok(settle)
}
