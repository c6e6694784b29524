//! The admin listener: `/metrics`, `/-/healthy` and `/-/ready`.
//!
//! Readiness is a latch: it turns on once every target's schedule is running
//! and off when the probe starts draining, so that an orchestrator never
//! routes to (or waits on) a probe that is not measuring.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use futures_util::StreamExt as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::exposition::{self, TargetChunks};
use crate::metrics::{self, Metrics};
use crate::stats::StatsRegistry;

/// What the admin handlers read.
#[derive(Debug)]
pub(crate) struct AdminState {
    pub metrics: Metrics,
    pub stats: Arc<StatsRegistry>,
    /// The `src_region` label of per-target series.
    pub src_region: String,
    /// What `/-/ready` answers: set once every target's rounds are
    /// started, cleared when the probe starts draining.
    pub ready: AtomicBool,
}

/// The exposition format's content type.
pub(crate) const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves the admin endpoints on `listener` until `stop` is cancelled.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/-/healthy", get(|| async { "healthy\n" }))
        .route("/-/ready", get(ready_handler))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

async fn metrics_handler(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    let head = match exposition::encode_registry(&state.metrics) {
        Ok(head) => head,
        Err(err) => {
            tracing::error!(error = %err, "encoding metrics");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding metrics: {err}\n"),
            )
                .into_response();
        }
    };
    // The per-target part streams: each chunk is produced when the client
    // is ready for it, with the probe's rounds running in between.
    let chunks = TargetChunks::new(
        exposition::for_region(&state.stats, &state.src_region),
        metrics::PROBE_PREFIX,
    );
    let rest = futures_util::stream::unfold(chunks, |mut chunks| async move {
        let chunk = chunks.next_chunk()?;
        tokio::task::yield_now().await;
        Some((chunk, chunks))
    });
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(head) }).chain(rest);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        Body::from_stream(body),
    )
        .into_response()
}

async fn ready_handler(State(state): State<Arc<AdminState>>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
