//! What the collector says of itself and the fleet: `/metrics` (its own
//! series, every probe's liveness, the open incidents, then the fleet's
//! per-target series streamed in chunks), `/api/v1/probes`, and the health
//! and readiness endpoints.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde::Serialize;
use vantage_probe::TargetChunks;
use vantage_probe::result::Timestamp;

use super::error::Json;
use super::extract::Reader;
use crate::evidence::incidents::Tracker;
use crate::fleet::Fleet;
use crate::metrics::{FLEET_PREFIX, Metrics};

/// `/-/ready`: 200 once the collector serves and its evidence has loaded
/// the recent window from the store (`/-/healthy` answers before: a
/// collector that loads a large store is alive, not stuck).
pub(super) async fn ready(
    State(ready): State<Arc<AtomicBool>>,
    State(judge): State<crate::evidence::Judge>,
) -> (StatusCode, &'static str) {
    if !ready.load(Ordering::Acquire) {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    } else if judge.loaded().is_err() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the evidence is loading the recent window\n",
        )
    } else {
        (StatusCode::OK, "ready\n")
    }
}

/// One probe in `/api/v1/probes`.
#[derive(Serialize)]
pub(super) struct ProbeView {
    probe_id: String,
    src_region: String,
    zone: Option<String>,
    state: &'static str,
    first_report: Timestamp,
    last_report: Timestamp,
    report_age_seconds: f64,
    clock_offset_seconds: f64,
    clock_flagged: bool,
}

/// `GET /api/v1/probes`: every probe the collector knows, and its state.
pub(super) async fn probes(State(fleet): State<Arc<Fleet>>, _: Reader) -> Json<Vec<ProbeView>> {
    let now = SystemTime::now();
    let list = fleet
        .probes(now)
        .into_iter()
        .map(|(id, p, l)| ProbeView {
            clock_flagged: fleet.clock_flagged(&p),
            probe_id: id,
            src_region: p.src_region,
            zone: p.zone,
            state: l.as_str(),
            first_report: p.first_seen.into(),
            last_report: p.last_seen.into(),
            report_age_seconds: now
                .duration_since(p.last_seen)
                .map_or(0.0, |d| d.as_secs_f64()),
            clock_offset_seconds: p.clock_offset_us as f64 / 1e6,
        })
        .collect();
    Json(list)
}

/// `GET /metrics`.
pub(super) async fn metrics(
    State(metrics): State<Metrics>,
    State(fleet): State<Arc<Fleet>>,
    State(incidents): State<Arc<Mutex<Tracker>>>,
) -> Response {
    let open = incidents.lock().expect("incidents lock").open.clone();
    let head = match metrics.encode_head(&fleet, &open, SystemTime::now()) {
        Ok(h) => h,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding metrics: {e}\n"),
            )
                .into_response();
        }
    };
    let chunks = TargetChunks::new(fleet.target_stats(SystemTime::now()), FLEET_PREFIX);
    let rest = futures_util::stream::unfold(chunks, |mut chunks| async move {
        let chunk = chunks.next_chunk()?;
        tokio::task::yield_now().await;
        Some((chunk, chunks))
    });
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(head) }).chain(rest);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        Body::from_stream(body),
    )
        .into_response()
}
