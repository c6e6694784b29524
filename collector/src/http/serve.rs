//! The accept loop: every connection under `server.max_connections`, its
//! TLS handshake, request heads, bodies and keep-alive waits each under
//! their deadline, so that slow or stuck clients cannot hold the listener
//! that probes push to and Prometheus scrapes.
//!
//! At the cap a new connection is accepted and closed at once, not left
//! in the kernel's queue: its client learns at once (a probe keeps the
//! batch in its spool and retries), and the queue holds no connection
//! whose client has long given up by the time a slot frees. Slots free as
//! the slow connections' deadlines pass. On `stop` the loop stops
//! accepting, idle connections close, and requests under way finish
//! (each within its deadlines).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::clock::{Activity, Counted, HeadClock};
use super::deadline::Deadline;
use crate::config::ConnectionLimits;
use crate::metrics::{Closed, Metrics};

/// What each connection is served with.
#[derive(Debug, Clone)]
struct Serving {
    router: Router,
    limits: ConnectionLimits,
    metrics: Metrics,
    stop: CancellationToken,
}

/// Accepts on `listener` (TLS with `tls`) and serves `router` until `stop`
/// is cancelled and the connections it had have closed.
pub(super) async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: ConnectionLimits,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let serving = Serving {
        router,
        limits,
        metrics,
        stop,
    };
    loop {
        let (tcp, peer) = tokio::select! {
            () = serving.stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, most likely: the open
                    // connections' deadlines free some.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            serving.metrics.closed(Closed::OverCap);
            tracing::debug!(%peer, "over server.max_connections: closed");
            drop(tcp);
            continue;
        };
        connections.spawn(connection(tcp, tls.clone(), serving.clone(), slot));
    }
    connections.close();
    connections.wait().await;
}

/// One connection, from accept to close, holding its `slot`.
async fn connection(
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
    serving: Serving,
    slot: OwnedSemaphorePermit,
) {
    let _slot = slot;
    let _open = Open::count(&serving.metrics);
    let Some(acceptor) = tls else {
        return http(tcp, serving).await;
    };
    let handshake =
        tokio::time::timeout(serving.limits.tls_handshake_timeout, acceptor.accept(tcp));
    let stream = tokio::select! {
        () = serving.stop.cancelled() => return,
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return tracing::debug!(error = %e, "TLS handshake failed"),
            Err(_) => return serving.metrics.closed(Closed::HandshakeTimeout),
        },
    };
    http(stream, serving).await;
}

/// HTTP/1.1 on `io` until the client, a deadline or `stop` ends it.
async fn http<I>(io: I, serving: Serving)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let limits = serving.limits;
    let router = TowerToHyperService::new(serving.router);
    let (metrics, seen) = (serving.metrics.clone(), activity.clone());
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        use hyper::service::Service as _;
        seen.request();
        let (metrics, limit) = (metrics.clone(), limits.body_read_timeout);
        router.call(request.map(|body| Deadline::new(body, limit, metrics)))
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(HeadClock::new(
            activity.clone(),
            limits.header_read_timeout,
            limits.idle_timeout,
        ))
        .header_read_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection(TokioIo::new(Counted::new(io, activity.clone())), service);
    tokio::pin!(conn);
    let served = tokio::select! {
        served = conn.as_mut() => served,
        () = serving.stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    match served {
        Ok(()) => {}
        Err(e) if e.is_timeout() => serving.metrics.closed(if activity.was_silent() {
            Closed::Idle
        } else {
            Closed::HeaderTimeout
        }),
        Err(e) => tracing::debug!(error = %e, "connection ended"),
    }
}

/// One open connection in `vantage_collector_connections_open`.
struct Open(prometheus::IntGauge);

impl Open {
    fn count(metrics: &Metrics) -> Open {
        metrics.connections_open.inc();
        Open(metrics.connections_open.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}
