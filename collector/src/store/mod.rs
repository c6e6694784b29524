//! The embedded store: SQLite (WAL, `synchronous = FULL`) in the data
//! directory, written by one thread.
//!
//! Batches from every request queue to the writer, which stores a group of
//! them in one transaction (one savepoint each, so one bad batch does not
//! sink the others) and acknowledges them only after the commit returned:
//! an acknowledged batch is on disk, whatever happens to the process next.
//! A receipt per batch (probe, stream, seq) makes a retry a no-op.

pub mod read;
pub mod rollup;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};
use vantage_probe::outcome::ConnectOutcome;
use vantage_probe::result::RoundResult;
use vantage_probe::stats::{CONNECT_BUCKETS_US, DNS_BUCKETS_US};
use vantage_probe::wire::{Ack, Batch};

use crate::config::Retention;
use rollup::{ConnectMinute, DnsMinute};

/// Batches stored in one transaction at most.
const GROUP: usize = 512;
/// Queue between request handlers and the writer.
const QUEUE: usize = 1024;
/// How often expired data is removed.
const EXPIRE_EVERY: Duration = Duration::from_secs(60);
/// Rows removed per expiry statement, so that ingest never waits long.
const EXPIRE_CHUNK: i64 = 10_000;

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Work>,
    on_stored: OnStored,
    reader: Arc<Mutex<Connection>>,
    path: PathBuf,
}

/// Called after a batch is committed and before it is acknowledged (never
/// for duplicates), with the receipt time and the probe's clock at sending.
/// It runs on the submitting task, not on the writer thread, so that the
/// one writer does nothing but write.
pub type OnStored = Arc<dyn Fn(&Batch, SystemTime, SystemTime) + Send + Sync>;

/// A probe as the store remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRecord {
    /// Its id.
    pub probe_id: String,
    /// Its region.
    pub src_region: String,
    /// Its zone, if it said.
    pub zone: Option<String>,
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

/// Totals of one (src_region, target) over the whole store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Connect attempts by outcome label.
    pub outcomes: HashMap<&'static str, u64>,
    /// Connect attempts.
    pub attempts: u64,
    /// Failures kept in detail.
    pub failures_kept: u64,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("store {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// What went wrong.
        #[source]
        source: rusqlite::Error,
    },
    /// The data directory holds a store of another layout.
    #[error(
        "store {path}: layout version {found}, this build reads {}",
        schema::VERSION
    )]
    Version {
        /// The database file.
        path: String,
        /// The version found.
        found: String,
    },
    /// Creating the data directory failed.
    #[error("creating {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The writer could not store a batch (rolled back; nothing of it kept).
    #[error("store {path}: {message}")]
    Write {
        /// The database file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The writer is gone (shutting down).
    #[error("the store is shutting down")]
    Closed,
}

/// What the writer does: store a batch, or run a write of its own.
enum Work {
    Batch(Job),
    Write(WriteJob),
}

/// A write of the store's own, run on the writer's connection.
type WriteFn = Box<dyn FnOnce(&Connection) -> rusqlite::Result<()> + Send>;

/// A write outside ingest (incidents), in a transaction of its own.
struct WriteJob {
    write: WriteFn,
    reply: oneshot::Sender<Result<(), String>>,
}

struct Job {
    batch: Batch,
    received: SystemTime,
    probe_clock: SystemTime,
    /// The result, and the batch handed back to the submitter.
    reply: oneshot::Sender<(Result<Ack, String>, Batch)>,
}

impl Store {
    /// Opens (or creates) the store in `dir` and starts its writer.
    pub fn open(
        dir: &Path,
        retention: Retention,
        on_stored: OnStored,
    ) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join("vantage.db");
        let err = |source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.execute_batch(schema::SQL).map_err(err)?;
        schema::upgrade(&conn).map_err(err)?;
        let version: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(err)?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('version', ?1)",
                    [schema::VERSION],
                )
                .map_err(err)?;
            }
            Some(v) if v == schema::VERSION => {}
            Some(found) => {
                return Err(StoreError::Version {
                    path: path.display().to_string(),
                    found,
                });
            }
        }
        let reader = Connection::open(&path).map_err(err)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = Writer {
            conn,
            retention,
            ids: Ids::default(),
            open: OpenMinutes::default(),
            last_expiry: SystemTime::now(),
        };
        std::thread::Builder::new()
            .name("vantage-store".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| StoreError::Dir {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Store {
            jobs: tx,
            on_stored,
            reader: Arc::new(Mutex::new(reader)),
            path,
        })
    }

    /// Stores `batch` durably; returns once it is committed. `probe_clock`
    /// is the probe's clock when it sent the request (for its clock offset).
    pub async fn submit(
        &self,
        batch: Batch,
        received: SystemTime,
        probe_clock: SystemTime,
    ) -> Result<Ack, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Work::Batch(Job {
                batch,
                received,
                probe_clock,
                reply,
            }))
            .await
            .map_err(|_| StoreError::Closed)?;
        match answer.await {
            Ok((Ok(ack), batch)) => {
                if !ack.duplicate {
                    (self.on_stored)(&batch, received, probe_clock);
                }
                Ok(ack)
            }
            Ok((Err(message), _)) => Err(StoreError::Write {
                path: self.path.display().to_string(),
                message,
            }),
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// Runs `write` on the writer's connection in a transaction of its own,
    /// committed (durable) when this returns `Ok`.
    pub async fn write(
        &self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static,
    ) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Work::Write(WriteJob {
                write: Box::new(write),
                reply,
            }))
            .await
            .map_err(|_| StoreError::Closed)?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StoreError::Write {
                path: self.path.display().to_string(),
                message,
            }),
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// Every probe ever stored.
    pub fn probes(&self) -> Result<Vec<ProbeRecord>, StoreError> {
        let conn = self.reader.lock().unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT probe_id, src_region, zone, last_seen_us, clock_offset_us, batches, results, stopped
                 FROM probes ORDER BY probe_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ProbeRecord {
                    probe_id: r.get(0)?,
                    src_region: r.get(1)?,
                    zone: r.get(2)?,
                    last_seen: from_us(r.get(3)?),
                    clock_offset_us: r.get(4)?,
                    batches: r.get::<_, i64>(5)? as u64,
                    results: r.get::<_, i64>(6)? as u64,
                    stopped: r.get(7)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Connect totals per (src_region, target name), from the rollups.
    pub fn totals(&self) -> Result<HashMap<(String, String), Totals>, StoreError> {
        let conn = self.reader.lock().unwrap();
        let mut out: HashMap<(String, String), Totals> = HashMap::new();
        let mut stmt = conn
            .prepare(
                "SELECT s.src_region, t.name, m.data FROM minutes m
                 JOIN series s ON s.id = m.series_id JOIN targets t ON t.id = s.target_id
                 WHERE s.address <> ''",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let key = (
                r.get(0).map_err(|e| self.err(e))?,
                r.get(1).map_err(|e| self.err(e))?,
            );
            let data: Vec<u8> = r.get(2).map_err(|e| self.err(e))?;
            let m = ConnectMinute::decode(&data).map_err(|e| self.err(malformed(e)))?;
            let t = out.entry(key).or_default();
            for o in ConnectOutcome::ALL {
                *t.outcomes.entry(o.as_str()).or_default() += m.outcomes[o.index()];
            }
            t.attempts += m.attempts();
        }
        drop(rows);
        let mut stmt = conn
            .prepare(
                "SELECT s.src_region, t.name, count(*) FROM failures f
                 JOIN series s ON s.id = f.series_id JOIN targets t ON t.id = s.target_id
                 GROUP BY s.src_region, t.name",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let key = (
                r.get(0).map_err(|e| self.err(e))?,
                r.get(1).map_err(|e| self.err(e))?,
            );
            out.entry(key).or_default().failures_kept =
                r.get::<_, i64>(2).map_err(|e| self.err(e))? as u64;
        }
        Ok(out)
    }

    /// The target names each probe has reported, for the cardinality cap.
    pub fn probe_targets(&self) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.reader.lock().unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT DISTINCT s.probe_id, t.name FROM series s JOIN targets t ON t.id = s.target_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Batches stored (receipts kept).
    pub fn receipts(&self) -> Result<u64, StoreError> {
        let conn = self.reader.lock().unwrap();
        conn.query_row("SELECT count(*) FROM receipts", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Runs `f` on the read connection (a consistent snapshot of what is
    /// committed), for readers outside this module such as the evidence.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = self.reader.lock().unwrap();
        let tx = conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let out = f(&tx).map_err(|e| self.err(e))?;
        drop(tx);
        Ok(out)
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.display().to_string(),
            source,
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

struct Writer {
    conn: Connection,
    retention: Retention,
    ids: Ids,
    open: OpenMinutes,
    last_expiry: SystemTime,
}

/// Database ids of targets and series, cached. Lookups on the hot path
/// allocate nothing: a target is found by a key written into a reused
/// buffer, a series by integers and the address.
#[derive(Default)]
struct Ids {
    /// `name \x1f host \x1f port \x1f labels` to the target's id.
    targets: HashMap<String, i64>,
    /// (region, probe) to a small local number used in `series` keys.
    probes: HashMap<(String, String), u32>,
    /// (probe number, target id, address; `None` for DNS) to the series id.
    series: HashMap<(u32, i64, Option<std::net::SocketAddr>), i64>,
    key: String,
}

impl Ids {
    /// Forgets every id: those handed out in a rolled-back transaction are gone.
    fn clear(&mut self) {
        self.targets.clear();
        self.probes.clear();
        self.series.clear();
    }
}

/// Encoded rollup rows of the newest minutes, so that the batches of a
/// minute merge into its row without reading it back each time. Only what
/// is committed (or about to be, in the open transaction) is here: any
/// rollback clears it, and a miss reads the row from the database.
#[derive(Default)]
struct OpenMinutes {
    rows: HashMap<(i64, i64), Vec<u8>>,
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
    connect: HashMap<(i64, i64), ConnectMinute>,
    dns: HashMap<(i64, i64), DnsMinute>,
    failures: Vec<FailureRow>,
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
    fn run(mut self, mut rx: mpsc::Receiver<Work>) {
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
        let mut results: Vec<Result<Ack, String>> = Vec::with_capacity(jobs.len());
        let outcome = (|| -> rusqlite::Result<()> {
            let tx = self.conn.unchecked_transaction()?;
            for job in &jobs {
                tx.execute_batch("SAVEPOINT batch")?;
                match store_batch(&tx, &mut self.ids, &mut self.open, job) {
                    Ok(ack) => {
                        tx.execute_batch("RELEASE batch")?;
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
        self.open.trim();
        for (job, result) in jobs.into_iter().zip(results) {
            let _ = job.reply.send((result, job.batch));
        }
    }
}

fn store_batch(
    tx: &Connection,
    ids: &mut Ids,
    open: &mut OpenMinutes,
    job: &Job,
) -> rusqlite::Result<Ack> {
    let (b, received) = (&job.batch, job.received);
    let p = &b.probe;
    let seq = i64::try_from(b.seq).unwrap_or(i64::MAX);
    let seen = tx
        .prepare_cached("SELECT 1 FROM receipts WHERE probe_id = ?1 AND stream = ?2 AND seq = ?3")?
        .exists(params![p.probe_id, b.stream, seq])?;
    if seen {
        return Ok(Ack {
            seq: b.seq,
            stored: 0,
            duplicate: true,
        });
    }
    let now_us = us(received);
    tx.prepare_cached(
        "INSERT INTO receipts (probe_id, stream, seq, received_us, results) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![p.probe_id, b.stream, seq, now_us, b.results.len() as i64])?;
    let offset_us = us(job.probe_clock) - now_us;
    tx.prepare_cached(
        "INSERT INTO probes (probe_id, src_region, zone, first_seen_us, last_seen_us, clock_offset_us, batches, results, stopped)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, 1, ?6, ?7)
         ON CONFLICT (probe_id) DO UPDATE SET
            src_region = excluded.src_region, zone = excluded.zone,
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

    let mut g = Grouped::default();
    let probe = probe_number(ids, &p.src_region, &p.probe_id);
    for r in &b.results {
        let target = target_id(tx, ids, r)?;
        let mut series_id =
            |address: Option<std::net::SocketAddr>| series_id(tx, ids, p, probe, target, address);
        if let Some(d) = &r.dns {
            let s = series_id(None)?;
            let m = g
                .dns
                .entry((s, minute(r.started_at.system_time())))
                .or_default();
            m.outcomes[d.outcome.index()] += 1;
            m.duration.observe(&DNS_BUCKETS_US, d.duration_us);
            if d.outcome != vantage_probe::outcome::DnsOutcome::Ok {
                g.failures.push(FailureRow {
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
        for a in &r.attempts {
            let s = series_id(Some(a.address))?;
            let m = g
                .connect
                .entry((s, minute(a.started_at.system_time())))
                .or_default();
            m.outcomes[a.outcome.index()] += 1;
            m.syn_retransmits += u64::from(a.syn_retransmits);
            if a.outcome == ConnectOutcome::Ok {
                m.duration.observe(&CONNECT_BUCKETS_US, a.duration_us);
                if let Some(rtt) = a.rtt_us {
                    m.rtt.observe(&CONNECT_BUCKETS_US, u64::from(rtt));
                }
            } else {
                g.failures.push(FailureRow {
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
    let mut merged = Vec::with_capacity(g.connect.len() + g.dns.len());
    for (key, mut m) in g.connect {
        if let Some(old) = stored(key)? {
            m.merge(&ConnectMinute::decode(&old).map_err(malformed)?);
        }
        merged.push((key, m.encode()));
    }
    for (key, mut m) in g.dns {
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
    let mut fail = tx.prepare_cached(
        "INSERT INTO failures (series_id, at_us, outcome, duration_us, syn_retransmits, errno, local_port, icmp_from)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for f in g.failures {
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
    Ok(Ack {
        seq: b.seq,
        stored: b.results.len() as u32,
        duplicate: false,
    })
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

fn series_id(
    tx: &Connection,
    ids: &mut Ids,
    p: &vantage_probe::result::Identity,
    probe: u32,
    target: i64,
    address: Option<std::net::SocketAddr>,
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
    Ok(id)
}

/// Removes data past its retention, a bounded chunk per statement, so that
/// batches waiting behind an expiry pass never wait long.
fn expire(conn: &Connection, r: Retention, now: SystemTime) -> rusqlite::Result<()> {
    let cutoff = |d: Duration| us(now.checked_sub(d).unwrap_or(UNIX_EPOCH));
    let minute_cutoff = cutoff(r.rollups).div_euclid(60_000_000);
    let statements = [
        (
            "DELETE FROM minutes WHERE (minute, series_id) IN
             (SELECT minute, series_id FROM minutes WHERE minute < ?1 LIMIT ?2)",
            minute_cutoff,
        ),
        (
            "DELETE FROM failures WHERE rowid IN
             (SELECT rowid FROM failures WHERE at_us < ?1 ORDER BY at_us LIMIT ?2)",
            cutoff(r.failures),
        ),
        (
            "DELETE FROM receipts WHERE (probe_id, stream, seq) IN
             (SELECT probe_id, stream, seq FROM receipts WHERE received_us < ?1 LIMIT ?2)",
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

fn malformed(e: rollup::Malformed) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

/// A minute in microseconds: rollups are kept per minute.
pub(crate) const MINUTE_US: i64 = 60_000_000;

/// Microseconds since the epoch (negative before it).
pub(crate) fn us(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// The time `v` microseconds after the epoch.
pub(crate) fn from_us(v: i64) -> SystemTime {
    if v >= 0 {
        UNIX_EPOCH + Duration::from_micros(v as u64)
    } else {
        UNIX_EPOCH - Duration::from_micros(v.unsigned_abs())
    }
}

/// Minutes since the epoch.
fn minute(t: SystemTime) -> i64 {
    us(t).div_euclid(MINUTE_US)
}
