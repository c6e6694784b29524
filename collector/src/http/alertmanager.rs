//! `POST /api/v1/alertmanager`: an Alertmanager webhook receiver (payload
//! version 4), answered with the cross-region evidence for each alert's
//! window and kept; `GET` lists the evidence given for recent alerts.

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::State;
use serde::Serialize;

use super::blocking;
use super::error::{ApiError, Json, Reason};
use super::extract::Reader;
use crate::evidence::Judge;
use crate::evidence::alertmanager::{self, AlertEvidence, MAX_BODY};
use crate::store::Store;

/// The answer to a webhook.
#[derive(Debug, Serialize)]
pub(super) struct Answer {
    alerts: Vec<AlertEvidence>,
}

/// `POST /api/v1/alertmanager`.
pub(super) async fn receive(
    State(judge): State<Judge>,
    _: Reader,
    body: Body,
) -> Result<Json<Answer>, ApiError> {
    let body = super::deadline::read(body, MAX_BODY, || {
        ApiError::new(
            Reason::BodyTooLarge,
            format!("the body exceeds {MAX_BODY} bytes"),
        )
    })
    .await?;
    let (hook, windows) = alertmanager::parse(&body)?;
    let now = SystemTime::now();
    let reading = judge.clone();
    let evidence = blocking(move || alertmanager::answer(&reading, &hook, &windows, now)).await?;
    alertmanager::record(judge.store(), now, &evidence).await?;
    Ok(Json(Answer { alerts: evidence }))
}

/// `GET /api/v1/alertmanager`: the evidence given for recent alerts.
pub(super) async fn recent(
    State(store): State<Store>,
    _: Reader,
) -> Result<Json<Vec<AlertEvidence>>, ApiError> {
    blocking(move || store.read(|s| alertmanager::recent(s, 100)))
        .await
        .map(Json)
}
