//! `POST /api/v1/results`: authenticate, decode, check, store, acknowledge.
//! Every refusal is a 4xx with a reason, counted by reason, and leaves the
//! store untouched.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use vantage_probe::wire::SENT_AT_HEADER;
use vantage_probe::wire::{Batch, Refusal};

use crate::auth::Tokens;
use crate::server::AppState;
use crate::validate::{self, Refused};

/// Per-probe token buckets: `max_batches_per_second` is both the burst and
/// the refill rate.
#[derive(Debug, Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Probes tracked at most; beyond this the table starts over (a token can
/// name probe ids freely, so the table must not grow without bound).
const MAX_TRACKED_PROBES: usize = 100_000;

impl RateLimits {
    fn allow(&self, probe: &str, per_second: u32) -> bool {
        let mut buckets = self.buckets.lock().unwrap();
        if buckets.len() >= MAX_TRACKED_PROBES && !buckets.contains_key(probe) {
            buckets.clear();
        }
        let now = Instant::now();
        let cap = f64::from(per_second);
        let (tokens, last) = buckets.entry(probe.to_string()).or_insert((cap, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * cap).min(cap);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The handler.
pub async fn post_results(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let received = SystemTime::now();
    let start = Instant::now();
    match accept(&app, &headers, body, received).await {
        Ok(response) => {
            app.metrics
                .ingest_seconds
                .observe(start.elapsed().as_secs_f64());
            response
        }
        Err(refused) => {
            app.metrics
                .refused
                .with_label_values(&[refused.reason])
                .inc();
            refusal(refused)
        }
    }
}

async fn accept(
    app: &AppState,
    headers: &HeaderMap,
    body: Body,
    received: SystemTime,
) -> Result<Response, Refused> {
    let limits = &app.config.limits;
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let binding = app.tokens.authenticate(auth).map_err(|d| {
        Refused::new(
            d.status(),
            d.reason(),
            "send `Authorization: Bearer <token>` with a token the collector knows",
        )
    })?;

    let raw = axum::body::to_bytes(body, limits.max_body_bytes)
        .await
        .map_err(|_| {
            Refused::new(
                413,
                "body_too_large",
                format!(
                    "the body exceeds {} bytes (limits.max_body_bytes)",
                    limits.max_body_bytes
                ),
            )
        })?;
    let json = decode(headers, raw, limits.max_decompressed_bytes)?;
    let batch: Batch = serde_json::from_slice(&json)
        .map_err(|e| Refused::new(400, "malformed", format!("not a batch: {e}")))?;

    Tokens::authorize(&binding, &batch.probe.src_region, &batch.probe.probe_id).map_err(|d| {
        Refused::new(
            d.status(),
            d.reason(),
            format!(
                "this token reports for region {:?}{}, not for probe {:?} in {:?}",
                binding.src_region,
                binding
                    .probe_ids
                    .as_ref()
                    .map_or(String::new(), |ids| format!(" probes {ids:?}")),
                batch.probe.probe_id,
                batch.probe.src_region
            ),
        )
    })?;
    validate::check(&batch, limits, received)?;
    if !app
        .rates
        .allow(&batch.probe.probe_id, limits.max_batches_per_second)
    {
        return Err(Refused::new(
            429,
            "rate_limited",
            format!(
                "more than {} batches per second from this probe",
                limits.max_batches_per_second
            ),
        ));
    }
    app.fleet.admit_targets(&batch)?;

    // The probe's clock at sending: the header of this attempt (a backfilled
    // batch was sealed long ago), else the batch's own sent_at.
    let probe_clock = headers
        .get(SENT_AT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| humantime::parse_rfc3339_weak(v).ok())
        .unwrap_or(batch.sent_at.system_time());
    let oldest = batch
        .results
        .iter()
        .map(|r| r.started_at.system_time())
        .min();
    match app.store.submit(batch, received, probe_clock).await {
        Ok(ack) => {
            let result = if ack.duplicate { "duplicate" } else { "stored" };
            app.metrics.batches.with_label_values(&[result]).inc();
            app.metrics.results.inc_by(u64::from(ack.stored));
            if let Some(oldest) = oldest.filter(|_| !ack.duplicate) {
                let age = received.duration_since(oldest).unwrap_or_default();
                app.metrics.result_delay.observe(age.as_secs_f64());
            }
            Ok(json_response(StatusCode::OK, &ack))
        }
        Err(e) => {
            tracing::error!(error = %e, "storing a batch");
            app.metrics.store_errors.inc();
            Ok(json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &Refusal {
                    reason: "store_unavailable".into(),
                    message: "the batch was not stored; retry it".into(),
                },
            ))
        }
    }
}

/// The body as JSON bytes: identity or gzip, decompressed within `max` bytes.
fn decode(headers: &HeaderMap, raw: Bytes, max: usize) -> Result<Vec<u8>, Refused> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    match encoding {
        "identity" => Ok(raw.to_vec()),
        "gzip" => {
            let mut out = Vec::new();
            let mut reader = flate2::read::GzDecoder::new(&raw[..]).take(max as u64 + 1);
            reader
                .read_to_end(&mut out)
                .map_err(|e| Refused::new(400, "malformed", format!("gzip body: {e}")))?;
            if out.len() > max {
                return Err(Refused::new(
                    413,
                    "body_too_large",
                    format!("the body decompresses to more than {max} bytes"),
                ));
            }
            Ok(out)
        }
        other => Err(Refused::new(
            415,
            "unsupported_encoding",
            format!("Content-Encoding {other:?}: send gzip or identity"),
        )),
    }
}

fn refusal(r: Refused) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    json_response(
        status,
        &Refusal {
            reason: r.reason.to_string(),
            message: r.message,
        },
    )
}

/// A JSON response.
pub fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
