//! Reads of named series, key by key: the minutes of one region's or one
//! target's series over a window cost what they hold, not what the fleet
//! holds. The minutes are keyed by time first (windows of the whole fleet,
//! and expiry, read them in that order); a read by name finds its series
//! first, then looks each of their minutes up by its key.

use std::collections::BTreeSet;

use rusqlite::params;

use super::{Snapshot, StoreError};

/// Which series of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Its connects, one series per address.
    Connect,
    /// Its DNS lookups.
    Dns,
    /// Both.
    Any,
}

/// Which series to read: those of some targets or of one region (or both).
pub(super) struct Named<'a> {
    pub(super) targets: Option<&'a BTreeSet<String>>,
    pub(super) region: Option<&'a str>,
    pub(super) kind: Kind,
}

impl<'a> Named<'a> {
    /// The series of `targets`, of `region` or of every region.
    pub(super) fn targets(
        targets: &'a BTreeSet<String>,
        region: Option<&'a str>,
        kind: Kind,
    ) -> Named<'a> {
        Named {
            targets: Some(targets),
            region,
            kind,
        }
    }
}

/// A series found by name.
pub(super) struct SeriesOf {
    pub(super) id: i64,
    pub(super) src_region: String,
    pub(super) probe_id: String,
    pub(super) target_id: i64,
    pub(super) target: String,
    pub(super) labels: String,
    /// Empty for the DNS series.
    pub(super) address: String,
}

impl Snapshot<'_> {
    /// The series `named` asks for, ordered by region, target, address and
    /// probe.
    pub(super) fn series_of(&self, named: &Named<'_>) -> Result<Vec<SeriesOf>, StoreError> {
        const COLUMNS: &str = "s.id, s.src_region, s.probe_id, t.id, t.name, t.labels, s.address
             FROM targets t JOIN series s ON s.target_id = t.id";
        let run = || -> rusqlite::Result<Vec<SeriesOf>> {
            // Each by an index: a target by its name (then its series by
            // their target), a region by the series' key.
            let (sql, keys): (String, Vec<&str>) = match (named.targets, named.region) {
                (Some(targets), _) => (
                    format!("SELECT {COLUMNS} WHERE t.name = ?1"),
                    targets.iter().map(String::as_str).collect(),
                ),
                (None, Some(region)) => (
                    format!("SELECT {COLUMNS} WHERE s.src_region = ?1"),
                    vec![region],
                ),
                (None, None) => (format!("SELECT {COLUMNS} WHERE ?1 = ''"), vec![""]),
            };
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let mut out = Vec::new();
            for key in keys {
                let rows = stmt.query_map(params![key], |r| {
                    Ok(SeriesOf {
                        id: r.get(0)?,
                        src_region: r.get(1)?,
                        probe_id: r.get(2)?,
                        target_id: r.get(3)?,
                        target: r.get(4)?,
                        labels: r.get(5)?,
                        address: r.get(6)?,
                    })
                })?;
                for s in rows {
                    let s = s?;
                    let kind_ok = match named.kind {
                        Kind::Any => true,
                        Kind::Connect => !s.address.is_empty(),
                        Kind::Dns => s.address.is_empty(),
                    };
                    if kind_ok && named.region.is_none_or(|r| r == s.src_region) {
                        out.push(s);
                    }
                }
            }
            out.sort_by(|a, b| {
                (&a.src_region, &a.target, &a.address, &a.probe_id, a.id).cmp(&(
                    &b.src_region,
                    &b.target,
                    &b.address,
                    &b.probe_id,
                    b.id,
                ))
            });
            Ok(out)
        };
        run().map_err(|e| self.err(e))
    }

    /// Visits the stored minutes of `series` from `first_minute` to
    /// `end_minute` (excluded), minute by minute and in the order given,
    /// until `visit` says stop (`false`): one lookup by key each, within
    /// the minutes the store holds.
    pub(super) fn seek_minutes(
        &self,
        first_minute: i64,
        end_minute: i64,
        series: &[SeriesOf],
        mut visit: impl FnMut(i64, &SeriesOf, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        if series.is_empty() {
            return Ok(());
        }
        let mut run = || -> rusqlite::Result<()> {
            // Apart: SQLite reads one end of the key for a lone min() or
            // max(), and the whole table for both in one statement.
            let end = |sql: &str| -> rusqlite::Result<Option<i64>> {
                self.conn.query_row(sql, [], |r| r.get(0))
            };
            let oldest = end("SELECT min(minute) FROM minutes")?;
            let newest = end("SELECT max(minute) FROM minutes")?;
            let (Some(oldest), Some(newest)) = (oldest, newest) else {
                return Ok(());
            };
            let mut stmt = self
                .conn
                .prepare_cached("SELECT data FROM minutes WHERE minute = ?1 AND series_id = ?2")?;
            for minute in first_minute.max(oldest)..end_minute.min(newest.saturating_add(1)) {
                for s in series {
                    let mut rows = stmt.query(params![minute, s.id])?;
                    if let Some(r) = rows.next()?
                        && !visit(minute, s, r.get_ref(0)?.as_blob()?)
                    {
                        return Ok(());
                    }
                }
            }
            Ok(())
        };
        run().map_err(|e| self.err(e))
    }
}
