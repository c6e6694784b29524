//! What the writer hands on once a transaction is durable: the minute rows
//! as they now stand, the failures and retransmits added, and the series
//! first met. State kept in memory beside the store (the evidence's cells)
//! follows the store from it, and never sees a batch that was rolled back
//! or a retry that stored nothing.

use std::sync::{Arc, OnceLock};

/// A series the writer met for the first time since it started (or since
/// a rollback made it forget its ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewSeries {
    /// Its id.
    pub(crate) series: i64,
    /// Measuring region.
    pub(crate) src_region: String,
    /// Target name.
    pub(crate) target: String,
    /// The target's labels (JSON object), as stored.
    pub(crate) labels: String,
    /// The address; empty for the target's DNS lookups.
    pub(crate) address: String,
}

/// One commit's changes, handed over whole: the sink keeps them without
/// a copy.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    /// The commit's number, from 1: one more than the group of batches
    /// committed before it, kept in the store with it, so that a snapshot
    /// says which commits it holds ([`super::Snapshot::commits`]). 0 for
    /// changes that are not a commit's.
    pub(crate) seq: u64,
    /// Series first met, before any row of theirs.
    pub(crate) series: Vec<NewSeries>,
    /// Every minute row written, as it now stands, back to back ...
    pub(crate) rows: Vec<u8>,
    /// ... and each one's (series, minute, start, end) in `rows`; a row is
    /// read by [`super::Minute::decode`].
    pub(crate) minutes: Vec<(i64, i64, usize, usize)>,
    /// Failures kept in detail: (series, µs since the epoch, outcome).
    pub(crate) failures: Vec<(i64, i64, String)>,
    /// Successful connects that sent a SYN again: (series, µs since the
    /// epoch).
    pub(crate) retransmits: Vec<(i64, i64)>,
}

impl Committed {
    /// About the heap it holds, in bytes (what its vectors hold, not the
    /// room they have).
    pub(crate) fn bytes(&self) -> usize {
        let names: usize = self
            .series
            .iter()
            .map(|s| s.src_region.len() + s.target.len() + s.labels.len() + s.address.len())
            .sum();
        let outcomes: usize = self.failures.iter().map(|f| f.2.len()).sum();
        names
            + self.series.len() * size_of::<NewSeries>()
            + self.rows.len()
            + self.minutes.len() * size_of::<(i64, i64, usize, usize)>()
            + outcomes
            + self.failures.len() * size_of::<(i64, i64, String)>()
            + self.retransmits.len() * size_of::<(i64, i64)>()
    }

    /// Adds a minute row.
    pub(super) fn push_row(&mut self, series: i64, minute: i64, row: &[u8]) {
        let start = self.rows.len();
        self.rows.extend_from_slice(row);
        self.minutes.push((series, minute, start, self.rows.len()));
    }
}

/// The number of the last group of batches committed in `conn`'s view of
/// the store ([`Committed::seq`]); 0 before the first.
pub(super) fn last_seq(conn: &rusqlite::Connection) -> rusqlite::Result<u64> {
    use rusqlite::OptionalExtension;
    let value: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'commits'", [], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Called on the writer's thread after each commit, in commit order.
pub(crate) type Sink = Box<dyn Fn(Committed) + Send + Sync>;

/// Where the writer finds its sink: set once, after the state it feeds
/// was loaded from the store and before the first batch.
pub(super) type SinkSlot = Arc<OnceLock<Sink>>;
