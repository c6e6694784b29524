//! `GET /api/v1/targets?src_region=R`: the fleet inventory for one region,
//! with an entity tag so that an unchanged list costs a 304. Only a token
//! bound to R may fetch R's list.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, Reason};
use super::extract::{Pusher, Query};
use crate::inventory::Inventory;
use crate::metrics::Metrics;

/// Query of `GET /api/v1/targets`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TargetsQuery {
    /// The asking probe's region; its token must be bound to it.
    src_region: Option<String>,
}

/// `GET /api/v1/targets?src_region=R`.
pub(super) async fn get_targets(
    State(inventory): State<Arc<Inventory>>,
    State(metrics): State<Metrics>,
    Pusher(binding): Pusher,
    Query(q): Query<TargetsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(src_region) = q.src_region else {
        return Err(ApiError::new(Reason::BadQuery, "src_region is required"));
    };
    if binding.src_region != src_region {
        return Err(ApiError::new(
            Reason::WrongRegion,
            format!(
                "this token is bound to src_region {:?}, not {src_region:?}",
                binding.src_region
            ),
        ));
    }
    if !inventory.is_configured() {
        return Err(ApiError::new(
            Reason::NoInventory,
            "this collector keeps no fleet inventory ([inventory] file_sd is not set)",
        ));
    }
    let served = tokio::task::spawn_blocking(move || inventory.for_region(&src_region)).await?;
    let etag = HeaderValue::from_str(&served.etag).expect("a hex tag is a header value");
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == served.etag.as_bytes());
    let result = if matches { "not_modified" } else { "served" };
    metrics
        .inventory_requests
        .with_label_values(&[result])
        .inc();
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        served.body,
    )
        .into_response())
}

/// Counts the route's refusals.
pub(super) async fn count_refusals(State(metrics): State<Metrics>, response: Response) -> Response {
    if response.extensions().get::<Reason>().is_some() {
        metrics
            .inventory_requests
            .with_label_values(&["refused"])
            .inc();
    }
    response
}
