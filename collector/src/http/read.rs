//! The JSON read API: rollups and failures over a window of time, for the
//! evidence engine and the report. Any configured token may read.

use axum::extract::State;
use serde::Deserialize;

use super::error::{ApiError, Json};
use super::extract::{Query, Reader};
use super::{blocking, time_param};
use crate::store::Store;
use crate::store::read::{FailureRow, RollupRow, Window};

/// Most rows one request may ask for.
const MAX_ROWS: usize = 100_000;

/// Query parameters of the read endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WindowQuery {
    /// From (RFC 3339), inclusive.
    from: Option<String>,
    /// To (RFC 3339), exclusive.
    to: Option<String>,
    /// Only this region.
    src_region: Option<String>,
    /// Only this target.
    target: Option<String>,
    /// At most this many rows (default and maximum 100000).
    limit: Option<usize>,
}

impl WindowQuery {
    fn window(self) -> Result<Window, ApiError> {
        Ok(Window {
            from: time_param("from", self.from.as_deref())?,
            to: time_param("to", self.to.as_deref())?,
            src_region: self.src_region,
            target: self.target,
            limit: self.limit.unwrap_or(MAX_ROWS).min(MAX_ROWS),
        })
    }
}

/// `GET /api/v1/rollups`.
pub(super) async fn rollups(
    State(store): State<Store>,
    _: Reader,
    Query(q): Query<WindowQuery>,
) -> Result<Json<Vec<RollupRow>>, ApiError> {
    let window = q.window()?;
    blocking(move || store.rollups(&window)).await.map(Json)
}

/// `GET /api/v1/failures`.
pub(super) async fn failures(
    State(store): State<Store>,
    _: Reader,
    Query(q): Query<WindowQuery>,
) -> Result<Json<Vec<FailureRow>>, ApiError> {
    let window = q.window()?;
    blocking(move || store.failures(&window)).await.map(Json)
}
