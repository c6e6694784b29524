//! `GET /api/v1/findings` (the localized faults now) and
//! `GET /api/v1/reachability?target=T[&from=R]`: the second opinion that
//! automation asks before it acts on "I can't reach it".

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::cells::State as CellState;
use super::localize::{Finding, Scope};
use super::{Assessment, Params, assess};
use crate::answer::{denied, refuse};
use crate::ingest::json_response;
use crate::server::AppState;

/// Query of `GET /api/v1/reachability`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReachabilityQuery {
    /// The target name.
    pub target: Option<String>,
    /// The asking region, if any.
    pub from: Option<String>,
}

/// One region's view of a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionView {
    /// The region.
    pub src_region: String,
    /// `reachable`, `failing` or `unknown`.
    pub state: String,
    /// Recent attempts (every address).
    pub attempts: u64,
    /// Failures in the telling window, when failing.
    pub failures: u64,
    /// Failures by outcome, when failing.
    pub reasons: BTreeMap<String, u64>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reachability {
    /// The target.
    pub target: String,
    /// `reachable` (no region fails), `reachable_elsewhere` (some regions
    /// fail, others reach it: not the target), `down` (a target-side
    /// finding), `unreachable` (every region with data fails, without a
    /// quorum to call it down), `unknown` (no recent data).
    pub verdict: String,
    /// The asking region's own state, when `from` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<RegionView>,
    /// Regions that reach it.
    pub reachable_from: Vec<String>,
    /// Regions that fail to reach it.
    pub failing_from: Vec<String>,
    /// Every region with recent data.
    pub regions: Vec<RegionView>,
    /// The findings that name this target.
    pub findings: Vec<Finding>,
}

async fn assessment(app: &Arc<AppState>, headers: &HeaderMap) -> Result<Assessment, Response> {
    if let Some(r) = denied(app, headers) {
        return Err(r);
    }
    let store = app.store.clone();
    let now = SystemTime::now();
    let probes = super::probes_of(&app.fleet, now);
    let params = Params::from_policy(&app.config.evidence);
    match tokio::task::spawn_blocking(move || assess(&store, &probes, now, params)).await {
        Ok(Ok(a)) => Ok(a),
        Ok(Err(e)) => Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        )),
        Err(e) => Err(refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e.to_string(),
        )),
    }
}

/// `GET /api/v1/findings`.
pub async fn findings(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match assessment(&app, &headers).await {
        Ok(a) => json_response(StatusCode::OK, &a.findings),
        Err(r) => r,
    }
}

/// Query of `GET /api/v1/incidents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentsQuery {
    /// Also incidents resolved since then (RFC 3339); default: a day ago.
    pub since: Option<String>,
    /// At most this many (default and maximum 1000).
    pub limit: Option<usize>,
}

/// `GET /api/v1/incidents`: open incidents and those changed since `since`,
/// newest first.
pub async fn incidents(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<IncidentsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Some(r) = denied(&app, &headers) {
        return r;
    }
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, "bad_query", e.body_text()),
    };
    let since = match q.since.as_deref().map(humantime::parse_rfc3339_weak) {
        None => SystemTime::now() - std::time::Duration::from_secs(86_400),
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_query",
                format!("since: not an RFC 3339 time ({e})"),
            );
        }
    };
    let since_us = crate::store::us(since);
    let limit = q.limit.unwrap_or(1000).min(1000);
    crate::answer::read(&app.store, move |c| {
        super::incidents::list(c, since_us, limit)
    })
    .await
}

/// One incident with its timeline.
#[derive(Debug, Serialize)]
pub struct IncidentView {
    /// The incident.
    #[serde(flatten)]
    pub incident: super::incidents::Incident,
    /// Its timeline, oldest first.
    pub timeline: Vec<super::incidents::Event>,
}

/// `GET /api/v1/incidents/{id}`.
pub async fn incident(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    id: Result<axum::extract::Path<u64>, axum::extract::rejection::PathRejection>,
) -> Response {
    if let Some(r) = denied(&app, &headers) {
        return r;
    }
    let id = match id {
        Ok(axum::extract::Path(id)) => id,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, "bad_query", e.body_text()),
    };
    let store = app.store.clone();
    let read =
        tokio::task::spawn_blocking(move || store.read(|c| super::incidents::one(c, id))).await;
    match read {
        Ok(Ok(Some((incident, timeline)))) => {
            json_response(StatusCode::OK, &IncidentView { incident, timeline })
        }
        Ok(Ok(None)) => refuse(
            StatusCode::NOT_FOUND,
            "no_such_incident",
            format!("no incident {id}"),
        ),
        Ok(Err(e)) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        ),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

/// `GET /api/v1/reachability`.
pub async fn reachability(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<ReachabilityQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, "bad_query", e.body_text()),
    };
    let Some(target) = q.target.filter(|t| !t.is_empty()) else {
        return refuse(StatusCode::BAD_REQUEST, "bad_query", "target is required");
    };
    match assessment(&app, &headers).await {
        Ok(a) => json_response(StatusCode::OK, &judge(&a, &target, q.from.as_deref())),
        Err(r) => r,
    }
}

/// The reachability of `target` in an assessment.
pub fn judge(a: &Assessment, target: &str, from: Option<&str>) -> Reachability {
    let mut regions: BTreeMap<String, RegionView> = BTreeMap::new();
    for c in a
        .cells
        .iter()
        .filter(|c| c.target == target && c.address.is_some())
    {
        let v = regions
            .entry(c.src_region.clone())
            .or_insert_with(|| RegionView {
                src_region: c.src_region.clone(),
                state: "unknown".into(),
                attempts: 0,
                failures: 0,
                reasons: BTreeMap::new(),
            });
        v.attempts += c.attempts;
        match c.state(a.at_us, a.alpha) {
            CellState::Failing(f) => {
                v.state = "failing".into();
                v.failures += f.failures;
                for (k, n) in f.reasons {
                    *v.reasons.entry(k).or_insert(0) += n;
                }
            }
            CellState::Healthy if v.state == "unknown" => v.state = "reachable".into(),
            _ => {}
        }
    }
    let regions: Vec<RegionView> = regions.into_values().collect();
    let names = |state: &str| -> Vec<String> {
        regions
            .iter()
            .filter(|v| v.state == state)
            .map(|v| v.src_region.clone())
            .collect()
    };
    let (reachable_from, failing_from) = (names("reachable"), names("failing"));
    let findings: Vec<Finding> = a
        .findings
        .iter()
        .filter(|f| f.targets.iter().any(|t| t == target))
        .cloned()
        .collect();
    let verdict = if findings
        .iter()
        .any(|f| f.scope == Scope::Target || f.scope == Scope::Global)
    {
        "down"
    } else if reachable_from.is_empty() && failing_from.is_empty() {
        "unknown"
    } else if failing_from.is_empty() {
        "reachable"
    } else if reachable_from.is_empty() {
        "unreachable"
    } else {
        "reachable_elsewhere"
    };
    Reachability {
        target: target.to_string(),
        verdict: verdict.to_string(),
        from: from.and_then(|r| regions.iter().find(|v| v.src_region == r).cloned()),
        reachable_from,
        failing_from,
        regions,
        findings,
    }
}

/// Query of `GET /api/v1/report`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// One incident.
    pub incident: Option<u64>,
    /// Or a window (RFC 3339).
    pub from: Option<String>,
    /// See `from`.
    pub to: Option<String>,
    /// Only this target.
    pub target: Option<String>,
    /// Only this region.
    pub src_region: Option<String>,
}

/// `GET /api/v1/report`: the report model (`vantage-collector report
/// --format json`).
pub async fn report(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Some(r) = denied(&app, &headers) {
        return r;
    }
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, "bad_query", e.body_text()),
    };
    let time = |name: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| {
                humantime::parse_rfc3339_weak(s)
                    .map(vantage_probe::result::Timestamp::from)
                    .map_err(|e| format!("{name} = {s:?}: not an RFC 3339 time ({e})"))
            })
            .transpose()
    };
    let req = match (time("from", &q.from), time("to", &q.to)) {
        (Ok(from), Ok(to)) => crate::report::Request {
            incident: q.incident,
            from,
            to,
            target: q.target,
            src_region: q.src_region,
        },
        (Err(m), _) | (_, Err(m)) => return refuse(StatusCode::BAD_REQUEST, "bad_query", m),
    };
    let store = app.store.clone();
    let built = tokio::task::spawn_blocking(move || {
        store.read(|c| Ok(crate::report::build(c, &req, "collector")))
    })
    .await;
    match built {
        Ok(Ok(Ok(r))) => json_response(StatusCode::OK, &r),
        Ok(Ok(Err(crate::report::ReportError::NoSuchIncident(id)))) => refuse(
            StatusCode::NOT_FOUND,
            "no_such_incident",
            format!("no incident {id}"),
        ),
        Ok(Ok(Err(crate::report::ReportError::NoWindow))) => refuse(
            StatusCode::BAD_REQUEST,
            "bad_query",
            "give incident, or both from and to",
        ),
        Ok(Ok(Err(e))) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        ),
        Ok(Err(e)) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        ),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}
