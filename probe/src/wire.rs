//! The push protocol between a probe and the collector.
//!
//! A probe sends [`Batch`]es to `POST /api/v1/results`, gzip-compressed
//! (`Content-Encoding: gzip`) in one of two encodings (see
//! [Encodings](#encodings)), with `Authorization: Bearer <token>`. Each
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
//!
//! # Encodings
//!
//! A batch is sent in one of two encodings, named by the request's
//! `Content-Type`, and either may be gzip-compressed:
//!
//! - JSON (`application/json`, or no `Content-Type`): what every probe
//!   sent before the binary encoding, and what is easiest to read when
//!   debugging.
//! - Binary ([`binary::CONTENT_TYPE`]), the layout below: gzipped, about a
//!   third of the JSON's bytes, and decoded 4x faster (BENCHMARKS.md).
//!
//! A collector that reads the binary encoding says so on every answer to
//! [`RESULTS_PATH`], in an [`ACCEPT_POST_HEADER`] header listing
//! [`binary::CONTENT_TYPE`]; one that does not answers a `Content-Type` it
//! does not know with 415 `unsupported_media_type`. A probe sends JSON
//! until a collector's answer offered binary, and goes back to JSON when a
//! binary batch is refused as malformed or of a media type not taken (a
//! collector rolled back to an older version), sending that batch again as
//! JSON. So any probe works with any collector.
//!
//! # The binary encoding
//!
//! Version 1, written and read by [`binary::encode`] and [`binary::decode`].
//! Columnar: the names and addresses a batch repeats are written once, in
//! tables, and the rounds' values column by column, so that each column
//! holds values alike (and gzip finds them). Primitives:
//!
//! - `u`: an unsigned LEB128 varint, at most 64 bits (10 bytes);
//! - `i`: a signed value as `u`, zigzag-coded (0, -1, 1, -2, ... as 0, 1,
//!   2, 3, ...);
//! - `str`: `u` length, then that many bytes of UTF-8;
//! - `ip`: one byte `4` then 4 bytes, or `6` then 16 (network order);
//! - times are microseconds since the Unix epoch, as `u` or as an `i`
//!   delta.
//!
//! In order:
//!
//! 1. **Header**: the 4 bytes `VNTB` ([`binary::MAGIC`]); one byte, the
//!    layout version ([`binary::FORMAT`], 1); `u` schema
//!    ([`SCHEMA_VERSION`]); one byte of flags (bit 0: `last`; bit 1: a zone
//!    follows; other bits are ignored); `str` src_region; `str` zone (when
//!    bit 1); `str` probe_id; `str` stream; `u` seq; `u` sent_at.
//! 2. **Strings**: `u` count, then each `str`: every target name, host,
//!    label name and value, and outcome label of the batch, once. Columns
//!    and tables refer to them by index.
//! 3. **Targets**: `u` count, then each: `u` name, `u` host (string
//!    indexes), `u` port, `u` label count, then that many pairs of `u`
//!    name, `u` value.
//! 4. **Addresses**: `u` count, then each `ip`: every remote, local and
//!    ICMP sender's address, once.
//! 5. **Endpoints**: `u` count, then each: `u` address index, `u` port:
//!    the remote (address, port) pairs connected to.
//! 6. **Rounds**: `u` count R, then R values of each column in turn:
//!    target index, as a step (below); start, as the change of the gap
//!    (`i`: the gap from the round before, or for the first from
//!    sent_at, less the gap before it, 0 for the first); lookup (`u`: 0
//!    for none, else 1 + the string index of its outcome). Then, for the
//!    rounds with a lookup only, its duration (`u`, µs) and then its
//!    address count (`u`). Then each round's attempt count (`u`).
//! 7. **Attempts**: A values (A, the attempt counts summed) of each column
//!    in turn, in round order: endpoint index, as a step; local address
//!    (`u`: 0 for none, else 1 + address index), then for the attempts
//!    with one only, its port (2 bytes, little-endian); start (`i`, since
//!    its round's start); outcome (`u`, string index of its label); RTT
//!    (`u`: 0 for none, else 1 + µs); duration (`i`: µs less the RTT, or
//!    less 0 without one); SYN retransmits (`u`); errno (`u`: 0 for none,
//!    else 1 + the errno zigzag-coded); ICMP sender (`u`: 0 for none,
//!    else 1 + address index).
//!
//!    A step codes an index as `i`: the index less (the index before it +
//!    1), the first less 0. A schedule's rounds come in the same order
//!    batch after batch and evenly spread, so steps and changes of gap
//!    are mostly 0, which gzip makes next to nothing of. Differences are
//!    taken modulo 2^64, so every value reads back exact.
//! 8. **Extensions**: `u` count, then each: `u` tag, `u` length, that
//!    many bytes. Fields a newer sender adds go here, under tags of their
//!    own; a reader skips the tags it does not know. Version 1 defines
//!    none.
//!
//! Nothing may follow. A reader refuses a count larger than the bytes
//! left could hold, and an index outside its table. Outcome labels are
//! those of [`crate::outcome`], as in JSON.

pub mod binary;

use serde::{Deserialize, Serialize};

use crate::result::{Identity, RoundResult, Timestamp};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Most addresses one round may try: a collector refuses a round with
/// more attempts.
pub const MAX_ATTEMPTS_PER_ROUND: usize = 64;

/// The shortest bearer token either side accepts.
pub const MIN_TOKEN_LEN: usize = 16;

/// The path batches are posted to.
pub const RESULTS_PATH: &str = "/api/v1/results";

/// The collector's fleet inventory endpoint: `GET` it with
/// `?`[`TARGETS_REGION_PARAM`]`=<region>` for that region's file_sd groups.
pub const TARGETS_PATH: &str = "/api/v1/targets";

/// The query parameter of [`TARGETS_PATH`] naming the asking probe's region.
pub const TARGETS_REGION_PARAM: &str = "src_region";

/// The answer header in which a collector lists the batch media types it
/// reads (as RFC 9110 servers list what a POST takes): a probe sends
/// [`binary::CONTENT_TYPE`] only to a collector listing it.
pub const ACCEPT_POST_HEADER: &str = "accept-post";

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
    "unsupported_media_type",
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
    "evidence_loading",
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
