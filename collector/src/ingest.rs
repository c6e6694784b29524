//! Taking in a batch: who may send it, whether it is sound, whether its
//! probe is within its caps, then the store, then the live fleet. Every
//! refusal leaves the store untouched; an accepted batch is on disk before
//! it is acknowledged, and in the fleet's live state (so on `/metrics`)
//! only once it is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use vantage_probe::wire::{Ack, Batch};

use crate::auth::{Denied, Tokens};
use crate::config::{IngestLimits, TokenBinding};
use crate::decode::{Caps, DecodeError, Decoders, Encoding, Format};
use crate::fleet::{Fleet, OverBudget};
use crate::metrics::Metrics;
use crate::store::{Outcome, Store, StoreError};
use crate::validate::{self, Invalid};

/// Why a batch was not stored.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Its token may not speak for its probe.
    #[error("{message}")]
    Denied {
        /// Why.
        denied: Denied,
        /// What the token is bound to, and what the batch claimed.
        message: String,
    },
    /// It failed a check.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// Its probe sends faster than `limits.max_batches_per_second`.
    #[error("more than {0} batches per second from this probe")]
    RateLimited(u32),
    /// Its probe would report too many distinct targets, or its region
    /// expose too many series: the probe keeps it and sends it later.
    #[error(transparent)]
    OverBudget(#[from] OverBudget),
    /// Its (probe, stream, seq) was stored before with other content: the
    /// probe's sequence counter went back. The probe sends it again under
    /// a new stream.
    #[error(
        "stream {stream:?} seq {seq} was stored before with other content; send it under a new stream"
    )]
    SeqReused {
        /// The batch's stream.
        stream: String,
        /// Its seq.
        seq: u64,
    },
    /// The store could not take it: nothing of it was kept; retry it.
    #[error("the batch was not stored; retry it")]
    Store(#[source] StoreError),
}

/// What ingest needs: the limits, the tokens, the fleet, the store, its
/// counters.
#[derive(Debug)]
pub struct Ingest {
    limits: IngestLimits,
    tokens: Arc<Tokens>,
    fleet: Arc<Fleet>,
    store: Store,
    metrics: Metrics,
    rates: RateLimits,
    decoders: Decoders,
}

impl Ingest {
    /// Ingest into `store` and `fleet` within `limits`; the fleet's series
    /// budget is shared by the regions `tokens` name.
    pub fn new(
        limits: IngestLimits,
        tokens: Arc<Tokens>,
        fleet: Arc<Fleet>,
        store: Store,
        metrics: Metrics,
    ) -> Ingest {
        Ingest {
            limits,
            tokens,
            fleet,
            store,
            metrics,
            rates: RateLimits::default(),
            decoders: Decoders::new(limits.max_concurrent_decodes),
        }
    }

    /// The limits batches are held to.
    pub fn limits(&self) -> &IngestLimits {
        &self.limits
    }

    /// A pushed body, written as `format` and coded as `encoding`, as a
    /// batch: decoded off the async threads, at most
    /// `limits.max_concurrent_decodes` at once, within
    /// `limits.max_decompressed_bytes` (and, binary,
    /// `limits.max_results_per_batch` rounds).
    pub async fn decode(
        &self,
        format: Format,
        encoding: Encoding,
        body: impl AsRef<[u8]> + Send + 'static,
    ) -> Result<Batch, DecodeError> {
        let caps = Caps {
            max_decompressed: self.limits.max_decompressed_bytes,
            max_results: self.limits.max_results_per_batch,
        };
        self.decoders.decode(format, encoding, body, caps).await
    }

    /// Checks `batch` (sent with `binding`'s token), stores it durably and
    /// records it in the fleet. `probe_clock` is the probe's clock when it
    /// sent the request.
    pub async fn accept(
        &self,
        binding: &TokenBinding,
        batch: Batch,
        received: SystemTime,
        probe_clock: SystemTime,
    ) -> Result<Ack, Refused> {
        Tokens::authorize(binding, &batch.probe.src_region, &batch.probe.probe_id).map_err(
            |denied| Refused::Denied {
                denied,
                message: format!(
                    "this token reports for region {:?}{}, not for probe {:?} in {:?}",
                    binding.src_region,
                    binding
                        .probe_ids
                        .as_ref()
                        .map_or(String::new(), |ids| format!(" probes {ids:?}")),
                    batch.probe.probe_id,
                    batch.probe.src_region
                ),
            },
        )?;
        validate::check(&batch, &self.limits, received)?;
        let per_second = self.limits.max_batches_per_second;
        if !self
            .rates
            .allow(&batch.probe.src_region, &batch.probe.probe_id, per_second)
        {
            return Err(Refused::RateLimited(per_second));
        }
        self.fleet.admit(&batch, self.tokens.regions(), received)?;
        let oldest = batch
            .results
            .iter()
            .map(|r| r.started_at.system_time())
            .min();
        let (ack, batch) = match self.store.submit(batch, received, probe_clock).await {
            Ok((Outcome::Acked(ack), batch)) => (ack, batch),
            Ok((Outcome::SeqReused, batch)) => {
                tracing::warn!(
                    src_region = %batch.probe.src_region,
                    probe = %batch.probe.probe_id,
                    stream = %batch.stream,
                    seq = batch.seq,
                    "a batch reuses a stored seq with other content; refused"
                );
                return Err(Refused::SeqReused {
                    stream: batch.stream,
                    seq: batch.seq,
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "storing a batch");
                self.metrics.store_errors.inc();
                return Err(Refused::Store(e));
            }
        };
        if !ack.duplicate {
            self.fleet.record(&batch, received, probe_clock);
        }
        let result = if ack.duplicate { "duplicate" } else { "stored" };
        self.metrics.batches.with_label_values(&[result]).inc();
        self.metrics.results.inc_by(u64::from(ack.stored));
        if let Some(oldest) = oldest.filter(|_| !ack.duplicate) {
            let age = received.duration_since(oldest).unwrap_or_default();
            self.metrics.result_delay.observe(age.as_secs_f64());
        }
        Ok(ack)
    }
}

/// Per-probe token buckets: `max_batches_per_second` is both the burst and
/// the refill rate.
#[derive(Debug, Default)]
struct RateLimits {
    /// By (src_region, probe id): a probe is its region's.
    buckets: Mutex<HashMap<(String, String), (f64, Instant)>>,
}

/// Probes tracked at most; beyond this the table starts over (a token can
/// name probe ids freely, so the table must not grow without bound).
const MAX_TRACKED_PROBES: usize = 100_000;

impl RateLimits {
    fn allow(&self, region: &str, probe: &str, per_second: u32) -> bool {
        let mut buckets = self.buckets.lock().unwrap();
        let key = (region.to_string(), probe.to_string());
        if buckets.len() >= MAX_TRACKED_PROBES && !buckets.contains_key(&key) {
            buckets.clear();
        }
        let now = Instant::now();
        let cap = f64::from(per_second);
        let (tokens, last) = buckets.entry(key).or_insert((cap, now));
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
