//! The fleet's probes and per-(region, target) totals, as the collector
//! rebuilds its live state from them on start.

use std::time::SystemTime;

use super::{Snapshot, Store, StoreError};
use crate::time::from_us;

/// A probe as the store remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRecord {
    pub probe_id: String,
    pub src_region: String,
    /// Its zone, if it said.
    pub zone: Option<String>,
    /// When its first batch arrived.
    pub first_seen: SystemTime,
    /// When its last batch arrived.
    pub last_seen: SystemTime,
    /// Its clock minus ours at its last batch, microseconds.
    pub clock_offset_us: i64,
    /// Batches stored.
    pub batches: u64,
    /// Results stored.
    pub results: u64,
    /// Whether its newest batch said it was stopping.
    pub stopped: bool,
}

impl Snapshot<'_> {
    /// Every probe ever stored.
    pub fn probes(&self) -> Result<Vec<ProbeRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT probe_id, src_region, zone, first_seen_us, last_seen_us, clock_offset_us, batches, results, stopped
                 FROM probes ORDER BY src_region, probe_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ProbeRecord {
                    probe_id: r.get(0)?,
                    src_region: r.get(1)?,
                    zone: r.get(2)?,
                    first_seen: from_us(r.get(3)?),
                    last_seen: from_us(r.get(4)?),
                    clock_offset_us: r.get(5)?,
                    batches: r.get::<_, i64>(6)? as u64,
                    results: r.get::<_, i64>(7)? as u64,
                    stopped: r.get(8)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The target names each probe has reported, as (src_region, probe
    /// id, target), for the cardinality cap.
    pub fn probe_targets(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT DISTINCT s.src_region, s.probe_id, t.name FROM series s JOIN targets t ON t.id = s.target_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Batches stored (receipts kept).
    #[cfg(test)]
    pub(super) fn receipts(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM receipts", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }
}

impl Store {
    /// Every probe ever stored.
    pub fn probes(&self) -> Result<Vec<ProbeRecord>, StoreError> {
        self.read(|s| s.probes())
    }

    /// The target names each probe has reported, as (src_region, probe
    /// id, target), for the cardinality cap.
    pub fn probe_targets(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        self.read(|s| s.probe_targets())
    }
}
