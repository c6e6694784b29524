//! The collector's HTTP server: the ingest API, the read API, `/metrics`
//! and the health endpoints on one listener.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt as _;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use vantage_probe::exposition::TargetChunks;
use vantage_probe::wire::RESULTS_PATH;

use crate::auth::Tokens;
use crate::config::Config;
use crate::fleet::Fleet;
use crate::ingest::{self, RateLimits, json_response};
use crate::metrics::{FLEET_PREFIX, Metrics};
use crate::read_api;
use crate::store::Store;

/// What every handler reads.
#[derive(Debug)]
pub struct AppState {
    /// The validated config.
    pub config: Config,
    /// Its tokens.
    pub tokens: Tokens,
    /// Its TLS certificate and key, when it serves TLS.
    pub certs: Option<Arc<crate::tls::Certs>>,
    /// The store.
    pub store: Store,
    /// The live fleet.
    pub fleet: Arc<Fleet>,
    /// The collector's own metrics.
    pub metrics: Metrics,
    /// The open incidents.
    pub incidents: std::sync::Mutex<crate::evidence::incidents::Tracker>,
    /// The fleet inventory.
    pub inventory: crate::inventory::Inventory,
    /// Per-probe rate limits.
    pub rates: RateLimits,
    /// The readiness latch.
    pub ready: AtomicBool,
}

/// The router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(RESULTS_PATH, post(ingest::post_results))
        .route("/api/v1/probes", get(probes))
        .route("/api/v1/findings", get(crate::evidence::api::findings))
        .route("/api/v1/incidents", get(crate::evidence::api::incidents))
        .route("/api/v1/report", get(crate::evidence::api::report))
        .route(
            "/api/v1/alertmanager",
            post(crate::evidence::alertmanager::receive).get(crate::evidence::alertmanager::recent),
        )
        .route(
            "/api/v1/incidents/{id}",
            get(crate::evidence::api::incident),
        )
        .route(
            "/api/v1/reachability",
            get(crate::evidence::api::reachability),
        )
        .route(
            vantage_probe::wire::TARGETS_PATH,
            get(crate::inventory::get_targets),
        )
        .route("/api/v1/rollups", get(read_api::rollups))
        .route("/api/v1/failures", get(read_api::failures))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "healthy\n" }))
        .route("/-/ready", get(ready))
        .with_state(state)
}

/// Serves until `stop` is cancelled.
pub async fn serve<L>(
    listener: L,
    state: Arc<AppState>,
    stop: CancellationToken,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, router(state))
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

async fn ready(State(app): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    if app.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

#[derive(Serialize)]
struct ProbeView {
    probe_id: String,
    src_region: String,
    zone: Option<String>,
    state: &'static str,
    last_report: vantage_probe::result::Timestamp,
    report_age_seconds: f64,
    clock_offset_seconds: f64,
    clock_flagged: bool,
}

async fn probes(State(app): State<Arc<AppState>>) -> Response {
    let now = SystemTime::now();
    let list: Vec<ProbeView> = app
        .fleet
        .probes(now)
        .into_iter()
        .map(|(id, p, l)| ProbeView {
            clock_flagged: app.fleet.clock_flagged(&p),
            probe_id: id,
            src_region: p.src_region,
            zone: p.zone,
            state: l.as_str(),
            last_report: p.last_seen.into(),
            report_age_seconds: now
                .duration_since(p.last_seen)
                .map_or(0.0, |d| d.as_secs_f64()),
            clock_offset_seconds: p.clock_offset_us as f64 / 1e6,
        })
        .collect();
    json_response(StatusCode::OK, &list)
}

async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    let open = crate::evidence::runner::open(&app);
    let head = match app
        .metrics
        .encode_head(&app.fleet, &open, SystemTime::now())
    {
        Ok(h) => h,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding metrics: {e}\n"),
            )
                .into_response();
        }
    };
    let chunks = TargetChunks::new(app.fleet.target_stats(SystemTime::now()), FLEET_PREFIX);
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
