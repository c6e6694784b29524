//! The one error a handler answers with: a status, a bounded reason (also
//! the `reason` label of the refusal counter) and a message for people,
//! sent as the wire's [`Refusal`] body that the probe reads.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use vantage_probe::wire::Refusal;

use crate::auth::Denied;
use crate::decode::{DecodeError, DecodeErrorKind};
use crate::evidence::alertmanager::HookError;
use crate::fleet::{OverBudget, SeriesLimit};
use crate::ingest::Refused;
use crate::report::ReportError;
use crate::store::StoreError;
use crate::validate::{Invalid, Problem};

/// Why a request was refused: every reason code the API answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Reason {
    /// No `Authorization: Bearer` header.
    MissingToken,
    /// A token the collector does not know.
    UnknownToken,
    /// The request speaks for a region its token is not bound to.
    WrongRegion,
    /// The batch speaks for a probe its token is not bound to.
    WrongProbe,
    /// The body is over its limit (compressed or not).
    BodyTooLarge,
    /// The body did not arrive within `server.body_read_timeout` (the
    /// probe retries it).
    BodyTimeout,
    /// The body is not what the endpoint reads.
    Malformed,
    /// A `Content-Encoding` other than gzip or identity.
    UnsupportedEncoding,
    /// A `Content-Type` other than JSON or the binary batch encoding.
    UnsupportedMediaType,
    /// A batch schema this collector does not read.
    UnknownSchema,
    /// A field out of its range or form.
    InvalidValue,
    /// More results in one batch than allowed.
    TooManyResults,
    /// A time outside the accepted window.
    BadTimestamp,
    /// A probe sending batches faster than allowed.
    RateLimited,
    /// A probe reporting more distinct targets than allowed.
    TooManyTargets,
    /// A region exposing more series than `limits.max_series_per_region`.
    TooManySeriesRegion,
    /// A region exposing more than its share of `limits.max_series`.
    TooManySeriesFleet,
    /// A batch under a (probe, stream, seq) stored before with other
    /// content (the probe sends it again under a new stream).
    SeqReused,
    /// An Alertmanager payload of another version.
    UnknownVersion,
    /// A query parameter or path that does not parse.
    BadQuery,
    /// No incident of that id.
    NoSuchIncident,
    /// This collector keeps no fleet inventory.
    NoInventory,
    /// The store could not answer or write: nothing changed; retry.
    StoreUnavailable,
    /// The evidence is still loading its recent window at start: retry.
    EvidenceLoading,
    /// A bug: a task failed.
    Internal,
}

impl Reason {
    /// Every reason, for tests and for the refusal counter's series.
    #[cfg(test)]
    const ALL: [Reason; 25] = [
        Reason::MissingToken,
        Reason::UnknownToken,
        Reason::WrongRegion,
        Reason::WrongProbe,
        Reason::BodyTooLarge,
        Reason::BodyTimeout,
        Reason::Malformed,
        Reason::UnsupportedEncoding,
        Reason::UnsupportedMediaType,
        Reason::UnknownSchema,
        Reason::InvalidValue,
        Reason::TooManyResults,
        Reason::BadTimestamp,
        Reason::RateLimited,
        Reason::TooManyTargets,
        Reason::TooManySeriesRegion,
        Reason::TooManySeriesFleet,
        Reason::SeqReused,
        Reason::UnknownVersion,
        Reason::BadQuery,
        Reason::NoSuchIncident,
        Reason::NoInventory,
        Reason::StoreUnavailable,
        Reason::EvidenceLoading,
        Reason::Internal,
    ];

    /// The code in the body and the counter's label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::MissingToken => "missing_token",
            Reason::UnknownToken => "unknown_token",
            Reason::WrongRegion => "wrong_region",
            Reason::WrongProbe => "wrong_probe",
            Reason::BodyTooLarge => "body_too_large",
            Reason::BodyTimeout => "body_timeout",
            Reason::Malformed => "malformed",
            Reason::UnsupportedEncoding => "unsupported_encoding",
            Reason::UnsupportedMediaType => "unsupported_media_type",
            Reason::UnknownSchema => "unknown_schema",
            Reason::InvalidValue => "invalid_value",
            Reason::TooManyResults => "too_many_results",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::RateLimited => "rate_limited",
            Reason::TooManyTargets => "too_many_targets",
            Reason::TooManySeriesRegion => "too_many_series_region",
            Reason::TooManySeriesFleet => "too_many_series_fleet",
            Reason::SeqReused => "seq_reused",
            Reason::UnknownVersion => "unknown_version",
            Reason::BadQuery => "bad_query",
            Reason::NoSuchIncident => "no_such_incident",
            Reason::NoInventory => "no_inventory",
            Reason::StoreUnavailable => "store_unavailable",
            Reason::EvidenceLoading => "evidence_loading",
            Reason::Internal => "internal",
        }
    }

    /// The status it is answered with: 401 who-are-you, 403 you-may-not,
    /// 4xx for what was sent (409 for a seq reused with other content),
    /// 503 for a store that could not answer.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Reason::MissingToken | Reason::UnknownToken => StatusCode::UNAUTHORIZED,
            Reason::WrongRegion | Reason::WrongProbe => StatusCode::FORBIDDEN,
            Reason::BodyTooLarge | Reason::TooManyResults => StatusCode::PAYLOAD_TOO_LARGE,
            Reason::Malformed | Reason::UnknownSchema | Reason::BadQuery => StatusCode::BAD_REQUEST,
            Reason::UnsupportedEncoding | Reason::UnsupportedMediaType => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Reason::InvalidValue | Reason::BadTimestamp | Reason::UnknownVersion => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Reason::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            // A cap is the collector's to lift, not the batch's fault: the
            // probe keeps the batch and sends it again (Retry-After).
            Reason::RateLimited
            | Reason::TooManyTargets
            | Reason::TooManySeriesRegion
            | Reason::TooManySeriesFleet => StatusCode::TOO_MANY_REQUESTS,
            Reason::SeqReused => StatusCode::CONFLICT,
            Reason::NoSuchIncident | Reason::NoInventory => StatusCode::NOT_FOUND,
            Reason::StoreUnavailable | Reason::EvidenceLoading => StatusCode::SERVICE_UNAVAILABLE,
            Reason::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl Reason {
    /// Seconds the sender should wait before sending again (`Retry-After`),
    /// for a refusal that waiting can end.
    pub(crate) fn retry_after(self) -> Option<u32> {
        match self {
            Reason::RateLimited => Some(1),
            Reason::StoreUnavailable | Reason::EvidenceLoading => Some(5),
            // Room comes back when series are forgotten or the limit is
            // raised: ask again now and then, not at once.
            Reason::TooManyTargets | Reason::TooManySeriesRegion | Reason::TooManySeriesFleet => {
                Some(60)
            }
            _ => None,
        }
    }
}

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// Why.
    pub reason: Reason,
    /// What was wrong, for people.
    pub message: String,
}

impl ApiError {
    /// A refusal for `reason`.
    pub(crate) fn new(reason: Reason, message: impl Into<String>) -> ApiError {
        ApiError {
            reason,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json(
            self.reason.status(),
            &Refusal {
                reason: self.reason.as_str().into(),
                message: self.message,
            },
        );
        if let Some(seconds) = self.reason.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        // For the layers that count refusals by reason.
        response.extensions_mut().insert(self.reason);
        response
    }
}

/// A value answered as JSON, 200.
#[derive(Debug)]
pub(super) struct Json<T>(pub(super) T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        json(StatusCode::OK, &self.0)
    }
}

/// A JSON response.
pub(super) fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::new(Reason::StoreUnavailable, e.to_string())
    }
}

impl From<crate::evidence::Unjudged> for ApiError {
    fn from(e: crate::evidence::Unjudged) -> ApiError {
        match e {
            crate::evidence::Unjudged::Store(e) => e.into(),
            e @ crate::evidence::Unjudged::Loading(_) => {
                ApiError::new(Reason::EvidenceLoading, e.to_string())
            }
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::new(Reason::Internal, e.to_string())
    }
}

impl From<Denied> for Reason {
    fn from(d: Denied) -> Reason {
        match d {
            Denied::MissingToken => Reason::MissingToken,
            Denied::UnknownToken => Reason::UnknownToken,
            Denied::WrongRegion => Reason::WrongRegion,
            Denied::WrongProbe => Reason::WrongProbe,
        }
    }
}

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> ApiError {
        let reason = match e.kind {
            DecodeErrorKind::UnsupportedEncoding => Reason::UnsupportedEncoding,
            DecodeErrorKind::UnsupportedMediaType => Reason::UnsupportedMediaType,
            DecodeErrorKind::Malformed => Reason::Malformed,
            DecodeErrorKind::TooLarge => Reason::BodyTooLarge,
            DecodeErrorKind::TooManyResults => Reason::TooManyResults,
        };
        ApiError::new(reason, e.message)
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> ApiError {
        let reason = match e.problem {
            Problem::UnknownSchema => Reason::UnknownSchema,
            Problem::InvalidValue => Reason::InvalidValue,
            Problem::TooManyResults => Reason::TooManyResults,
            Problem::BadTimestamp => Reason::BadTimestamp,
        };
        ApiError::new(reason, e.message)
    }
}

impl From<Refused> for ApiError {
    fn from(e: Refused) -> ApiError {
        let message = e.to_string();
        match e {
            Refused::Denied { denied, message } => ApiError::new(denied.into(), message),
            Refused::Invalid(i) => i.into(),
            Refused::RateLimited(_) => ApiError::new(Reason::RateLimited, message),
            Refused::OverBudget(o) => {
                let reason = match o {
                    OverBudget::Targets { .. } => Reason::TooManyTargets,
                    OverBudget::Series {
                        limit: SeriesLimit::Region,
                        ..
                    } => Reason::TooManySeriesRegion,
                    OverBudget::Series {
                        limit: SeriesLimit::Fleet { .. },
                        ..
                    } => Reason::TooManySeriesFleet,
                };
                ApiError::new(reason, message)
            }
            Refused::SeqReused { .. } => ApiError::new(Reason::SeqReused, message),
            Refused::Store(_) => ApiError::new(Reason::StoreUnavailable, message),
        }
    }
}

impl From<HookError> for ApiError {
    fn from(e: HookError) -> ApiError {
        let reason = match e {
            HookError::UnknownVersion(_) => Reason::UnknownVersion,
            HookError::NotAPayload(_) | HookError::BadStart { .. } => Reason::Malformed,
        };
        ApiError::new(reason, e.to_string())
    }
}

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> ApiError {
        match e {
            ReportError::NoSuchIncident(id) => {
                ApiError::new(Reason::NoSuchIncident, format!("no incident {id}"))
            }
            ReportError::NoWindow => {
                ApiError::new(Reason::BadQuery, "give incident, or both from and to")
            }
            ReportError::Store(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_reason_has_its_own_code_and_a_client_or_server_status() {
        let codes: HashSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(codes.len(), Reason::ALL.len(), "codes are unique");
        for r in Reason::ALL {
            let status = r.status();
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{r:?}: {status}"
            );
            assert!(
                r.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{r:?}: a label value"
            );
        }
    }

    /// The probe labels its counters with the wire's list: a reason
    /// missing there would be counted as `other`.
    #[test]
    fn the_wire_lists_exactly_these_reasons() {
        let ours: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            ours,
            vantage_probe::wire::REFUSAL_REASONS,
            "Reason::ALL and the wire's REFUSAL_REASONS, in the same order"
        );
        assert_eq!(
            Reason::SeqReused.as_str(),
            vantage_probe::wire::SEQ_REUSED,
            "the reason the probe restreams on"
        );
        assert_eq!(Reason::SeqReused.status(), StatusCode::CONFLICT);
    }

    #[test]
    fn a_refusal_is_the_wire_body_with_its_status_and_reason() {
        let response =
            ApiError::new(Reason::TooManyTargets, "probe p would report 3").into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "60");
        assert_eq!(
            response.extensions().get::<Reason>(),
            Some(&Reason::TooManyTargets)
        );
        let response = ApiError::new(Reason::Malformed, "no").into_response();
        assert!(!response.headers().contains_key(header::RETRY_AFTER));
    }
}
