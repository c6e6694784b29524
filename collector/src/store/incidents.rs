//! Incidents and their timelines. The store keeps each incident's whole
//! state as JSON beside the columns it is looked up by; what the state
//! holds is the evidence's business.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{Snapshot, Store, StoreError};

/// An incident as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRow {
    pub id: u64,
    /// When it was opened (µs since the epoch).
    pub opened_us: i64,
    /// When it last changed.
    pub updated_us: i64,
    /// When it was resolved, if it was.
    pub resolved_us: Option<i64>,
    /// Its whole state (JSON).
    pub state: String,
}

/// One line of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub incident: u64,
    /// When it happened (µs since the epoch).
    pub at_us: i64,
    /// `onset`, `opened`, `regions`, `scope`, `targets` or `resolved`.
    pub kind: String,
    /// The line, for people.
    pub text: String,
}

impl Store {
    /// Writes incident changes in one transaction: durable when this
    /// returns `Ok`. `retracted` lines are removed (each the exact line
    /// written before), for lines `events` replaces.
    pub async fn write_incidents(
        &self,
        upserts: Vec<IncidentRow>,
        events: Vec<Event>,
        retracted: Vec<Event>,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            let mut upsert = conn.prepare_cached(
                "INSERT INTO incidents (id, opened_us, updated_us, resolved_us, state) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET updated_us = excluded.updated_us,
                    resolved_us = excluded.resolved_us, state = excluded.state",
            )?;
            for i in &upserts {
                upsert.execute(params![
                    i.id as i64,
                    i.opened_us,
                    i.updated_us,
                    i.resolved_us,
                    i.state
                ])?;
            }
            let mut retract = conn.prepare_cached(
                "DELETE FROM incident_events WHERE rowid = (SELECT rowid FROM incident_events
                    WHERE incident_id = ?1 AND at_us = ?2 AND kind = ?3 AND text = ?4 LIMIT 1)",
            )?;
            for e in &retracted {
                retract.execute(params![e.incident as i64, e.at_us, e.kind, e.text])?;
            }
            let mut event = conn.prepare_cached(
                "INSERT INTO incident_events (incident_id, at_us, kind, text) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for e in &events {
                event.execute(params![e.incident as i64, e.at_us, e.kind, e.text])?;
            }
            Ok(())
        })
        .await
    }
}

impl Snapshot<'_> {
    /// The open incidents' states, by id, and the highest id ever given.
    pub fn open_incidents(&self) -> Result<(Vec<String>, u64), StoreError> {
        let run = || -> rusqlite::Result<(Vec<String>, u64)> {
            let mut stmt = self
                .conn
                .prepare("SELECT state FROM incidents WHERE resolved_us IS NULL ORDER BY id")?;
            let open = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let last: Option<i64> =
                self.conn
                    .query_row("SELECT max(id) FROM incidents", [], |r| r.get(0))?;
            Ok((open, last.unwrap_or(0) as u64))
        };
        run().map_err(|e| self.err(e))
    }

    /// The states of incidents open or updated since `since_us`, newest
    /// first, at most `limit`.
    pub fn incidents_since(&self, since_us: i64, limit: usize) -> Result<Vec<String>, StoreError> {
        let run = || -> rusqlite::Result<Vec<String>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT state FROM incidents WHERE updated_us >= ?1 OR resolved_us IS NULL
                 ORDER BY id DESC LIMIT ?2",
            )?;
            stmt.query_map(params![since_us, limit as i64], |r| r.get::<_, String>(0))?
                .collect()
        };
        run().map_err(|e| self.err(e))
    }

    /// One incident's state and its timeline, oldest line first.
    pub fn incident(&self, id: u64) -> Result<Option<(String, Vec<Event>)>, StoreError> {
        let run = || -> rusqlite::Result<Option<(String, Vec<Event>)>> {
            let state: Option<String> = self
                .conn
                .query_row(
                    "SELECT state FROM incidents WHERE id = ?1",
                    [id as i64],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(state) = state else {
                return Ok(None);
            };
            let mut stmt = self.conn.prepare_cached(
                "SELECT at_us, kind, text FROM incident_events WHERE incident_id = ?1 ORDER BY at_us, rowid",
            )?;
            let events = stmt
                .query_map([id as i64], |r| {
                    Ok(Event {
                        incident: id,
                        at_us: r.get(0)?,
                        kind: r.get(1)?,
                        text: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some((state, events)))
        };
        run().map_err(|e| self.err(e))
    }

    /// Timeline lines of every incident from `from_us` (included) to
    /// `to_us` (excluded), oldest first.
    pub fn incident_events(&self, from_us: i64, to_us: i64) -> Result<Vec<Event>, StoreError> {
        let run = || -> rusqlite::Result<Vec<Event>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT incident_id, at_us, kind, text FROM incident_events
                 WHERE at_us >= ?1 AND at_us < ?2 ORDER BY at_us, rowid",
            )?;
            stmt.query_map(params![from_us, to_us], |r| {
                Ok(Event {
                    incident: r.get::<_, i64>(0)? as u64,
                    at_us: r.get(1)?,
                    kind: r.get(2)?,
                    text: r.get(3)?,
                })
            })?
            .collect()
        };
        run().map_err(|e| self.err(e))
    }
}
