//! The evidence API: the localized faults now (`/api/v1/findings`), the
//! incidents and their timelines, one target's reachability from every
//! region, and the report model.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, Json, Reason};
use super::extract::{Path, Query, Reader};
use super::{blocking, time_param};
use crate::evidence::incidents::{self, Event, Incident};
use crate::evidence::reachability::Reachability;
use crate::evidence::{Judge, Judgment};
use crate::report::{self, Report, Request};
use crate::store::Store;
use crate::time::us;
use vantage_probe::result::Timestamp;

/// The evaluation loop's last judgment: a request never judges the fleet
/// itself, so no reader can keep a core busy, and what it is shown is
/// what the incidents were judged on.
async fn latest(judge: Judge) -> Result<Arc<Judgment>, ApiError> {
    let now = SystemTime::now();
    blocking(move || judge.latest(now)).await
}

/// The header that dates a judgment (RFC 3339).
pub(super) const JUDGED_AT: &str = "vantage-judged-at";

/// `GET /api/v1/findings`: the findings of the last evaluation, dated by
/// the `vantage-judged-at` header.
pub(super) async fn findings(
    State(judge): State<Judge>,
    _: Reader,
) -> Result<impl IntoResponse, ApiError> {
    let a = latest(judge).await?;
    let at = Timestamp::from(crate::time::from_us(a.at_us)).to_string();
    Ok(([(JUDGED_AT, at)], Json(a.findings.clone())))
}

/// Query of `GET /api/v1/incidents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IncidentsQuery {
    /// Also incidents resolved since then (RFC 3339); default: a day ago.
    since: Option<String>,
    /// At most this many (default and maximum 1000).
    limit: Option<usize>,
}

/// `GET /api/v1/incidents`: open incidents and those changed since `since`,
/// newest first.
pub(super) async fn incidents(
    State(store): State<Store>,
    _: Reader,
    Query(q): Query<IncidentsQuery>,
) -> Result<Json<Vec<Incident>>, ApiError> {
    let since = time_param("since", q.since.as_deref())?
        .unwrap_or_else(|| SystemTime::now() - Duration::from_secs(86_400));
    let (since_us, limit) = (us(since), q.limit.unwrap_or(1000).min(1000));
    blocking(move || store.read(|s| incidents::list(s, since_us, limit)))
        .await
        .map(Json)
}

/// One incident with its timeline.
#[derive(Debug, Serialize)]
pub(super) struct IncidentView {
    /// The incident.
    #[serde(flatten)]
    incident: Incident,
    /// Its timeline, oldest first.
    timeline: Vec<Event>,
}

/// `GET /api/v1/incidents/{id}`.
pub(super) async fn incident(
    State(store): State<Store>,
    _: Reader,
    Path(id): Path<u64>,
) -> Result<Json<IncidentView>, ApiError> {
    match blocking(move || store.read(|s| incidents::one(s, id))).await? {
        Some((incident, timeline)) => Ok(Json(IncidentView { incident, timeline })),
        None => Err(ApiError::new(
            Reason::NoSuchIncident,
            format!("no incident {id}"),
        )),
    }
}

/// Query of `GET /api/v1/reachability`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReachabilityQuery {
    /// The target name.
    target: Option<String>,
    /// The asking region, if any.
    from: Option<String>,
}

/// `GET /api/v1/reachability`.
pub(super) async fn reachability(
    State(judge): State<Judge>,
    _: Reader,
    Query(q): Query<ReachabilityQuery>,
) -> Result<Json<Reachability>, ApiError> {
    let Some(target) = q.target.filter(|t| !t.is_empty()) else {
        return Err(ApiError::new(Reason::BadQuery, "target is required"));
    };
    let a = latest(judge).await?;
    Ok(Json(a.reachability(&target, q.from.as_deref())))
}

/// Query of `GET /api/v1/report`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportQuery {
    /// One incident.
    incident: Option<u64>,
    /// Or a window (RFC 3339).
    from: Option<String>,
    /// See `from`.
    to: Option<String>,
    /// Only this target.
    target: Option<String>,
    /// Only this region.
    src_region: Option<String>,
}

/// `GET /api/v1/report`: the report model (`vantage-collector report
/// --format json`).
pub(super) async fn report(
    State(store): State<Store>,
    _: Reader,
    Query(q): Query<ReportQuery>,
) -> Result<Json<Report>, ApiError> {
    let req = Request {
        incident: q.incident,
        from: time_param("from", q.from.as_deref())?.map(Into::into),
        to: time_param("to", q.to.as_deref())?.map(Into::into),
        target: q.target,
        src_region: q.src_region,
    };
    blocking(move || store.read(|s| report::build(s, &req, "collector")))
        .await
        .map(Json)
}
