//! The JSON read API: rollups and failures over a window of time, for the
//! evidence engine and the report. Any configured token may read.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use crate::answer::{denied, refuse};
use crate::server::AppState;
use crate::store::read::Window;

/// Most rows one request may ask for.
pub const MAX_ROWS: usize = 100_000;

/// Query parameters of the read endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowQuery {
    /// From (RFC 3339), inclusive.
    pub from: Option<String>,
    /// To (RFC 3339), exclusive.
    pub to: Option<String>,
    /// Only this region.
    pub src_region: Option<String>,
    /// Only this target.
    pub target: Option<String>,
    /// At most this many rows (default and maximum 100000).
    pub limit: Option<usize>,
}

/// `GET /api/v1/rollups`.
pub async fn rollups(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    q: Query<WindowQuery>,
) -> Response {
    read(&app, &headers, q, |store, w| {
        store
            .rollups(&w)
            .map(|r| serde_json::to_value(r).unwrap_or_default())
    })
    .await
}

/// `GET /api/v1/failures`.
pub async fn failures(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    q: Query<WindowQuery>,
) -> Response {
    read(&app, &headers, q, |store, w| {
        store
            .failures(&w)
            .map(|r| serde_json::to_value(r).unwrap_or_default())
    })
    .await
}

async fn read(
    app: &Arc<AppState>,
    headers: &HeaderMap,
    Query(q): Query<WindowQuery>,
    f: fn(&crate::store::Store, Window) -> Result<serde_json::Value, crate::store::StoreError>,
) -> Response {
    if let Some(r) = denied(app, headers) {
        return r;
    }
    let time = |name: &str, v: &Option<String>| -> Result<Option<SystemTime>, String> {
        v.as_deref()
            .map(|s| {
                humantime::parse_rfc3339_weak(s)
                    .map_err(|e| format!("{name} = {s:?}: not an RFC 3339 time ({e})"))
            })
            .transpose()
    };
    let window = match (time("from", &q.from), time("to", &q.to)) {
        (Ok(from), Ok(to)) => Window {
            from,
            to,
            src_region: q.src_region,
            target: q.target,
            limit: q.limit.unwrap_or(MAX_ROWS).min(MAX_ROWS),
        },
        (Err(m), _) | (_, Err(m)) => return refuse(StatusCode::BAD_REQUEST, "bad_query", m),
    };
    let store = app.store.clone();
    crate::answer::blocking(move || f(&store, window)).await
}
