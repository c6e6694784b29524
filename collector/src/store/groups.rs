//! The connect and lookup minutes of each region and target group,
//! summed, by minute and by hour: what a region x group matrix, and a
//! region's lookups of every target, read. A report over a day of a fleet
//! of a thousand targets reads a few thousand of these rows, not the
//! hundreds of millions of its series' minutes.
//!
//! The writer adds to them in the transaction of the minutes they sum
//! ([`merge`]), and counts in `meta` (`groups_seq`) the last commit they
//! hold. A store whose count differs from its commits' (one made before
//! these tables, or written since by a build that did not keep them) has
//! them rebuilt from its minutes when it opens ([`rebuild_if_behind`]);
//! read-only until then, its reads sum the series' minutes instead.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use super::matrix::Minute;
use super::{Snapshot, StoreError};
use crate::groups::group_of;

/// Minutes in an hour row.
pub(crate) const HOUR_MINUTES: i64 = 60;

/// Which minutes a row sums: the `kind` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// Connect minutes.
    Connect = 0,
    /// DNS lookup minutes.
    Dns = 1,
}

impl Kind {
    fn of(m: &Minute) -> Kind {
        match m {
            Minute::Connect(_) => Kind::Connect,
            Minute::Dns(_) => Kind::Dns,
        }
    }
}

/// (minute, kind, region, group) to what the minute adds to that row.
pub(super) type Deltas =
    HashMap<(i64, Kind, Arc<str>, Arc<str>), Minute, foldhash::fast::RandomState>;

/// Adds `from` into `into`.
pub(super) fn add(into: &mut Deltas, from: Deltas) {
    if into.is_empty() {
        *into = from;
        return;
    }
    for (key, m) in from {
        match into.get_mut(&key) {
            Some(have) => have.add(&m),
            None => {
                into.insert(key, m);
            }
        }
    }
}

/// Merges `deltas` into the minute rows and the hour rows, and notes that
/// they hold commit `seq`. In the caller's transaction.
pub(super) fn merge(tx: &Connection, deltas: Deltas, seq: u64) -> rusqlite::Result<()> {
    let mut hours = Deltas::default();
    for ((minute, kind, region, group), m) in &deltas {
        let key = (
            minute.div_euclid(HOUR_MINUTES),
            *kind,
            region.clone(),
            group.clone(),
        );
        add_one(&mut hours, key, m);
    }
    let whole = merge_into(tx, "group_minutes", "minute", deltas)?
        & merge_into(tx, "group_hours", "hour", hours)?;
    if !whole {
        // A damaged row cannot be added to. The batches are stored all
        // the same: the rows are marked behind, for good, so that reads
        // sum the minutes and the next open rebuilds them.
        tracing::error!(
            "a region and group rollup row does not decode: reads sum the minutes until a restart rebuilds them"
        );
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('groups_seq', ?1)",
            [BEHIND],
        )?;
        return Ok(());
    }
    set_seq(tx, seq)
}

/// `groups_seq` once a row was found damaged: never a commit's number, and
/// kept by [`set_seq`] until a rebuild.
const BEHIND: &str = "behind";

/// Adds `m` to the row of `key` in `into`.
fn add_one(into: &mut Deltas, key: (i64, Kind, Arc<str>, Arc<str>), m: &Minute) {
    match into.get_mut(&key) {
        Some(have) => have.add(m),
        None => {
            into.insert(key, m.clone());
        }
    }
}

/// Adds `deltas` to their rows of `table`; false if a row there did not
/// decode (it is replaced by its delta).
fn merge_into(
    tx: &Connection,
    table: &str,
    column: &str,
    deltas: Deltas,
) -> rusqlite::Result<bool> {
    let mut read = tx.prepare_cached(&format!(
        "SELECT data FROM {table} WHERE {column} = ?1 AND kind = ?2 AND src_region = ?3 AND grp = ?4"
    ))?;
    let mut write = tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO {table} ({column}, kind, src_region, grp, data) VALUES (?1, ?2, ?3, ?4, ?5)"
    ))?;
    let mut whole = true;
    for ((at, kind, region, group), mut m) in deltas {
        let row = params![at, kind as i64, &*region, &*group];
        let old: Option<Vec<u8>> = read.query_row(row, |r| r.get(0)).optional()?;
        match old.map(|old| Minute::decode(&old)) {
            Some(Ok(old)) => m.add(&old),
            Some(Err(_)) => whole = false,
            None => {}
        }
        write.execute(params![at, kind as i64, &*region, &*group, m.encode()])?;
    }
    Ok(whole)
}

/// Notes that the rows hold commit `seq`, unless they were marked
/// [`BEHIND`].
fn set_seq(tx: &Connection, seq: u64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('groups_seq', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE value <> ?2",
        params![seq.to_string(), BEHIND],
    )?;
    Ok(())
}

/// Whether the group rows hold the store's last commit.
fn current(conn: &Connection) -> rusqlite::Result<bool> {
    let seq: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'groups_seq'", [], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(seq.and_then(|s| s.parse::<u64>().ok()) == Some(super::committed::last_seq(conn)?))
}

/// Rebuilds the group rows from the minutes when they do not hold the
/// store's last commit; returns whether it did.
pub(super) fn rebuild_if_behind(conn: &Connection) -> rusqlite::Result<bool> {
    if current(conn)? {
        return Ok(false);
    }
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch("DELETE FROM group_minutes; DELETE FROM group_hours;")?;
    let mut hour_rows = Deltas::default();
    let mut hour_at = i64::MIN;
    sum_minutes(&tx, (i64::MIN, i64::MAX), None, |minute, sums| {
        let hour = minute.div_euclid(HOUR_MINUTES);
        if hour != hour_at {
            merge_into(&tx, "group_hours", "hour", std::mem::take(&mut hour_rows))?;
            hour_at = hour;
        }
        let mut minute_rows = Deltas::default();
        for ((kind, region, group), m) in sums {
            add_one(
                &mut hour_rows,
                (hour, kind, region.clone(), group.clone()),
                &m,
            );
            minute_rows.insert((minute, kind, region, group), m);
        }
        merge_into(&tx, "group_minutes", "minute", minute_rows).map(drop)
    })?;
    merge_into(&tx, "group_hours", "hour", hour_rows)?;
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('groups_seq', ?1)",
        [super::committed::last_seq(&tx)?.to_string()],
    )?;
    tx.commit()?;
    Ok(true)
}

/// What the group rows of each minute from `first` to `end` (excluded)
/// of `region` (or every region) sum, from the series' own minutes: one
/// pass in the minutes' order, holding one minute's sums at a time,
/// visited minute by minute in (region, group) order.
fn sum_minutes(
    conn: &Connection,
    (first, end): (i64, i64),
    region: Option<&str>,
    mut visit: impl FnMut(i64, BTreeMap<(Kind, Arc<str>, Arc<str>), Minute>) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let mut groups: HashMap<i64, Arc<str>> = HashMap::new();
    let mut regions: HashMap<String, Arc<str>> = HashMap::new();
    let mut sums: BTreeMap<(Kind, Arc<str>, Arc<str>), Minute> = BTreeMap::new();
    let mut at = i64::MIN;
    let mut stmt = conn.prepare_cached(
        "SELECT m.minute, s.src_region, t.id, t.name, t.labels, m.data
         FROM minutes m JOIN series s ON s.id = m.series_id JOIN targets t ON t.id = s.target_id
         WHERE m.minute >= ?1 AND m.minute < ?2 AND (?3 = '' OR s.src_region = ?3)
         ORDER BY m.minute",
    )?;
    let mut rows = stmt.query(params![first, end, region.unwrap_or("")])?;
    while let Some(r) = rows.next()? {
        let minute: i64 = r.get(0)?;
        if minute != at {
            if !sums.is_empty() {
                visit(at, std::mem::take(&mut sums))?;
            }
            at = minute;
        }
        let Ok(data) = Minute::decode(r.get_ref(5)?.as_blob()?) else {
            continue;
        };
        let name = r.get_ref(1)?.as_str()?;
        let region = match regions.get(name) {
            Some(a) => a.clone(),
            None => regions
                .entry(name.to_string())
                .or_insert_with(|| name.into())
                .clone(),
        };
        let target: i64 = r.get(2)?;
        let group = match groups.get(&target) {
            Some(g) => g.clone(),
            None => {
                let g: Arc<str> = group_of(r.get_ref(3)?.as_str()?, r.get_ref(4)?.as_str()?)
                    .0
                    .into();
                groups.insert(target, g.clone());
                g
            }
        };
        match sums.entry((Kind::of(&data), region, group)) {
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().add(&data),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(data);
            }
        }
    }
    if !sums.is_empty() {
        visit(at, sums)?;
    }
    Ok(())
}

/// The two tables of group rows.
#[derive(Debug, Clone, Copy)]
enum Table {
    Minutes,
    Hours,
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
    /// Its targets' connect or lookup minutes, summed.
    pub data: Minute,
}

impl Snapshot<'_> {
    /// Visits the group rows that together cover the minutes from
    /// `first_minute` (included) to `end_minute` (excluded), of `region`
    /// or of every region: hour rows for the hours wholly inside, minute
    /// rows for the rest. Ordered by minute, region and group; a row whose
    /// data does not decode is passed over.
    pub(crate) fn group_rows(
        &self,
        kind: Kind,
        first_minute: i64,
        end_minute: i64,
        region: Option<&str>,
        mut visit: impl FnMut(GroupRow<'_>),
    ) -> Result<(), StoreError> {
        if !current(self.conn).map_err(|e| self.err(e))? {
            return self.summed(kind, first_minute, end_minute, region, visit);
        }
        // Hours wholly inside [first, end).
        let first_hour = first_minute.div_euclid(HOUR_MINUTES)
            + i64::from(first_minute.rem_euclid(HOUR_MINUTES) != 0);
        let end_hour = end_minute.div_euclid(HOUR_MINUTES);
        if first_hour >= end_hour {
            return self.group_minutes(kind, first_minute, end_minute, region, visit);
        }
        self.group_minutes(
            kind,
            first_minute,
            first_hour * HOUR_MINUTES,
            region,
            &mut visit,
        )?;
        self.visit_group_table(
            (Table::Hours, kind),
            (first_hour, end_hour),
            region,
            &mut visit,
        )?;
        self.group_minutes(kind, end_hour * HOUR_MINUTES, end_minute, region, visit)
    }

    /// Visits the minute rows of every group from `first_minute`
    /// (included) to `end_minute` (excluded), of `region` or of every
    /// region, ordered by minute, region and group.
    pub(crate) fn group_minutes(
        &self,
        kind: Kind,
        first_minute: i64,
        end_minute: i64,
        region: Option<&str>,
        mut visit: impl FnMut(GroupRow<'_>),
    ) -> Result<(), StoreError> {
        if first_minute >= end_minute {
            return Ok(());
        }
        if !current(self.conn).map_err(|e| self.err(e))? {
            return self.summed(kind, first_minute, end_minute, region, visit);
        }
        self.visit_group_table(
            (Table::Minutes, kind),
            (first_minute, end_minute),
            region,
            &mut visit,
        )
    }

    /// The minute rows summed from the series' minutes: what a store
    /// read-only gives when its group rows are behind (written since by a
    /// build that did not keep them): right, at the cost of every series'
    /// minute of the window.
    fn summed(
        &self,
        kind: Kind,
        first_minute: i64,
        end_minute: i64,
        region: Option<&str>,
        mut visit: impl FnMut(GroupRow<'_>),
    ) -> Result<(), StoreError> {
        sum_minutes(
            self.conn,
            (first_minute, end_minute),
            region,
            |minute, sums| {
                for ((of, src_region, group), data) in sums {
                    if of != kind {
                        continue;
                    }
                    visit(GroupRow {
                        minute,
                        src_region: &src_region,
                        group: &group,
                        data,
                    });
                }
                Ok(())
            },
        )
        .map_err(|e| self.err(e))
    }

    /// Visits the rows of `kind` in `table` from `first` to `end`
    /// (excluded), in its unit.
    fn visit_group_table(
        &self,
        (table, kind): (Table, Kind),
        (first, end): (i64, i64),
        region: Option<&str>,
        visit: &mut impl FnMut(GroupRow<'_>),
    ) -> Result<(), StoreError> {
        let (table, column, minutes) = match table {
            Table::Minutes => ("group_minutes", "minute", 1),
            Table::Hours => ("group_hours", "hour", HOUR_MINUTES),
        };
        let mut run = || -> rusqlite::Result<()> {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT {column}, src_region, grp, data FROM {table}
                 WHERE {column} >= ?1 AND {column} < ?2 AND kind = ?3
                   AND (?4 = '' OR src_region = ?4)
                 ORDER BY {column}, src_region, grp"
            ))?;
            let mut rows = stmt.query(params![first, end, kind as i64, region.unwrap_or("")])?;
            while let Some(r) = rows.next()? {
                let Ok(data) = Minute::decode(r.get_ref(3)?.as_blob()?) else {
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
