//! `POST /api/v1/results`: the body within its limits, decoded by
//! [`Ingest::decode`] (off the async threads; JSON or binary by its
//! `Content-Type`, every answer listing both in `Accept-Post`), then handed to
//! [`Ingest`]. Every refusal is a 4xx with a
//! reason, counted by reason, and leaves the store untouched.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use vantage_probe::wire::{ACCEPT_POST_HEADER, Ack, SENT_AT_HEADER};

use super::error::{ApiError, Reason, json};
use super::extract::Pusher;
use crate::decode::{ACCEPTED_TYPES, Encoding, Format};
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::validate;

pub(super) async fn post_results(
    State(ingest): State<Arc<Ingest>>,
    State(metrics): State<Metrics>,
    Pusher(binding): Pusher,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let received = SystemTime::now();
    let start = Instant::now();
    let limits = ingest.limits();
    let raw = super::deadline::read(body, limits.max_body_bytes, || {
        ApiError::new(
            Reason::BodyTooLarge,
            format!(
                "the body exceeds {} bytes (limits.max_body_bytes)",
                limits.max_body_bytes
            ),
        )
    })
    .await?;
    let encoding = Encoding::parse(
        headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    )?;
    let format = match headers.get(header::CONTENT_TYPE) {
        None => Format::parse(None)?,
        Some(v) => Format::parse(Some(v.to_str().map_err(|_| {
            ApiError::new(
                Reason::UnsupportedMediaType,
                format!("Content-Type is not text: send one of {ACCEPTED_TYPES}"),
            )
        })?))?,
    };
    let batch = ingest.decode(format, encoding, raw).await?;
    metrics
        .bodies
        .with_label_values(&[match format {
            Format::Json => "json",
            Format::Binary => "binary",
        }])
        .inc();
    // The probe's clock at sending: the header of this attempt (a
    // backfilled batch was sealed long ago), else the batch's own sent_at.
    // It becomes the probe's clock offset, so it is held to the same window
    // as every time in the batch.
    let probe_clock = match headers.get(SENT_AT_HEADER) {
        None => batch.sent_at.system_time(),
        Some(v) => {
            let at = v
                .to_str()
                .map_err(|e| e.to_string())
                .and_then(crate::time::parse)
                .map_err(|e| ApiError::new(Reason::Malformed, format!("{SENT_AT_HEADER}: {e}")))?;
            validate::probe_clock(SENT_AT_HEADER, at, limits, received)?;
            at
        }
    };
    let ack: Result<Ack, ApiError> = ingest
        .accept(&binding, batch, received, probe_clock)
        .await
        .map_err(Into::into);
    match ack {
        Ok(ack) => {
            metrics
                .ingest_seconds
                .observe(start.elapsed().as_secs_f64());
            Ok(json(StatusCode::OK, &ack))
        }
        Err(e) if e.reason == Reason::StoreUnavailable => {
            // Not the probe's fault: not a refusal, and it retries.
            metrics
                .ingest_seconds
                .observe(start.elapsed().as_secs_f64());
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// Lists the media types a results body may have on every answer of the
/// route ([`vantage_probe::wire::ACCEPT_POST_HEADER`]): a probe sends the
/// binary encoding only to a collector that offers it.
pub(super) async fn offer_formats(mut response: Response) -> Response {
    response.headers_mut().insert(
        ACCEPT_POST_HEADER,
        header::HeaderValue::from_static(ACCEPTED_TYPES),
    );
    response
}

/// Counts the route's refusals by reason (a store that could not take a
/// batch is counted as a store error, not a refusal).
pub(super) async fn count_refusals(State(metrics): State<Metrics>, response: Response) -> Response {
    if let Some(reason) = response.extensions().get::<Reason>()
        && *reason != Reason::StoreUnavailable
    {
        metrics.refused.with_label_values(&[reason.as_str()]).inc();
    }
    response
}
