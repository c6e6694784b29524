//! The connect minutes of each region and target group, summed, by minute
//! and by hour: what a region x group matrix reads. A report over a day
//! of a fleet of a thousand targets reads a few thousand of these rows,
//! not the hundreds of millions of its series' minutes.
//!
//! The writer adds to them in the transaction of the minutes they sum
//! ([`merge`]), and counts in `meta` (`groups_seq`) the last commit they
//! hold. A store whose count differs from its commits' (one made before
//! these tables, or written since by a build that did not keep them) has
//! them rebuilt from its minutes when it opens ([`rebuild_if_behind`]).

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use super::rollup::ConnectMinute;
use super::{Snapshot, StoreError, malformed};
use crate::groups::group_of;

/// Minutes in an hour row.
pub(crate) const HOUR_MINUTES: i64 = 60;

/// (minute, region, group) to what the minute adds to that row.
pub(super) type Deltas = HashMap<(i64, Arc<str>, Arc<str>), ConnectMinute>;

/// Adds `from` into `into`.
pub(super) fn add(into: &mut Deltas, from: Deltas) {
    if into.is_empty() {
        *into = from;
        return;
    }
    for (key, m) in from {
        match into.get_mut(&key) {
            Some(have) => have.merge(&m),
            None => {
                into.insert(key, m);
            }
        }
    }
}

/// Merges `deltas` into the minute rows and the hour rows, and notes that
/// they hold commit `seq`. In the caller's transaction.
pub(super) fn merge(tx: &Connection, deltas: Deltas, seq: u64) -> rusqlite::Result<()> {
    let mut hours: Deltas = HashMap::new();
    for ((minute, region, group), m) in &deltas {
        let key = (
            minute.div_euclid(HOUR_MINUTES),
            region.clone(),
            group.clone(),
        );
        hours.entry(key).or_default().merge(m);
    }
    merge_into(tx, "group_minutes", "minute", deltas)?;
    merge_into(tx, "group_hours", "hour", hours)?;
    set_seq(tx, seq)
}

fn merge_into(tx: &Connection, table: &str, column: &str, deltas: Deltas) -> rusqlite::Result<()> {
    let mut read = tx.prepare_cached(&format!(
        "SELECT data FROM {table} WHERE {column} = ?1 AND src_region = ?2 AND grp = ?3"
    ))?;
    let mut write = tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO {table} ({column}, src_region, grp, data) VALUES (?1, ?2, ?3, ?4)"
    ))?;
    for ((at, region, group), mut m) in deltas {
        let old: Option<Vec<u8>> = read
            .query_row(params![at, &*region, &*group], |r| r.get(0))
            .optional()?;
        if let Some(old) = old {
            m.merge(&ConnectMinute::decode(&old).map_err(malformed)?);
        }
        write.execute(params![at, &*region, &*group, m.encode()])?;
    }
    Ok(())
}

fn set_seq(tx: &Connection, seq: u64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('groups_seq', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![seq.to_string()],
    )?;
    Ok(())
}

/// Rebuilds the group rows from the minutes when they do not hold the
/// store's last commit (`commits`); returns whether it did. One pass over
/// the minutes, in their order, holding one minute's rows and one hour's
/// at a time.
pub(super) fn rebuild_if_behind(conn: &Connection, commits: u64) -> rusqlite::Result<bool> {
    let seq: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'groups_seq'", [], |r| {
            r.get(0)
        })
        .optional()?;
    if seq.and_then(|s| s.parse::<u64>().ok()) == Some(commits) {
        return Ok(false);
    }
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch("DELETE FROM group_minutes; DELETE FROM group_hours;")?;
    let mut groups: HashMap<i64, Arc<str>> = HashMap::new();
    let mut regions: HashMap<String, Arc<str>> = HashMap::new();
    let mut minute_rows: Deltas = HashMap::new();
    let mut hour_rows: Deltas = HashMap::new();
    let (mut minute_at, mut hour_at) = (i64::MIN, i64::MIN);
    {
        let mut stmt = tx.prepare(
            "SELECT m.minute, s.src_region, t.id, t.name, t.labels, m.data
             FROM minutes m JOIN series s ON s.id = m.series_id JOIN targets t ON t.id = s.target_id
             WHERE s.address <> '' ORDER BY m.minute",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let minute: i64 = r.get(0)?;
            if minute != minute_at {
                merge_into(
                    &tx,
                    "group_minutes",
                    "minute",
                    std::mem::take(&mut minute_rows),
                )?;
                minute_at = minute;
            }
            let hour = minute.div_euclid(HOUR_MINUTES);
            if hour != hour_at {
                merge_into(&tx, "group_hours", "hour", std::mem::take(&mut hour_rows))?;
                hour_at = hour;
            }
            let Ok(data) = ConnectMinute::decode(r.get_ref(5)?.as_blob()?) else {
                continue;
            };
            let region = r.get_ref(1)?.as_str()?;
            let region = match regions.get(region) {
                Some(a) => a.clone(),
                None => regions
                    .entry(region.to_string())
                    .or_insert_with(|| region.into())
                    .clone(),
            };
            let group = match groups.get(&r.get::<_, i64>(2)?) {
                Some(g) => g.clone(),
                None => {
                    let g: Arc<str> = group_of(r.get_ref(3)?.as_str()?, r.get_ref(4)?.as_str()?)
                        .0
                        .into();
                    groups.insert(r.get(2)?, g.clone());
                    g
                }
            };
            hour_rows
                .entry((hour, region.clone(), group.clone()))
                .or_default()
                .merge(&data);
            minute_rows
                .entry((minute, region, group))
                .or_default()
                .merge(&data);
        }
    }
    merge_into(&tx, "group_minutes", "minute", minute_rows)?;
    merge_into(&tx, "group_hours", "hour", hour_rows)?;
    set_seq(&tx, commits)?;
    tx.commit()?;
    Ok(true)
}

/// One row of a region and group: a minute's, or an hour's (its first
/// minute then is a multiple of [`HOUR_MINUTES`]).
#[derive(Debug)]
pub(crate) struct GroupRow<'a> {
    /// The first minute it covers (minutes since the epoch).
    pub minute: i64,
    /// Measuring region.
    pub src_region: &'a str,
    /// Target group.
    pub group: &'a str,
    /// Its targets' connect minutes, summed.
    pub data: ConnectMinute,
}

impl Snapshot<'_> {
    /// Visits the group rows that together cover the minutes from
    /// `first_minute` (included) to `end_minute` (excluded), of `region`
    /// or of every region: hour rows for the hours wholly inside, minute
    /// rows for the rest. Ordered by minute, region and group; a row whose
    /// data does not decode is passed over.
    pub(crate) fn group_rows(
        &self,
        first_minute: i64,
        end_minute: i64,
        region: Option<&str>,
        mut visit: impl FnMut(GroupRow<'_>),
    ) -> Result<(), StoreError> {
        // Hours wholly inside [first, end).
        let first_hour = first_minute.div_euclid(HOUR_MINUTES)
            + i64::from(first_minute.rem_euclid(HOUR_MINUTES) != 0);
        let end_hour = end_minute.div_euclid(HOUR_MINUTES);
        if first_hour >= end_hour {
            return self.group_minutes(first_minute, end_minute, region, visit);
        }
        self.group_minutes(first_minute, first_hour * HOUR_MINUTES, region, &mut visit)?;
        self.visit_group_table(
            "group_hours",
            "hour",
            (first_hour, end_hour),
            region,
            HOUR_MINUTES,
            &mut visit,
        )?;
        self.group_minutes(end_hour * HOUR_MINUTES, end_minute, region, visit)
    }

    /// Visits the minute rows of every group from `first_minute`
    /// (included) to `end_minute` (excluded), of `region` or of every
    /// region, ordered by minute, region and group.
    pub(crate) fn group_minutes(
        &self,
        first_minute: i64,
        end_minute: i64,
        region: Option<&str>,
        mut visit: impl FnMut(GroupRow<'_>),
    ) -> Result<(), StoreError> {
        if first_minute >= end_minute {
            return Ok(());
        }
        self.visit_group_table(
            "group_minutes",
            "minute",
            (first_minute, end_minute),
            region,
            1,
            &mut visit,
        )
    }

    fn visit_group_table(
        &self,
        table: &str,
        column: &str,
        (first, end): (i64, i64),
        region: Option<&str>,
        minutes: i64,
        visit: &mut impl FnMut(GroupRow<'_>),
    ) -> Result<(), StoreError> {
        let mut run = || -> rusqlite::Result<()> {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT {column}, src_region, grp, data FROM {table}
                 WHERE {column} >= ?1 AND {column} < ?2 AND (?3 = '' OR src_region = ?3)
                 ORDER BY {column}, src_region, grp"
            ))?;
            let mut rows = stmt.query(params![first, end, region.unwrap_or("")])?;
            while let Some(r) = rows.next()? {
                let Ok(data) = ConnectMinute::decode(r.get_ref(3)?.as_blob()?) else {
                    continue;
                };
                visit(GroupRow {
                    minute: r.get::<_, i64>(0)? * minutes,
                    src_region: r.get_ref(1)?.as_str()?,
                    group: r.get_ref(2)?.as_str()?,
                    data,
                });
            }
            Ok(())
        };
        run().map_err(|e| self.err(e))
    }
}
