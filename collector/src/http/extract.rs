//! Who is asking, and what they asked, as extractors: a handler that takes
//! a [`Reader`] or a [`Pusher`] runs only for a known token, and one that
//! takes a [`Query`] or a [`Path`] only for parameters that parse. Each
//! refuses with an [`ApiError`], so no handler writes a guard.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::{ApiError, Reason};
use crate::auth::Tokens;
use crate::config::TokenBinding;

/// Any configured token: it may read.
#[derive(Debug)]
pub(super) struct Reader;

/// A token with its binding: it may push, and fetch targets, for its
/// region only (which the handler checks against what the request claims).
#[derive(Debug)]
pub(super) struct Pusher(pub(super) Arc<TokenBinding>);

/// The binding of the request's bearer token; `hint` tells a caller
/// without a known one what to send.
fn binding<S>(parts: &Parts, state: &S, hint: &str) -> Result<Arc<TokenBinding>, ApiError>
where
    Arc<Tokens>: FromRef<S>,
{
    let tokens = Arc::<Tokens>::from_ref(state);
    let auth = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    tokens
        .authenticate(auth)
        .map_err(|d| ApiError::new(d.into(), hint))
}

impl<S> FromRequestParts<S> for Reader
where
    Arc<Tokens>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        binding(parts, state, "send `Authorization: Bearer <token>`").map(|_| Reader)
    }
}

impl<S> FromRequestParts<S> for Pusher
where
    Arc<Tokens>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        binding(
            parts,
            state,
            "send `Authorization: Bearer <token>` with a token the collector knows",
        )
        .map(Pusher)
    }
}

/// Query parameters; unknown or malformed ones are a `bad_query`.
#[derive(Debug)]
pub(super) struct Query<T>(pub(super) T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(q)| Query(q))
            .map_err(|e| ApiError::new(Reason::BadQuery, e.body_text()))
    }
}

/// Path parameters; malformed ones are a `bad_query`.
#[derive(Debug)]
pub(super) struct Path<T>(pub(super) T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(p)| Path(p))
            .map_err(|e| ApiError::new(Reason::BadQuery, e.body_text()))
    }
}
