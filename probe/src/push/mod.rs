//! Pushing results to the collector.
//!
//! Two tasks. The sealer collects rounds from the engine and, every flush
//! interval (or when a batch is full), seals them into the on-disk
//! [`spool::Spool`]. The sender posts the spool's batches oldest first and
//! removes each once the collector acknowledged it. When the collector is
//! away the probe keeps probing, the spool fills (bounded, oldest dropped
//! and counted), and the sender backfills in order when it returns. A 409
//! `seq_reused` (the spool's `seq` went back, so a batch reuses a stored
//! seq with other content) makes the spool start a new stream, and the
//! sender sends the waiting batches again under it at once. Nothing
//! here ever blocks a round: the engine's hand-off is a bounded queue whose
//! overflow is counted.

pub(crate) mod inventory;
pub(crate) mod spool;

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::PushSettings;
use crate::metrics::Metrics;
use crate::result::{Identity, RoundResult, Timestamp};
use crate::wire::{
    ACCEPT_POST_HEADER, Ack, RESULTS_PATH, Refusal, SENT_AT_HEADER, SEQ_REUSED, binary,
};
use spool::Spool;

/// Rounds queued between the engine and the sealer.
pub(crate) const QUEUE: usize = 65_536;

/// The sealer and sender tasks, running until [`Pusher::finish`].
#[derive(Debug)]
pub(crate) struct Pusher {
    sealer: JoinHandle<()>,
    sender: JoinHandle<()>,
    shared: Arc<Shared>,
}

/// What the sealer and the sender share.
#[derive(Debug)]
struct Shared {
    spool: Mutex<Spool>,
    metrics: Metrics,
    /// The sealer sealed a batch (or the end came).
    wake: Notify,
    /// The probe is stopping: send what is left, then end.
    draining: AtomicBool,
    /// Wakes the sender out of a backoff when draining starts.
    drain: Notify,
    stop_sealing: CancellationToken,
    stop_sending: CancellationToken,
}

/// Longest wait between two attempts while the collector is failing.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Longest wait a collector's `Retry-After` can ask for: a collector (or
/// something in front of it) asking for hours must not stall the spool.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

impl Pusher {
    /// Opens the spool and starts both tasks; rounds go into the returned queue.
    pub(crate) fn start(
        settings: PushSettings,
        identity: Identity,
        metrics: Metrics,
    ) -> std::io::Result<(Pusher, mpsc::Sender<RoundResult>)> {
        let spool = Spool::open(&settings.spool_dir, settings.spool_max_bytes)?;
        update_gauges(&metrics, &spool);
        let client = client(&settings)?;
        let shared = Arc::new(Shared {
            spool: Mutex::new(spool),
            metrics,
            wake: Notify::new(),
            draining: AtomicBool::new(false),
            drain: Notify::new(),
            stop_sealing: CancellationToken::new(),
            stop_sending: CancellationToken::new(),
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        let sealer = tokio::spawn(seal_loop(settings.clone(), identity, rx, shared.clone()));
        let sender = tokio::spawn(send_loop(settings, client, shared.clone()));
        Ok((
            Pusher {
                sealer,
                sender,
                shared,
            },
            tx,
        ))
    }

    /// After the engine stopped: seals what is pending or queued, then
    /// keeps sending for at most `grace`. What is still unsent stays in the
    /// spool for the next start.
    pub(crate) async fn finish(self, grace: Duration) {
        self.shared.stop_sealing.cancel();
        let _ = self.sealer.await;
        self.shared.draining.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        self.shared.drain.notify_one();
        let deadline = Instant::now() + grace;
        let mut sender = self.sender;
        if tokio::time::timeout_at(deadline, &mut sender)
            .await
            .is_err()
        {
            self.shared.stop_sending.cancel();
            let _ = sender.await;
        }
    }
}

/// The HTTP client: rustls (ring), pinned to `ca_file` when given.
pub(crate) fn client(settings: &PushSettings) -> std::io::Result<reqwest::Client> {
    http_client(
        settings.timeout,
        settings.ca_file.as_deref(),
        settings.url.starts_with("https://"),
    )
}

/// An HTTP client for talking to a collector: rustls (ring), each request
/// bounded by `timeout`, trusting only `ca_file` (PEM) when given, else the
/// system's roots. Without `https` no roots are loaded at all: a plain-HTTP
/// collector must not need a CA bundle on the probe's host (a scratch
/// image has none).
pub fn http_client(
    timeout: Duration,
    ca_file: Option<&std::path::Path>,
    https: bool,
) -> std::io::Result<reqwest::Client> {
    // The process-wide default provider; installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if let Some(ca) = ca_file {
        let roots = crate::config::ca_roots(ca)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        builder = builder.tls_backend_preconfigured(tls);
    } else if !https {
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        builder = builder.tls_backend_preconfigured(tls);
    }
    builder.build().map_err(std::io::Error::other)
}

async fn seal_loop(
    settings: PushSettings,
    identity: Identity,
    mut rx: mpsc::Receiver<RoundResult>,
    shared: Arc<Shared>,
) {
    let mut pending = Vec::new();
    let mut tick = tokio::time::interval(settings.flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Some(r) => {
                    pending.push(r);
                    if pending.len() >= settings.batch_max_results {
                        seal(&shared, &identity, &mut pending, false);
                        shared.wake.notify_one();
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                if !pending.is_empty() {
                    seal(&shared, &identity, &mut pending, false);
                }
                shared.wake.notify_one();
            }
            () = shared.stop_sealing.cancelled() => {
                // Take what the engine already queued; later rounds find
                // the queue closed and are counted as dropped.
                rx.close();
                while let Ok(r) = rx.try_recv() {
                    pending.push(r);
                }
                break;
            }
        }
    }
    // The last batch says the probe is stopping (even with no results), so
    // that the collector shows it stopped rather than silent.
    seal(&shared, &identity, &mut pending, true);
    shared.wake.notify_one();
}

fn seal(shared: &Shared, identity: &Identity, pending: &mut Vec<RoundResult>, last: bool) {
    let metrics = &shared.metrics;
    let results = std::mem::take(pending);
    let n = results.len() as u64;
    let mut spool = shared.spool.lock().unwrap();
    match spool.seal(identity, results, last) {
        Ok(dropped) => {
            if dropped.results > 0 {
                metrics.spool_dropped.inc_by(dropped.results);
                tracing::warn!(
                    batches = dropped.batches,
                    results = dropped.results,
                    "spool full: dropped the oldest unsent results"
                );
            }
        }
        Err(err) => {
            // The results cannot be kept: count them as dropped, loudly.
            metrics.spool_dropped.inc_by(n);
            tracing::error!(error = %err, results = n, "writing to the spool failed; results dropped");
        }
    }
    update_gauges(metrics, &spool);
}

/// A response's body as text, read chunk by chunk and refused once it
/// passes `max` bytes: what a collector (or anything answering in its
/// place) sends can never take more memory than that.
pub async fn text_capped(mut response: reqwest::Response, max: usize) -> Result<String, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > max {
            return Err(format!("the answer is over {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|e| format!("the answer is not UTF-8: {e}"))
}

/// The most of an answer to a batch the probe reads (an ack or a refusal
/// is a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 64 << 10;

async fn send_loop(settings: PushSettings, client: reqwest::Client, shared: Arc<Shared>) {
    let stop = &shared.stop_sending;
    let url = format!("{}{RESULTS_PATH}", settings.url.trim_end_matches('/'));
    let mut auth = Auth::new(settings.token.clone());
    let mut backoff = Duration::ZERO;
    // The last answer was seq_reused too: a collector that keeps saying so
    // of new streams is waited on, not rewritten for in a tight loop.
    let mut restreamed = false;
    // The collector's last answer offered the binary encoding: until one
    // does, batches go as JSON, which every collector reads.
    let mut binary = false;
    loop {
        // Wait out the backoff, unless the probe is stopping: then there is
        // one grace period left to flush, and it is not spent sleeping.
        if !backoff.is_zero() && !shared.draining.load(Ordering::Acquire) {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
                () = shared.drain.notified() => {}
            }
        }
        let next = {
            let s = shared.spool.lock().unwrap();
            s.oldest().map(|e| (s.body(&e), e))
        };
        let Some((body, entry)) = next else {
            // Nothing to send: done if draining, else wait for the sealer.
            if shared.draining.load(Ordering::Acquire) {
                return;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = shared.wake.notified() => {}
            }
            continue;
        };
        // Spooled binary, sent so to a collector that reads it; as JSON
        // to one that does not (or has not said so yet).
        let spooled_binary = body.as_ref().is_ok_and(|b| spool::is_binary(b));
        let send_binary = spooled_binary && binary;
        let body = body.and_then(|b| {
            if spooled_binary && !send_binary {
                spool::as_json(&b)
            } else {
                Ok(b)
            }
        });
        let body = match body {
            Ok(b) => b,
            Err(err) => {
                tracing::error!(error = %err, seq = entry.seq, reason = "unreadable", "reading a spooled batch; setting it aside in the spool's rejected/ directory");
                let mut s = shared.spool.lock().unwrap();
                let _ = s.reject(entry.seq);
                shared
                    .metrics
                    .push_batches
                    .with_label_values(&["rejected"])
                    .inc();
                shared
                    .metrics
                    .push_rejected
                    .with_label_values(&["unreadable"])
                    .inc();
                update_gauges(&shared.metrics, &s);
                continue;
            }
        };
        let response = tokio::select! {
            () = stop.cancelled() => return,
            r = post(&client, &url, &auth.header, body, send_binary) => r,
        };
        if let Ok(r) = &response {
            let offered = offers_binary(r.headers());
            if offered != binary {
                tracing::info!(
                    binary = offered,
                    "the collector {} the binary batch encoding; sending batches {}",
                    if offered { "reads" } else { "does not offer" },
                    if offered { "in it" } else { "as JSON" }
                );
            }
            binary = offered;
        }
        let sent = match classify(response).await {
            // A binary batch the collector does not read (one rolled back
            // to a version before the encoding): it goes again at once, as
            // JSON, and the next ones too until a collector offers binary.
            Sent::Refused(status, refusal)
                if send_binary
                    && (status == 415
                        || refusal.reason == "malformed"
                        || refusal.reason == "unsupported_media_type") =>
            {
                tracing::warn!(
                    status,
                    reason = %refusal.reason,
                    message = %refusal.message,
                    seq = entry.seq,
                    "the collector did not read a binary batch; sending it again as JSON"
                );
                binary = false;
                shared
                    .metrics
                    .push_batches
                    .with_label_values(&["failed"])
                    .inc();
                continue;
            }
            // The collector took a new token; the token file may have it
            // too. Then send again at once, with it.
            Sent::Unauthorized(why) => {
                if auth.rotate(&settings).await {
                    shared
                        .metrics
                        .push_batches
                        .with_label_values(&["failed"])
                        .inc();
                    tracing::info!(
                        "the collector refused the token; sending with the one now in the token file"
                    );
                    backoff = Duration::ZERO;
                    continue;
                }
                Sent::Retry(why)
            }
            // The spool's seq went back: a new stream, and the batch goes
            // again under it at once (the next time only after a backoff,
            // if no batch was acknowledged since).
            Sent::SeqReused(refusal) => match restream(&shared, &refusal) {
                Ok(()) if !restreamed => {
                    shared
                        .metrics
                        .push_batches
                        .with_label_values(&["failed"])
                        .inc();
                    restreamed = true;
                    backoff = Duration::ZERO;
                    continue;
                }
                Ok(()) => Sent::Retry(format!("HTTP 409: {}", refusal.message)),
                Err(err) => Sent::Retry(format!("starting a new stream: {err}")),
            },
            other => other,
        };
        if matches!(sent, Sent::Acked(_)) {
            restreamed = false;
        }
        if settle(&shared, entry.seq, sent, &mut backoff).is_break() {
            return;
        }
    }
}

/// Answers a 409 `seq_reused`: the spool starts a new stream, its waiting
/// batches rewritten under it.
fn restream(shared: &Shared, refusal: &Refusal) -> std::io::Result<()> {
    let mut s = shared.spool.lock().unwrap();
    let result = s.restream();
    update_gauges(&shared.metrics, &s);
    match result {
        Ok(r) => {
            shared.metrics.push_restreamed.inc();
            tracing::warn!(
                old_stream = %r.old,
                new_stream = %r.new,
                batches = r.batches,
                unreadable = r.unreadable,
                message = %refusal.message,
                "the collector has this stream's seq stored with other content (the spool's seq file went back); sending the waiting batches again under a new stream"
            );
            Ok(())
        }
        Err(err) => {
            tracing::error!(error = %err, stream = %s.stream(), "starting a new stream failed; the batches stay in the spool");
            Err(err)
        }
    }
}

/// The bearer token the sender presents, and the header made of it.
struct Auth {
    token: String,
    header: String,
}

impl Auth {
    fn new(token: String) -> Auth {
        let header = format!("Bearer {token}");
        Auth { token, header }
    }

    /// Takes the token file's token when it is a usable new one; false when
    /// there is none to try.
    async fn rotate(&mut self, settings: &PushSettings) -> bool {
        match rotated_token(settings, &self.token).await {
            Some(new) => {
                *self = Auth::new(new);
                true
            }
            None => false,
        }
    }
}

/// Whether a collector's answer lists the binary encoding among the
/// media types it reads ([`ACCEPT_POST_HEADER`]).
fn offers_binary(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_POST_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(binary::CONTENT_TYPE))
        })
}

/// Posts one spooled batch (gzipped, binary or JSON) with the probe's
/// clock in [`SENT_AT_HEADER`].
fn post(
    client: &reqwest::Client,
    url: &str,
    auth: &str,
    body: Vec<u8>,
    binary: bool,
) -> impl Future<Output = reqwest::Result<reqwest::Response>> {
    let content_type = if binary {
        binary::CONTENT_TYPE
    } else {
        "application/json"
    };
    client
        .post(url)
        .header("authorization", auth)
        .header("content-type", content_type)
        .header("content-encoding", "gzip")
        .header(SENT_AT_HEADER, Timestamp::now().to_string())
        .body(body)
        .send()
}

/// Books the collector's answer to batch `seq` in the spool and the metrics
/// and sets the next backoff. Breaks when the sender is done: the probe is
/// stopping and the collector is not taking batches.
fn settle(shared: &Shared, seq: u64, sent: Sent, backoff: &mut Duration) -> ControlFlow<()> {
    let (spool, metrics) = (&shared.spool, &shared.metrics);
    match sent {
        Sent::Acked(ack) => {
            *backoff = Duration::ZERO;
            let label = if ack.duplicate { "duplicate" } else { "stored" };
            metrics.push_batches.with_label_values(&[label]).inc();
            metrics.push_last_success.set(unix_now());
            let mut s = spool.lock().unwrap();
            if let Err(err) = s.remove(seq) {
                tracing::error!(error = %err, seq, "removing an acknowledged batch");
            }
            update_gauges(metrics, &s);
        }
        Sent::Refused(status, refusal) => {
            *backoff = Duration::ZERO;
            tracing::error!(
                status,
                reason = %refusal.reason,
                message = %refusal.message,
                seq,
                "the collector refused a batch for good; it is kept in the spool's rejected/ directory"
            );
            metrics.push_batches.with_label_values(&["rejected"]).inc();
            metrics
                .push_rejected
                .with_label_values(&[reason_label(&refusal.reason)])
                .inc();
            let mut s = spool.lock().unwrap();
            let _ = s.reject(seq);
            update_gauges(metrics, &s);
        }
        Sent::Deferred {
            status,
            refusal,
            retry_after,
        } => {
            // The collector keeps its door shut for a while (a rate limit,
            // a series cap, its store): the batch stays first in the
            // spool, the ones after it wait behind it, and nothing is lost
            // but what the spool's own bound drops.
            metrics.push_batches.with_label_values(&["failed"]).inc();
            metrics
                .push_deferred
                .with_label_values(&[reason_label(&refusal.reason)])
                .inc();
            if shared.draining.load(Ordering::Acquire) {
                tracing::warn!(status, reason = %refusal.reason, backlog = spool.lock().unwrap().len(), "the collector deferred a batch while stopping; results stay in the spool");
                return ControlFlow::Break(());
            }
            let doubled = (*backoff * 2).clamp(Duration::from_millis(500), MAX_BACKOFF);
            *backoff = retry_after.map_or(doubled, |r| {
                r.clamp(Duration::from_millis(500), MAX_RETRY_AFTER)
            });
            tracing::warn!(
                status,
                reason = %refusal.reason,
                message = %refusal.message,
                seq,
                retry_in = ?backoff,
                backlog = spool.lock().unwrap().len(),
                "the collector asked to send this batch later; it stays in the spool"
            );
        }
        // Answered by the sender (a new stream); if it gets here, a retry.
        Sent::SeqReused(refusal) => {
            let why = format!("HTTP 409: {}", refusal.message);
            return settle(shared, seq, Sent::Retry(why), backoff);
        }
        Sent::Unauthorized(why) | Sent::Retry(why) => {
            metrics.push_batches.with_label_values(&["failed"]).inc();
            if shared.draining.load(Ordering::Acquire) {
                // Stopping and the collector is not taking batches: one
                // try is enough; the spool keeps the rest for next time.
                tracing::warn!(reason = %why, backlog = spool.lock().unwrap().len(), "collector unreachable while stopping; results stay in the spool");
                return ControlFlow::Break(());
            }
            *backoff = (*backoff * 2).clamp(Duration::from_millis(500), MAX_BACKOFF);
            tracing::warn!(reason = %why, retry_in = ?backoff, backlog = spool.lock().unwrap().len(), "collector not reachable; results stay in the spool");
        }
    }
    ControlFlow::Continue(())
}

enum Sent {
    Acked(Ack),
    Refused(u16, Refusal),
    /// 429 or 503: send it again later, after `Retry-After` when given.
    Deferred {
        status: u16,
        refusal: Refusal,
        retry_after: Option<Duration>,
    },
    /// 401: the token is not (or no longer) known to the collector.
    Unauthorized(String),
    /// 409 `seq_reused`: the batch's stream and seq are stored with other
    /// content; it goes again under a new stream.
    SeqReused(Refusal),
    Retry(String),
}

/// The token in `settings.token_file`, read again, if it is usable and is
/// not `current`: the collector refused `current`, and a rotated Secret or
/// file may already hold the new one.
pub(crate) async fn rotated_token(settings: &PushSettings, current: &str) -> Option<String> {
    let path = settings.token_file.clone()?;
    let read = tokio::task::spawn_blocking(move || {
        crate::config::file::read_text(&path, crate::config::file::Kind::Token)
    });
    let new = read.await.ok()?.ok()?.trim().to_string();
    (new.len() >= crate::wire::MIN_TOKEN_LEN && new != current).then_some(new)
}

async fn classify(response: reqwest::Result<reqwest::Response>) -> Sent {
    let response = match response {
        Ok(r) => r,
        Err(err) => return Sent::Retry(err.to_string()),
    };
    let status = response.status().as_u16();
    // Delay-seconds only (RFC 9110, 10.2.3); an HTTP-date is not sent by
    // our collector, and a proxy's is treated as no advice.
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = match text_capped(response, MAX_ANSWER_BYTES).await {
        Ok(t) => t,
        Err(e) => return Sent::Retry(format!("HTTP {status}: {e}")),
    };
    let refusal = |text: String| {
        serde_json::from_str(&text).unwrap_or(Refusal {
            reason: "unknown".into(),
            message: text,
        })
    };
    match status {
        200 => match serde_json::from_str::<Ack>(&text) {
            Ok(ack) => Sent::Acked(ack),
            Err(e) => Sent::Retry(format!("unreadable acknowledgement: {e}")),
        },
        // Malformed, too large, unsupported, invalid: sending it again
        // cannot help.
        400 | 413 | 415 | 422 => Sent::Refused(status, refusal(text)),
        // A token being rotated: the token file may have the new one.
        401 => Sent::Unauthorized(format!("HTTP 401: {text}")),
        // A seq reused with other content: a new stream. Any other
        // conflict is retried.
        409 => match serde_json::from_str::<Refusal>(&text) {
            Ok(r) if r.reason == SEQ_REUSED => Sent::SeqReused(r),
            _ => Sent::Retry(format!("HTTP 409: {text}")),
        },
        // Rate limits and caps, a store that cannot write: the collector
        // says when to come back.
        429 | 503 => Sent::Deferred {
            status,
            refusal: refusal(text),
            retry_after,
        },
        // Anything else (a proxy's 502, a timeout, 408): retry.
        s => Sent::Retry(format!("HTTP {s}: {text}")),
    }
}

/// A collector's refusal reason as a label value: one the wire lists, else
/// `other` (a collector must not be able to grow the probe's series).
fn reason_label(reason: &str) -> &'static str {
    crate::wire::REFUSAL_REASONS
        .iter()
        .find(|r| **r == reason)
        .copied()
        .unwrap_or("other")
}

fn update_gauges(metrics: &Metrics, spool: &Spool) {
    metrics.spool_batches.set(spool.len() as i64);
    metrics.spool_bytes.set(spool.bytes() as i64);
    metrics.spool_results.set(spool.results() as i64);
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// The sender's reading of a 409 from a real (loopback) server.
    async fn answer_409(body: &'static str) -> Sent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = vec![0; 4096];
            let _ = s.read(&mut head).await.unwrap();
            let response = format!(
                "HTTP/1.1 409 Conflict\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(response.as_bytes()).await.unwrap();
        });
        let client = http_client(Duration::from_secs(5), None, false).unwrap();
        let sent = classify(client.get(format!("http://{addr}/")).send().await).await;
        server.await.unwrap();
        sent
    }

    #[tokio::test]
    async fn a_409_starts_a_new_stream_only_when_it_says_seq_reused() {
        let reused = answer_409(r#"{"reason":"seq_reused","message":"stream \"s\" seq 4"}"#).await;
        assert!(
            matches!(&reused, Sent::SeqReused(r) if r.message == "stream \"s\" seq 4"),
            "seq_reused is a new stream"
        );
        for other in [r#"{"reason":"conflict","message":"m"}"#, "not a refusal"] {
            assert!(
                matches!(answer_409(other).await, Sent::Retry(_)),
                "any other 409 is retried: {other}"
            );
        }
    }
}
