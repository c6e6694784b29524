//! The push protocol between a probe and the collector.
//!
//! A probe sends [`Batch`]es to `POST /api/v1/results`: JSON, gzip-compressed
//! (`Content-Encoding: gzip`), with `Authorization: Bearer <token>`. Each
//! batch carries the probe's identity, a stream id and a sequence number. The collector
//! stores the batch durably, then answers 200 with an [`Ack`]. A batch that
//! was already stored (a retry after a lost answer) is acknowledged again,
//! as a duplicate, and not counted twice. A refused batch gets a 4xx with a
//! [`Refusal`] and nothing of it is stored. A batch under a stored (probe,
//! stream, seq) whose content differs is refused 409 [`SEQ_REUSED`]: the
//! probe then sends it again under a new stream.
//!
//! # Compatibility
//!
//! One rule, at every level of a batch: a reader ignores the fields it does
//! not know, and a field a newer sender adds is optional (absent means what
//! an older sender meant). So an older collector keeps a newer probe's
//! batches, and a newer collector an older probe's. A change of meaning
//! bumps [`SCHEMA_VERSION`], the one thing a reader refuses
//! (`unknown_schema`). Upgrade collectors before probes all the same: an
//! older collector drops what it does not know (a newer probe's
//! `icmp_from`, say) while it stores the rest.

use serde::{Deserialize, Serialize};

use crate::result::{Identity, RoundResult, Timestamp};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The shortest bearer token either side accepts.
pub const MIN_TOKEN_LEN: usize = 16;

/// The path batches are posted to.
pub const RESULTS_PATH: &str = "/api/v1/results";

/// The collector's fleet inventory endpoint: `GET` it with
/// `?`[`TARGETS_REGION_PARAM`]`=<region>` for that region's file_sd groups.
pub const TARGETS_PATH: &str = "/api/v1/targets";

/// The query parameter of [`TARGETS_PATH`] naming the asking probe's region.
pub const TARGETS_REGION_PARAM: &str = "src_region";

/// The request header carrying the probe's clock at the moment of sending:
/// the collector estimates the probe's clock offset from it, which a
/// batch's own `sent_at` (its sealing time) cannot do for a backfill.
pub const SENT_AT_HEADER: &str = "x-vantage-sent-at";

/// A probe's results, sent together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// [`SCHEMA_VERSION`] of the sender.
    pub schema: u32,
    /// Who measured.
    pub probe: Identity,
    /// The sender's batch stream: a random id made when the probe's spool
    /// is created. A probe that loses its spool starts a new stream, so its
    /// restarted sequence numbers are never mistaken for retries.
    pub stream: String,
    /// Sequence number within the stream, increasing by one per new batch;
    /// a retry reuses its number.
    pub seq: u64,
    /// The probe's clock when the batch was (first) sent.
    pub sent_at: Timestamp,
    /// The rounds, oldest first.
    pub results: Vec<RoundResult>,
    /// The probe is stopping: this is its last batch until it starts
    /// again. The collector then shows it `stopped`, not `silent`: a probe
    /// removed in a rollout is not a blind spot. Absent (false) otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub last: bool,
}

/// The collector's answer to a stored batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The `seq` of the batch acknowledged.
    pub seq: u64,
    /// Results stored by this request (0 for a duplicate).
    pub stored: u32,
    /// The batch had been stored before; nothing was added.
    pub duplicate: bool,
}

/// The reason of a 409: the batch's (probe, stream, seq) was stored before
/// with other content (a `seq` file restored from an older copy). The
/// probe answers it by starting a new stream and sending again.
pub const SEQ_REUSED: &str = "seq_reused";

/// Every reason code a collector refuses a request with (the `reason` of
/// a [`Refusal`]). The probe labels its refusal counters with these, and
/// anything else as `other`, so that a collector can never grow the
/// probe's series; the collector's test keeps the two lists equal.
pub const REFUSAL_REASONS: &[&str] = &[
    "missing_token",
    "unknown_token",
    "wrong_region",
    "wrong_probe",
    "body_too_large",
    "body_timeout",
    "malformed",
    "unsupported_encoding",
    "unknown_schema",
    "invalid_value",
    "too_many_results",
    "bad_timestamp",
    "rate_limited",
    "too_many_targets",
    "too_many_series_region",
    "too_many_series_fleet",
    SEQ_REUSED,
    "unknown_version",
    "bad_query",
    "no_such_incident",
    "no_inventory",
    "store_unavailable",
    "internal",
];

/// Why a request was refused; the status code says which class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// A bounded reason code (also the `reason` label of the refusal counter).
    pub reason: String,
    /// What was wrong, for a person.
    pub message: String,
}
