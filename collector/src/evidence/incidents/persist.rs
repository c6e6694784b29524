//! Incidents as the store keeps them: their state as JSON beside the
//! columns they are looked up by, their timelines as lines.

use super::{Changes, Event, Incident};
use crate::store::{IncidentRow, Snapshot, Store, StoreError};

impl Incident {
    /// The incident as the store keeps it.
    fn row(&self) -> IncidentRow {
        IncidentRow {
            id: self.id,
            opened_us: self.opened_us,
            updated_us: self.updated_us,
            resolved_us: self.resolved_us,
            state: serde_json::to_string(self).expect("an incident serializes"),
        }
    }

    fn parse(state: &str) -> Result<Incident, StoreError> {
        serde_json::from_str(state).map_err(|e| StoreError::Unreadable {
            what: "incident",
            message: e.to_string(),
        })
    }
}

/// Writes `changes`; durable when this returns `Ok`.
pub(crate) async fn write(store: &Store, changes: &Changes) -> Result<(), StoreError> {
    let upserts = changes.upserts.iter().map(Incident::row).collect();
    store
        .write_incidents(upserts, changes.events.clone(), changes.retracted.clone())
        .await
}

/// The open incidents and the highest id ever given.
pub(crate) fn load_open(snap: &Snapshot<'_>) -> Result<(Vec<Incident>, u64), StoreError> {
    let (open, last) = snap.open_incidents()?;
    let open = open
        .iter()
        .map(|s| Incident::parse(s))
        .collect::<Result<_, _>>()?;
    Ok((open, last))
}

/// Incidents updated since `since_us`, newest first, at most `limit`.
pub(crate) fn list(
    snap: &Snapshot<'_>,
    since_us: i64,
    limit: usize,
) -> Result<Vec<Incident>, StoreError> {
    snap.incidents_since(since_us, limit)?
        .iter()
        .map(|s| Incident::parse(s))
        .collect()
}

/// One incident and its timeline, oldest line first.
pub(crate) fn one(
    snap: &Snapshot<'_>,
    id: u64,
) -> Result<Option<(Incident, Vec<Event>)>, StoreError> {
    match snap.incident(id)? {
        Some((state, events)) => Ok(Some((Incident::parse(&state)?, events))),
        None => Ok(None),
    }
}
