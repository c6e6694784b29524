//! The embedded store: SQLite (WAL, `synchronous = FULL`) in the data
//! directory, written by one thread ([`writer`]). This module and its
//! children are the only code that speaks SQL: the rest of the collector
//! gets typed values from a [`Snapshot`] and writes through typed calls.
//!
//! - `writer`: the writer thread: group commit, savepoints, receipts, expiry.
//! - [`committed`]: what the writer hands on after each commit, for state
//!   kept in memory beside the store.
//! - `digest`: a batch's content digest, kept in its receipt.
//! - `schema`: the tables, created and upgraded on open.
//! - [`rollup`]: the per-minute rollup rows' encoding.
//! - [`groups`]: the minutes of each region and target group, summed, by
//!   minute and by hour, for region x group matrices over long windows.
//! - `snapshot`: a consistent read ([`Store::read`], [`ReadOnly`]).
//! - typed queries per concern: `probes` (the fleet's probes and totals),
//!   `matrix` (the evidence's minutes and failures), `incidents`, `alerts`
//!   (Alertmanager evidence), `report` (its minutes, ICMP senders, the
//!   fleet's name), [`read`] (the read API's rows).

mod alerts;
pub(crate) mod committed;
mod digest;
pub(crate) mod groups;
mod incidents;
mod matrix;
mod probes;
pub(crate) mod read;
mod report;
pub(crate) mod rollup;
mod schema;
mod seek;
mod snapshot;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};
use vantage_probe::wire::{Ack, Batch};

use crate::config::Retention;
use writer::{Job, Work, WriteJob, Writer};

pub(crate) use alerts::{AlertRow, KnownTarget};
pub(crate) use incidents::{Event, IncidentRow};
pub(crate) use matrix::{Minute, MinuteRow};
pub(crate) use probes::ProbeRecord;
pub(crate) use snapshot::{ReadOnly, Snapshot};

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Work>,
    reader: Arc<Mutex<Connection>>,
    path: PathBuf,
    sink: committed::SinkSlot,
}

/// What the store made of a batch it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored, or the retry of a batch stored before (`duplicate`).
    Acked(Ack),
    /// Its (probe, stream, seq) was stored before with other content: a
    /// probe whose sequence counter went back. Nothing of it was stored.
    SeqReused,
}

impl Outcome {
    /// The acknowledgement; panics on any other outcome.
    #[cfg(test)]
    pub(crate) fn acked(self) -> Ack {
        match self {
            Outcome::Acked(ack) => ack,
            other => panic!("not acknowledged: {other:?}"),
        }
    }
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
    /// A record kept as JSON (an incident, alert evidence) does not parse.
    #[error("stored {what} does not parse: {message}")]
    Unreadable {
        /// What it is.
        what: &'static str,
        /// Why.
        message: String,
    },
}

impl Store {
    /// Opens (or creates) the store in `dir` and starts its writer.
    pub fn open(dir: &Path, retention: Retention) -> Result<Store, StoreError> {
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
        let (tx, rx) = mpsc::channel(writer::QUEUE);
        let sink = committed::SinkSlot::default();
        let commits = committed::last_seq(&conn).map_err(err)?;
        let started = std::time::Instant::now();
        if groups::rebuild_if_behind(&conn).map_err(err)? && commits > 0 {
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "rebuilt the region and group rollups from the minutes"
            );
        }
        let writer = Writer::new(conn, retention, sink.clone(), commits);
        std::thread::Builder::new()
            .name("vantage-store".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| StoreError::Dir {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Store {
            jobs: tx,
            reader: Arc::new(Mutex::new(reader)),
            path,
            sink,
        })
    }

    /// Hands every commit from now on to `sink`, on the writer's thread
    /// (see [`committed`]). Set once: a second sink is refused (`false`).
    pub(crate) fn on_commit(&self, sink: committed::Sink) -> bool {
        self.sink.set(sink).is_ok()
    }

    /// Stores `batch` durably; returns once it is committed, with the batch
    /// handed back. `probe_clock` is the probe's clock when it sent the
    /// request (for its clock offset). A batch whose receipt is there
    /// already is a retry when its content is the same ([`Outcome::Acked`],
    /// duplicate) and [`Outcome::SeqReused`] when it is not.
    pub async fn submit(
        &self,
        batch: Batch,
        received: SystemTime,
        probe_clock: SystemTime,
    ) -> Result<(Outcome, Batch), StoreError> {
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
            Ok((Ok(outcome), batch)) => Ok((outcome, batch)),
            Ok((Err(message), _)) => Err(StoreError::Write {
                path: self.path.display().to_string(),
                message,
            }),
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// Runs `write` on the writer's connection in a transaction of its own,
    /// committed (durable) when this returns `Ok`.
    async fn write(
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

    /// Runs `f` on a consistent snapshot of what is committed (the read
    /// connection, in a transaction). Blocking: call it off the async
    /// threads.
    /// Its error may be any that a store error converts into.
    pub fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Snapshot<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let conn = self.reader.lock().unwrap();
        Snapshot::run(&conn, &self.path, f)
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn malformed(e: rollup::Malformed) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

#[cfg(test)]
mod tests;
