//! The store's one writer: a thread that owns the write connection.
//!
//! Batches from every request queue to it; it stores a group of them in one
//! transaction (one savepoint each, so one bad batch does not sink the
//! others) and answers each only after the commit returned: an
//! acknowledged batch is on disk, whatever happens to the process next. A
//! receipt per batch (probe, stream, seq) with its content digest makes a
//! retry a no-op, and tells it from new content under a seen key. Writes of
//! the store's own (incidents, alert evidence, the fleet's name) run in
//! transactions of their own, in arrival order with the batches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};
use vantage_probe::outcome::{ConnectOutcome, DnsOutcome};
use vantage_probe::result::{ConnectAttempt, DnsObservation, RoundResult};
use vantage_probe::stats::{CONNECT_BUCKETS_US, DNS_BUCKETS_US};
use vantage_probe::wire::{Ack, Batch};

use super::committed::{Committed, NewSeries, SinkSlot};
use super::digest::digest;
use super::groups;
use super::rollup::{ConnectMinute, DnsMinute};
use super::{Minute, Outcome, malformed};
use crate::config::Retention;
use crate::time::{MINUTE_US, minute, us};

/// The writer's maps: keyed by ids, minutes and addresses, looked up for
/// every attempt stored, where SipHash cost more than the rest of a
/// lookup. Seeded per process.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Batches stored in one transaction at most.
const GROUP: usize = 512;
/// Queue between request handlers and the writer.
pub(super) const QUEUE: usize = 1024;
/// How often expired data is removed.
const EXPIRE_EVERY: Duration = Duration::from_secs(60);
/// Rows removed per expiry statement, so that ingest never waits long.
const EXPIRE_CHUNK: i64 = 10_000;

/// What the writer does: store a batch, or run a write of its own.
pub(super) enum Work {
    Batch(Job),
    Write(WriteJob),
}

/// A write of the store's own, run on the writer's connection.
pub(super) type WriteFn = Box<dyn FnOnce(&Connection) -> rusqlite::Result<()> + Send>;

/// A write outside ingest (incidents), in a transaction of its own.
pub(super) struct WriteJob {
    pub(super) write: WriteFn,
    pub(super) reply: oneshot::Sender<Result<(), String>>,
}

/// A batch to store.
pub(super) struct Job {
    pub(super) batch: Batch,
    pub(super) received: SystemTime,
    pub(super) probe_clock: SystemTime,
    /// The result, and the batch handed back to the submitter.
    pub(super) reply: oneshot::Sender<(Result<Outcome, String>, Batch)>,
}

/// The writer thread's state.
pub(super) struct Writer {
    conn: Connection,
    retention: Retention,
    ids: Ids,
    open: OpenMinutes,
    last_expiry: SystemTime,
    sink: SinkSlot,
    /// The number of the last group of batches committed (see
    /// [`Committed::seq`]).
    commits: u64,
}

/// What the batches of a group stored, kept until the group commits and
/// then handed to the sink: its rows as (series, minute) keys, sorted and
/// deduplicated then, and the rest as the sink gets it.
#[derive(Default)]
struct Changes {
    keys: Vec<(i64, i64)>,
    /// What the minutes add to their region's and group's rows.
    groups: groups::Deltas,
    committed: Committed,
}

impl Changes {
    fn append(&mut self, mut other: Changes) {
        let (c, o) = (&mut self.committed, &mut other.committed);
        c.series.append(&mut o.series);
        c.failures.append(&mut o.failures);
        c.retransmits.append(&mut o.retransmits);
        self.keys.append(&mut other.keys);
        groups::add(&mut self.groups, other.groups);
    }
}

/// Database ids of targets and series, cached. Lookups on the hot path
/// allocate nothing: a target is found by a key written into a reused
/// buffer, a series by integers and the address.
#[derive(Default)]
struct Ids {
    /// `name \x1f host \x1f port \x1f labels` to the target's id.
    targets: Map<String, i64>,
    /// (region, probe) to a small local number used in `series` keys.
    probes: Map<(String, String), u32>,
    /// (probe number, target id, address; `None` for DNS) to the series id.
    series: Map<(u32, i64, Option<std::net::SocketAddr>), i64>,
    /// A target's id to its group (see `crate::groups`).
    groups: Map<i64, Arc<str>>,
    key: String,
}

impl Ids {
    /// Forgets every id: those handed out in a rolled-back transaction are gone.
    fn clear(&mut self) {
        self.targets.clear();
        self.probes.clear();
        self.series.clear();
        self.groups.clear();
    }
}

/// Encoded rollup rows of the newest minutes, so that the batches of a
/// minute merge into its row without reading it back each time. Only what
/// is committed (or about to be, in the open transaction) is here: any
/// rollback clears it, and a miss reads the row from the database.
#[derive(Default)]
struct OpenMinutes {
    rows: Map<(i64, i64), Vec<u8>>,
    newest: i64,
}

impl OpenMinutes {
    /// Keeps the newest two minutes; older rows are read back if a late
    /// batch needs them.
    fn trim(&mut self) {
        let keep = self.newest - 1;
        if self.rows.keys().any(|&(_, m)| m < keep) {
            self.rows.retain(|&(_, m), _| m >= keep);
        }
    }
}

/// What one batch adds, grouped before it touches the database.
#[derive(Default)]
struct Grouped {
    connect: Map<(i64, i64), ConnectMinute>,
    dns: Map<(i64, i64), DnsMinute>,
    failures: Vec<FailureRow>,
    /// Successful attempts with SYN retransmits: (series, at_us, retransmits).
    retransmits: Vec<(i64, i64, i64)>,
    /// Each series' group.
    groups: Map<i64, Arc<str>>,
}

/// One failure, as the `failures` table keeps it.
struct FailureRow {
    series: i64,
    at_us: i64,
    outcome: String,
    duration_us: i64,
    syn_retransmits: i64,
    errno: Option<i32>,
    local_port: Option<u16>,
    icmp_from: Option<String>,
}

impl Writer {
    /// A writer on `conn`, expiring data past `retention`, whose next
    /// group of batches is numbered after `commits`.
    pub(super) fn new(
        conn: Connection,
        retention: Retention,
        sink: SinkSlot,
        commits: u64,
    ) -> Writer {
        Writer {
            commits,
            conn,
            retention,
            ids: Ids::default(),
            open: OpenMinutes::default(),
            last_expiry: SystemTime::now(),
            sink,
        }
    }

    /// Serves `rx` until every sender is gone.
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Work>) {
        while let Some(first) = rx.blocking_recv() {
            let mut jobs = Vec::new();
            let mut next = Some(first);
            while let Some(work) = next.take() {
                match work {
                    Work::Batch(job) => jobs.push(job),
                    Work::Write(w) => {
                        // In arrival order: the batches before it first.
                        if !jobs.is_empty() {
                            self.store_group(std::mem::take(&mut jobs));
                        }
                        self.write(w);
                    }
                }
                if jobs.len() < GROUP {
                    next = rx.try_recv().ok();
                }
            }
            if !jobs.is_empty() {
                self.store_group(jobs);
            }
            if self.last_expiry.elapsed().unwrap_or_default() >= EXPIRE_EVERY {
                self.last_expiry = SystemTime::now();
                if let Err(e) = expire(&self.conn, self.retention, SystemTime::now()) {
                    tracing::error!(error = %e, "expiring old data");
                }
            }
        }
    }

    fn write(&mut self, w: WriteJob) {
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.unchecked_transaction()?;
            (w.write)(&tx)?;
            tx.commit()
        })();
        if let Err(e) = &result {
            tracing::error!(error = %e, "writing to the store");
        }
        let _ = w.reply.send(result.map_err(|e| e.to_string()));
    }

    fn store_group(&mut self, jobs: Vec<Job>) {
        let mut results: Vec<Result<Outcome, String>> = Vec::with_capacity(jobs.len());
        let mut changes = Changes::default();
        let outcome = (|| -> rusqlite::Result<()> {
            let tx = self.conn.unchecked_transaction()?;
            for job in &jobs {
                tx.execute_batch("SAVEPOINT batch")?;
                let mut batch = Changes::default();
                match store_batch(&tx, &mut self.ids, &mut self.open, job, &mut batch) {
                    Ok(ack) => {
                        tx.execute_batch("RELEASE batch")?;
                        changes.append(batch);
                        results.push(Ok(ack));
                    }
                    Err(e) => {
                        tx.execute_batch("ROLLBACK TO batch; RELEASE batch")?;
                        self.ids.clear();
                        self.open.rows.clear();
                        results.push(Err(e.to_string()));
                    }
                }
            }
            groups::merge(&tx, std::mem::take(&mut changes.groups), self.commits + 1)?;
            // Numbered in the same transaction: a snapshot knows the last
            // group it holds.
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('commits', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![(self.commits + 1).to_string()],
            )?;
            tx.commit()
        })();
        if let Err(e) = outcome {
            tracing::error!(error = %e, "storing a group of batches");
            self.ids.clear();
            self.open.rows.clear();
            for job in jobs {
                let _ = job.reply.send((Err(e.to_string()), job.batch));
            }
            return;
        }
        self.commits += 1;
        changes.committed.seq = self.commits;
        self.hand_on(changes);
        self.open.trim();
        for (job, result) in jobs.into_iter().zip(results) {
            let _ = job.reply.send((result, job.batch));
        }
    }
}

impl Writer {
    /// Hands a committed group's changes to the sink, if there is one: the
    /// minute rows as they now stand (from the open minutes, else read
    /// back: a rollback in the group cleared them).
    fn hand_on(&self, changes: Changes) {
        let Some(sink) = self.sink.get() else {
            return;
        };
        let Changes {
            mut keys,
            mut committed,
            ..
        } = changes;
        keys.sort_unstable();
        keys.dedup();
        for (series, minute) in keys {
            if let Some(row) = self.open.rows.get(&(series, minute)) {
                committed.push_row(series, minute, row);
                continue;
            }
            let row = self
                .conn
                .prepare_cached("SELECT data FROM minutes WHERE minute = ?2 AND series_id = ?1")
                .and_then(|mut s| s.query_row(params![series, minute], |r| r.get::<_, Vec<u8>>(0)));
            match row {
                Ok(row) => committed.push_row(series, minute, &row),
                Err(e) => tracing::error!(error = %e, "reading back a committed minute"),
            }
        }
        sink(committed);
    }
}

/// Stores one batch inside the open transaction: its receipt and probe
/// row, its rollups merged into the minutes, its failures; what it
/// changed goes into `changes`.
fn store_batch(
    tx: &Connection,
    ids: &mut Ids,
    open: &mut OpenMinutes,
    job: &Job,
    changes: &mut Changes,
) -> rusqlite::Result<Outcome> {
    let b = &job.batch;
    match record_receipt(tx, job)? {
        Receipt::New => {}
        Receipt::Retry => {
            return Ok(Outcome::Acked(Ack {
                seq: b.seq,
                stored: 0,
                duplicate: true,
            }));
        }
        Receipt::Reused => return Ok(Outcome::SeqReused),
    }
    let c = &mut changes.committed;
    let g = group(tx, ids, b, &mut c.series)?;
    c.failures.extend(
        g.failures
            .iter()
            .map(|f| (f.series, f.at_us, f.outcome.clone())),
    );
    c.retransmits
        .extend(g.retransmits.iter().map(|&(s, at, _)| (s, at)));
    changes
        .keys
        .extend(g.connect.keys().chain(g.dns.keys()).copied());
    let region: Arc<str> = b.probe.src_region.as_str().into();
    for (&(series, minute), m) in &g.connect {
        let key = (
            minute,
            groups::Kind::Connect,
            region.clone(),
            g.groups[&series].clone(),
        );
        match changes.groups.get_mut(&key) {
            Some(Minute::Connect(have)) => have.merge(m),
            _ => {
                changes.groups.insert(key, Minute::Connect(m.clone()));
            }
        }
    }
    for (&(series, minute), m) in &g.dns {
        let key = (
            minute,
            groups::Kind::Dns,
            region.clone(),
            g.groups[&series].clone(),
        );
        match changes.groups.get_mut(&key) {
            Some(Minute::Dns(have)) => have.merge(m),
            _ => {
                changes.groups.insert(key, Minute::Dns(m.clone()));
            }
        }
    }
    merge_minutes(tx, open, g.connect, g.dns)?;
    insert_failures(tx, g.failures)?;
    insert_retransmits(tx, g.retransmits)?;
    Ok(Outcome::Acked(Ack {
        seq: b.seq,
        stored: b.results.len() as u32,
        duplicate: false,
    }))
}

/// What a batch's key was in the receipts.
enum Receipt {
    /// Not there: recorded now.
    New,
    /// There with the same content: a retry.
    Retry,
    /// There with other content.
    Reused,
}

/// Records the batch's receipt and its probe, unless its key has one
/// already: then the same content is a retry and other content a reused
/// seq, and nothing is written either way.
fn record_receipt(tx: &Connection, job: &Job) -> rusqlite::Result<Receipt> {
    let b = &job.batch;
    let p = &b.probe;
    // SQLite integers are i64: the seq's 64 bits are kept as they are (a
    // seq past i64::MAX reads back negative), so that every seq has its own
    // receipt. Clamping made 2^63, 2^63 + 1 and u64::MAX one receipt: the
    // second and third were answered "duplicate" and never stored.
    let seq = b.seq as i64;
    let results = b.results.len() as i64;
    let digest = digest(b);
    let seen: Option<(i64, Option<i64>)> = tx
        .prepare_cached(
            "SELECT results, digest FROM receipts
             WHERE src_region = ?1 AND probe_id = ?2 AND stream = ?3 AND seq = ?4",
        )?
        .query_row(params![p.src_region, p.probe_id, b.stream, seq], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    match seen {
        None => {}
        // A receipt from before digests: its result count is all there is.
        Some((count, stored)) if count == results && stored.is_none_or(|d| d == digest) => {
            return Ok(Receipt::Retry);
        }
        Some(_) => return Ok(Receipt::Reused),
    }
    let now_us = us(job.received);
    tx.prepare_cached(
        "INSERT INTO receipts (src_region, probe_id, stream, seq, received_us, results, digest)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        p.src_region,
        p.probe_id,
        b.stream,
        seq,
        now_us,
        results,
        digest
    ])?;
    let offset_us = us(job.probe_clock) - now_us;
    tx.prepare_cached(
        "INSERT INTO probes (probe_id, src_region, zone, first_seen_us, last_seen_us, clock_offset_us, batches, results, stopped)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, 1, ?6, ?7)
         ON CONFLICT (src_region, probe_id) DO UPDATE SET
            zone = excluded.zone,
            last_seen_us = max(last_seen_us, excluded.last_seen_us),
            clock_offset_us = excluded.clock_offset_us,
            batches = batches + 1, results = results + excluded.results,
            stopped = excluded.stopped",
    )?
    .execute(params![
        p.probe_id,
        p.src_region,
        p.zone,
        now_us,
        offset_us,
        b.results.len() as i64,
        b.last
    ])?;
    Ok(Receipt::New)
}

/// The batch's results grouped by (series, minute), and its failures.
fn group(
    tx: &Connection,
    ids: &mut Ids,
    b: &Batch,
    new: &mut Vec<NewSeries>,
) -> rusqlite::Result<Grouped> {
    let p = &b.probe;
    let mut g = Grouped::default();
    let probe = probe_number(ids, &p.src_region, &p.probe_id);
    for r in &b.results {
        let target = target_id(tx, ids, r)?;
        let group = ids
            .groups
            .entry(target)
            .or_insert_with(|| crate::groups::of_labels(&r.target, &r.labels).into())
            .clone();
        if let Some(d) = &r.dns {
            let s = series_id(tx, ids, p, probe, (target, r), None, &mut *new)?;
            g.dns_lookup(s, r, d);
            g.groups.entry(s).or_insert_with(|| group.clone());
        }
        {
            for a in &r.attempts {
                let s = series_id(tx, ids, p, probe, (target, r), Some(a.address), &mut *new)?;
                g.attempt(s, a);
                g.groups.entry(s).or_insert_with(|| group.clone());
            }
        }
    }
    Ok(g)
}

impl Grouped {
    fn dns_lookup(&mut self, s: i64, r: &RoundResult, d: &DnsObservation) {
        let m = self
            .dns
            .entry((s, minute(r.started_at.system_time())))
            .or_default();
        m.outcomes[d.outcome.index()] += 1;
        m.duration.observe(&DNS_BUCKETS_US, d.duration_us);
        if d.outcome != DnsOutcome::Ok {
            self.failures.push(FailureRow {
                series: s,
                at_us: us(r.started_at.system_time()),
                outcome: format!("dns_{}", d.outcome.as_str()),
                duration_us: d.duration_us as i64,
                syn_retransmits: 0,
                errno: None,
                local_port: None,
                icmp_from: None,
            });
        }
    }

    fn attempt(&mut self, s: i64, a: &ConnectAttempt) {
        let m = self
            .connect
            .entry((s, minute(a.started_at.system_time())))
            .or_default();
        m.outcomes[a.outcome.index()] += 1;
        m.syn_retransmits += u64::from(a.syn_retransmits);
        if a.outcome == ConnectOutcome::Ok {
            m.duration.observe(&CONNECT_BUCKETS_US, a.duration_us);
            if let Some(rtt) = a.rtt_sample() {
                m.rtt.observe(&CONNECT_BUCKETS_US, u64::from(rtt));
            }
            if a.syn_retransmits > 0 {
                self.retransmits.push((
                    s,
                    us(a.started_at.system_time()),
                    i64::from(a.syn_retransmits),
                ));
            }
        } else {
            self.failures.push(FailureRow {
                series: s,
                at_us: us(a.started_at.system_time()),
                outcome: a.outcome.as_str().to_string(),
                duration_us: a.duration_us as i64,
                syn_retransmits: i64::from(a.syn_retransmits),
                errno: a.errno,
                local_port: a.local.map(|l| l.port()),
                icmp_from: a.icmp_from.map(|ip| ip.to_string()),
            });
        }
    }
}

/// Merges the grouped minutes into their stored rows and writes them back.
fn merge_minutes(
    tx: &Connection,
    open: &mut OpenMinutes,
    connect: Map<(i64, i64), ConnectMinute>,
    dns: Map<(i64, i64), DnsMinute>,
) -> rusqlite::Result<()> {
    let mut read =
        tx.prepare_cached("SELECT data FROM minutes WHERE minute = ?2 AND series_id = ?1")?;
    let mut write = tx.prepare_cached(
        "INSERT OR REPLACE INTO minutes (series_id, minute, data) VALUES (?1, ?2, ?3)",
    )?;
    // The row as stored so far: from the open minutes, else the database.
    let mut stored = |key: (i64, i64)| -> rusqlite::Result<Option<Vec<u8>>> {
        match open.rows.remove(&key) {
            Some(row) => Ok(Some(row)),
            None => read
                .query_row(params![key.0, key.1], |r| r.get::<_, Vec<u8>>(0))
                .optional(),
        }
    };
    let mut merged = Vec::with_capacity(connect.len() + dns.len());
    for (key, mut m) in connect {
        if let Some(old) = stored(key)? {
            m.merge(&ConnectMinute::decode(&old).map_err(malformed)?);
        }
        merged.push((key, m.encode()));
    }
    for (key, mut m) in dns {
        if let Some(old) = stored(key)? {
            m.merge(&DnsMinute::decode(&old).map_err(malformed)?);
        }
        merged.push((key, m.encode()));
    }
    for (key, row) in merged {
        write.execute(params![key.0, key.1, row])?;
        open.newest = open.newest.max(key.1);
        open.rows.insert(key, row);
    }
    Ok(())
}

fn insert_retransmits(tx: &Connection, rows: Vec<(i64, i64, i64)>) -> rusqlite::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut stmt = tx.prepare_cached(
        "INSERT INTO retransmits (series_id, at_us, syn_retransmits) VALUES (?1, ?2, ?3)",
    )?;
    for (series, at, n) in rows {
        stmt.execute(params![series, at, n])?;
    }
    Ok(())
}

fn insert_failures(tx: &Connection, failures: Vec<FailureRow>) -> rusqlite::Result<()> {
    let mut fail = tx.prepare_cached(
        "INSERT INTO failures (series_id, at_us, outcome, duration_us, syn_retransmits, errno, local_port, icmp_from)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for f in failures {
        fail.execute(params![
            f.series,
            f.at_us,
            f.outcome,
            f.duration_us,
            f.syn_retransmits,
            f.errno,
            f.local_port,
            f.icmp_from
        ])?;
    }
    Ok(())
}

fn target_id(tx: &Connection, ids: &mut Ids, r: &RoundResult) -> rusqlite::Result<i64> {
    use std::fmt::Write as _;
    let key = &mut ids.key;
    key.clear();
    let _ = write!(key, "{}\x1f{}\x1f{}", r.target, r.host, r.port);
    for (k, v) in r.labels.iter() {
        let _ = write!(key, "\x1f{k}\x1e{v}");
    }
    if let Some(id) = ids.targets.get(key.as_str()) {
        return Ok(*id);
    }
    let labels = serde_json::to_string(&*r.labels).unwrap_or_default();
    let row = params![&*r.target, &*r.host, r.port, labels];
    tx.prepare_cached(
        "INSERT OR IGNORE INTO targets (name, host, port, labels) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(row)?;
    let id = tx
        .prepare_cached(
            "SELECT id FROM targets WHERE name = ?1 AND host = ?2 AND port = ?3 AND labels = ?4",
        )?
        .query_row(row, |r| r.get(0))?;
    ids.targets.insert(key.clone(), id);
    Ok(id)
}

fn probe_number(ids: &mut Ids, region: &str, probe: &str) -> u32 {
    // One lookup per batch; a probe that changed region gets a new number.
    let next = ids.probes.len() as u32;
    *ids.probes
        .entry((region.to_string(), probe.to_string()))
        .or_insert(next)
}

/// The id of the series of `probe`, `target` (its id, and the result
/// naming it) and `address`; one met for the first time is added to `new`.
fn series_id(
    tx: &Connection,
    ids: &mut Ids,
    p: &vantage_probe::result::Identity,
    probe: u32,
    (target, r): (i64, &RoundResult),
    address: Option<std::net::SocketAddr>,
    new: &mut Vec<NewSeries>,
) -> rusqlite::Result<i64> {
    if let Some(id) = ids.series.get(&(probe, target, address)) {
        return Ok(*id);
    }
    let shown = address.map(|a| a.to_string()).unwrap_or_default();
    let row = params![p.src_region, p.probe_id, target, shown];
    tx.prepare_cached(
        "INSERT OR IGNORE INTO series (src_region, probe_id, target_id, address) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(row)?;
    let id = tx
        .prepare_cached(
            "SELECT id FROM series WHERE src_region = ?1 AND probe_id = ?2 AND target_id = ?3 AND address = ?4",
        )?
        .query_row(row, |r| r.get(0))?;
    ids.series.insert((probe, target, address), id);
    new.push(NewSeries {
        series: id,
        src_region: p.src_region.to_string(),
        target: r.target.to_string(),
        labels: serde_json::to_string(&*r.labels).unwrap_or_default(),
        address: shown,
    });
    Ok(id)
}

/// Removes data past its retention, a bounded chunk per statement, so that
/// batches waiting behind an expiry pass never wait long.
pub(super) fn expire(conn: &Connection, r: Retention, now: SystemTime) -> rusqlite::Result<()> {
    let cutoff = |d: Duration| us(now.checked_sub(d).unwrap_or(UNIX_EPOCH));
    let minute_cutoff = cutoff(r.rollups).div_euclid(MINUTE_US);
    let statements = [
        (
            "DELETE FROM minutes WHERE (minute, series_id) IN
             (SELECT minute, series_id FROM minutes WHERE minute < ?1 LIMIT ?2)",
            minute_cutoff,
        ),
        (
            "DELETE FROM group_minutes WHERE (minute, kind, src_region, grp) IN
             (SELECT minute, kind, src_region, grp FROM group_minutes WHERE minute < ?1 LIMIT ?2)",
            minute_cutoff,
        ),
        // An hour's row goes with the last of its minutes.
        (
            "DELETE FROM group_hours WHERE (hour, kind, src_region, grp) IN
             (SELECT hour, kind, src_region, grp FROM group_hours WHERE hour < ?1 LIMIT ?2)",
            minute_cutoff.div_euclid(groups::HOUR_MINUTES),
        ),
        (
            "DELETE FROM failures WHERE rowid IN
             (SELECT rowid FROM failures WHERE at_us < ?1 ORDER BY at_us LIMIT ?2)",
            cutoff(r.failures),
        ),
        (
            "DELETE FROM retransmits WHERE rowid IN
             (SELECT rowid FROM retransmits WHERE at_us < ?1 ORDER BY at_us LIMIT ?2)",
            cutoff(r.failures),
        ),
        (
            "DELETE FROM receipts WHERE (src_region, probe_id, stream, seq) IN
             (SELECT src_region, probe_id, stream, seq FROM receipts WHERE received_us < ?1 LIMIT ?2)",
            cutoff(r.receipts),
        ),
    ];
    for (sql, before) in statements {
        let mut stmt = conn.prepare_cached(sql)?;
        for _ in 0..16 {
            if (stmt.execute(params![before, EXPIRE_CHUNK])? as i64) < EXPIRE_CHUNK {
                break;
            }
        }
    }
    Ok(())
}
