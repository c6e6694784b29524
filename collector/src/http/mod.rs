//! The collector's HTTP API, `/metrics` and health endpoints on one
//! listener: the only module that knows the web framework. Handlers take
//! the parts of [`App`] they need (as `State`), who is asking (a
//! [`extract::Reader`] or [`extract::Pusher`]) and their parameters, and
//! answer with a value or an [`ApiError`].
//!
//! - `error`: [`ApiError`] and its bounded [`Reason`];
//! - `extract`: tokens, queries and paths as extractors;
//! - `ingest`: `POST /api/v1/results`;
//! - `read`: `GET /api/v1/rollups` and `/api/v1/failures`;
//! - `evidence`: findings, incidents, reachability and the report;
//! - `alertmanager`: the webhook receiver and its stored answers;
//! - `inventory`: `GET /api/v1/targets`;
//! - `status`: `/metrics`, `/api/v1/probes`, `/-/healthy`, `/-/ready`;
//! - `serve`: the accept loop, the connection cap and TLS handshakes;
//! - `clock`: the deadlines of request heads and keep-alive waits;
//! - `deadline`: the deadline of request bodies.

mod alertmanager;
mod clock;
mod deadline;
mod error;
mod evidence;
mod extract;
mod ingest;
mod inventory;
mod read;
mod serve;
mod status;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;
use vantage_probe::wire::{RESULTS_PATH, TARGETS_PATH};

use crate::app::App;
use crate::auth::Tokens;
use crate::evidence::Judge;
use crate::evidence::incidents::Tracker;
use crate::fleet::Fleet;
use crate::ingest::Ingest;
use crate::inventory::Inventory;
use crate::metrics::Metrics;
use crate::store::Store;

pub(crate) use error::{ApiError, Reason};

/// The router's state: the app, shared. Handlers take its parts.
#[derive(Debug, Clone)]
struct Shared(Arc<App>);

pub(crate) fn router(app: Arc<App>) -> Router {
    let ingest = post(ingest::post_results)
        .route_layer(axum::middleware::map_response_with_state(
            app.metrics.clone(),
            ingest::count_refusals,
        ))
        .route_layer(axum::middleware::map_response(ingest::offer_formats));
    let targets = get(inventory::get_targets).route_layer(
        axum::middleware::map_response_with_state(app.metrics.clone(), inventory::count_refusals),
    );
    Router::new()
        .route(RESULTS_PATH, ingest)
        .route("/api/v1/probes", get(status::probes))
        .route("/api/v1/findings", get(evidence::findings))
        .route("/api/v1/incidents", get(evidence::incidents))
        .route("/api/v1/incidents/{id}", get(evidence::incident))
        .route("/api/v1/reachability", get(evidence::reachability))
        .route("/api/v1/report", get(evidence::report))
        .route(
            "/api/v1/alertmanager",
            post(alertmanager::receive).get(alertmanager::recent),
        )
        .route(TARGETS_PATH, targets)
        .route("/api/v1/rollups", get(read::rollups))
        .route("/api/v1/failures", get(read::failures))
        .route("/metrics", get(status::metrics))
        .route("/-/healthy", get(|| async { "healthy\n" }))
        .route("/-/ready", get(status::ready))
        .with_state(Shared(app))
}

/// Serves on `listener` (TLS with `tls`) until `stop` is cancelled;
/// requests in flight finish. Every connection is held to
/// `app.config.connections`.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Arc<App>,
    stop: CancellationToken,
) {
    let (limits, metrics) = (app.config.connections, app.metrics.clone());
    serve::accept_loop(listener, tls, router(app), limits, metrics, stop).await;
}

/// Runs a blocking job (a store read) off the async threads.
async fn blocking<T, E>(job: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(job).await?.map_err(Into::into)
}

/// An optional RFC 3339 parameter: `None` when absent.
fn time_param(name: &str, value: Option<&str>) -> Result<Option<SystemTime>, ApiError> {
    value
        .map(|s| {
            crate::time::parse(s).map_err(|e| {
                ApiError::new(
                    Reason::BadQuery,
                    format!("{name} = {s:?}: not an RFC 3339 time ({e})"),
                )
            })
        })
        .transpose()
}

// What each handler may take from the app.
macro_rules! part {
    ($ty:ty, $app:ident => $e:expr) => {
        impl FromRef<Shared> for $ty {
            fn from_ref(Shared($app): &Shared) -> $ty {
                $e
            }
        }
    };
}
part!(Store, app => app.store.clone());
part!(Arc<Tokens>, app => app.tokens.clone());
part!(Arc<Fleet>, app => app.fleet.clone());
part!(Metrics, app => app.metrics.clone());
part!(Arc<Ingest>, app => app.ingest.clone());
part!(Judge, app => app.judge.clone());
part!(Arc<Mutex<Tracker>>, app => app.incidents.clone());
part!(Arc<Inventory>, app => app.inventory.clone());
part!(Arc<AtomicBool>, app => app.ready.clone());
