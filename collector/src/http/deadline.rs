//! A request body with a deadline for the whole of it: a client that
//! trickles its body a byte at a time is cut off when
//! `server.body_read_timeout` has passed since its head, however steadily
//! the bytes come. The handler reading it gets [`BodyTimedOut`], answers
//! 408 `body_timeout`, and the connection closes with the body unread.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use http_body::{Frame, SizeHint};
use http_body_util::LengthLimitError;

use super::error::{ApiError, Reason};
use crate::metrics::{Closed, Metrics};

/// The body did not arrive within `server.body_read_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the body did not arrive within {} (server.body_read_timeout)", humantime::format_duration(*.0))]
pub(super) struct BodyTimedOut(Duration);

/// `body`, which must be complete within `limit` from now.
pub(super) struct Deadline<B> {
    body: B,
    limit: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    metrics: Option<Metrics>,
}

impl<B> Deadline<B> {
    /// `body`, counted in `metrics` if its deadline passes.
    pub(super) fn new(body: B, limit: Duration, metrics: Metrics) -> Deadline<B> {
        Deadline {
            body,
            limit,
            sleep: Box::pin(tokio::time::sleep(limit)),
            metrics: Some(metrics),
        }
    }
}

impl<B> HttpBody for Deadline<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.sleep.as_mut().poll(cx).is_pending() {
            return Pin::new(&mut self.body)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(Into::into)));
        }
        // Counted once: the connection closes with this body unread.
        if let Some(metrics) = self.metrics.take() {
            metrics.closed(Closed::BodyTimeout);
        }
        Poll::Ready(Some(Err(Box::new(BodyTimedOut(self.limit)))))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The whole of `body`, at most `max` bytes: refused `body_timeout` when
/// its deadline passed first, with `too_large()` past `max`, and
/// `malformed` when the client broke it off.
pub(super) async fn read(
    body: Body,
    max: usize,
    too_large: impl FnOnce() -> ApiError,
) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, max).await.map_err(|e| {
        if let Some(t) = cause::<BodyTimedOut>(&e) {
            ApiError::new(Reason::BodyTimeout, t.to_string())
        } else if cause::<LengthLimitError>(&e).is_some() {
            too_large()
        } else {
            ApiError::new(
                Reason::Malformed,
                format!("the body could not be read: {e}"),
            )
        }
    })
}

/// The first error of type `T` in `e`'s chain of sources.
fn cause<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = Some(e);
    while let Some(c) = next {
        if let Some(t) = c.downcast_ref::<T>() {
            return Some(t);
        }
        next = c.source();
    }
    None
}
