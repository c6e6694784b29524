//! Answers shared by the API handlers: a refusal with its reason, the 401
//! of a request without a known token, and a read of the store answered as
//! JSON.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use rusqlite::Connection;
use vantage_probe::wire::Refusal;

use crate::ingest::json_response;
use crate::server::AppState;
use crate::store::Store;

/// A refusal: `status`, a bounded `reason` code and a message for people.
pub fn refuse(status: StatusCode, reason: &str, message: impl Into<String>) -> Response {
    json_response(
        status,
        &Refusal {
            reason: reason.into(),
            message: message.into(),
        },
    )
}

/// The 401 for a request without a token the collector knows; `None` lets
/// it through. Any configured token may read.
pub fn denied(app: &AppState, headers: &HeaderMap) -> Option<Response> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    app.tokens.authenticate(auth).err().map(|d| {
        refuse(
            StatusCode::UNAUTHORIZED,
            d.reason(),
            "send `Authorization: Bearer <token>`",
        )
    })
}

/// Runs `read` on the store's read connection off the async threads and
/// answers its value as JSON: 200, or 503 when the store fails.
pub async fn read<T, F>(store: &Store, read: F) -> Response
where
    T: serde::Serialize + Send + 'static,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
{
    let store = store.clone();
    blocking(move || store.read(read)).await
}

/// Runs a store job off the async threads and answers its value as JSON:
/// 200, or 503 when the store fails.
pub async fn blocking<T, E, F>(job: F) -> Response
where
    T: serde::Serialize + Send + 'static,
    E: std::fmt::Display + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    match tokio::task::spawn_blocking(job).await {
        Ok(Ok(v)) => json_response(StatusCode::OK, &v),
        Ok(Err(e)) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        ),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}
