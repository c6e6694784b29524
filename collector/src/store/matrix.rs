//! The evidence's reads: every series' minutes over the baseline and the
//! recent window, and the failures kept in detail, streamed to the caller
//! so that a fleet's worth of rows is never held twice.

use rusqlite::params;

use super::rollup::{ConnectMinute, DnsMinute};
use super::{Snapshot, StoreError};

/// A stored minute, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Minute {
    /// Connect attempts to one address.
    Connect(ConnectMinute),
    /// DNS lookups of one name.
    Dns(DnsMinute),
}

/// One minute of one series.
#[derive(Debug)]
pub struct MinuteRow<'a> {
    /// The series' id: the same for every minute of it in one snapshot.
    pub series: i64,
    /// Minutes since the epoch.
    pub minute: i64,
    /// Measuring region.
    pub src_region: &'a str,
    /// Target name.
    pub target: &'a str,
    /// The target's labels (JSON object).
    pub labels: &'a str,
    /// The address; empty for the target's DNS lookups.
    pub address: &'a str,
    /// What the minute holds.
    pub data: Minute,
}

impl Minute {
    /// Adds a minute of the same kind (one of another kind is a bug of
    /// the caller's, and adds nothing).
    pub fn add(&mut self, other: &Minute) {
        match (self, other) {
            (Minute::Connect(a), Minute::Connect(b)) => a.merge(b),
            (Minute::Dns(a), Minute::Dns(b)) => a.merge(b),
            _ => debug_assert!(false, "minutes of two kinds added"),
        }
    }

    /// The stored row.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Minute::Connect(m) => m.encode(),
            Minute::Dns(m) => m.encode(),
        }
    }

    /// Decodes a stored row of either kind (its first byte says which).
    pub fn decode(bytes: &[u8]) -> Result<Minute, super::rollup::Malformed> {
        ConnectMinute::decode(bytes)
            .map(Minute::Connect)
            .or_else(|_| DnsMinute::decode(bytes).map(Minute::Dns))
    }
}

impl Snapshot<'_> {
    /// The number of the last group of batches this snapshot holds
    /// ([`super::committed::Committed::seq`]); 0 before the first.
    pub(crate) fn commits(&self) -> Result<u64, StoreError> {
        super::committed::last_seq(self.conn).map_err(|e| self.err(e))
    }

    /// Visits every minute of every series from `first_minute` to
    /// `last_minute`, both included, in no particular order. A row whose
    /// data does not decode is passed over.
    pub fn minutes(
        &self,
        first_minute: i64,
        last_minute: i64,
        mut visit: impl FnMut(MinuteRow<'_>),
    ) -> Result<(), StoreError> {
        let mut run = || -> rusqlite::Result<()> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT m.series_id, m.minute, m.data, s.src_region, t.name, t.labels, s.address
                 FROM minutes m JOIN series s ON s.id = m.series_id JOIN targets t ON t.id = s.target_id
                 WHERE m.minute >= ?1 AND m.minute <= ?2",
            )?;
            let mut rows = stmt.query(params![first_minute, last_minute])?;
            while let Some(r) = rows.next()? {
                let address = r.get_ref(6)?.as_str()?;
                let blob = r.get_ref(2)?.as_blob()?;
                let data = if address.is_empty() {
                    DnsMinute::decode(blob).map(Minute::Dns)
                } else {
                    ConnectMinute::decode(blob).map(Minute::Connect)
                };
                let Ok(data) = data else {
                    continue;
                };
                visit(MinuteRow {
                    series: r.get(0)?,
                    minute: r.get(1)?,
                    src_region: r.get_ref(3)?.as_str()?,
                    target: r.get_ref(4)?.as_str()?,
                    labels: r.get_ref(5)?.as_str()?,
                    address,
                    data,
                });
            }
            Ok(())
        };
        run().map_err(|e| self.err(e))
    }

    /// Visits the failures kept in detail from `from_us` to `to_us`, both
    /// included, oldest first: (series, µs since the epoch, outcome label).
    pub fn failure_outcomes(
        &self,
        from_us: i64,
        to_us: i64,
        mut visit: impl FnMut(i64, i64, &str),
    ) -> Result<(), StoreError> {
        let mut run = || -> rusqlite::Result<()> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT series_id, at_us, outcome FROM failures WHERE at_us >= ?1 AND at_us <= ?2 ORDER BY at_us, rowid",
            )?;
            let mut rows = stmt.query(params![from_us, to_us])?;
            while let Some(r) = rows.next()? {
                visit(r.get(0)?, r.get(1)?, r.get_ref(2)?.as_str()?);
            }
            Ok(())
        };
        run().map_err(|e| self.err(e))
    }

    /// Visits every successful connect with SYN retransmits from `from_us`
    /// to `to_us`, oldest first: (series, at_us, retransmits).
    pub fn retransmits(
        &self,
        from_us: i64,
        to_us: i64,
        mut visit: impl FnMut(i64, i64, u64),
    ) -> Result<(), StoreError> {
        let mut run = || -> rusqlite::Result<()> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT series_id, at_us, syn_retransmits FROM retransmits WHERE at_us >= ?1 AND at_us <= ?2 ORDER BY at_us, rowid",
            )?;
            let mut rows = stmt.query(params![from_us, to_us])?;
            while let Some(r) = rows.next()? {
                visit(r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.max(0) as u64);
            }
            Ok(())
        };
        run().map_err(|e| self.err(e))
    }
}
