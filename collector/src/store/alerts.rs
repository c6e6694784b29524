//! What the Alertmanager receiver reads and keeps: the targets an alert
//! can name, the connect minutes of some targets over an alert's window,
//! and the evidence given for each alert (JSON, as it was answered).

use std::collections::BTreeMap;

use rusqlite::params;

use super::rollup::ConnectMinute;
use super::{Snapshot, Store, StoreError};

/// A target as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownTarget {
    pub name: String,
    /// `host:port`.
    pub instance: String,
    pub labels: BTreeMap<String, String>,
}

/// The evidence given for one alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    /// Alertmanager's fingerprint.
    pub fingerprint: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// The evidence (JSON).
    pub evidence: String,
}

impl Snapshot<'_> {
    /// Every target the store knows, by name.
    pub fn known_targets(&self) -> Result<Vec<KnownTarget>, StoreError> {
        let run = || -> rusqlite::Result<Vec<KnownTarget>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT DISTINCT name, host, port, labels FROM targets ORDER BY name",
            )?;
            stmt.query_map([], |r| {
                let labels: String = r.get(3)?;
                Ok(KnownTarget {
                    name: r.get(0)?,
                    instance: format!("{}:{}", r.get::<_, String>(1)?, r.get::<_, i64>(2)?),
                    labels: serde_json::from_str(&labels).unwrap_or_default(),
                })
            })?
            .collect()
        };
        run().map_err(|e| self.err(e))
    }

    /// Visits the connect minutes of `targets` from `first_minute` to
    /// `last_minute`, both included, with their region. A row whose data
    /// does not decode is passed over.
    pub fn target_minutes(
        &self,
        targets: &[String],
        first_minute: i64,
        last_minute: i64,
        mut visit: impl FnMut(&str, &ConnectMinute),
    ) -> Result<(), StoreError> {
        // One pass over the window; rows of other targets are left out by
        // SQLite before their rollups are read.
        let names = serde_json::to_string(targets).expect("names serialize");
        let mut run = || -> rusqlite::Result<()> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT s.src_region, m.data FROM minutes m
                 JOIN series s ON s.id = m.series_id JOIN targets t ON t.id = s.target_id
                 WHERE m.minute >= ?1 AND m.minute <= ?2 AND s.address <> ''
                   AND t.name IN (SELECT value FROM json_each(?3))",
            )?;
            let mut rows = stmt.query(params![first_minute, last_minute, names])?;
            while let Some(r) = rows.next()? {
                let Ok(m) = ConnectMinute::decode(r.get_ref(1)?.as_blob()?) else {
                    continue;
                };
                visit(r.get_ref(0)?.as_str()?, &m);
            }
            Ok(())
        };
        run().map_err(|e| self.err(e))
    }

    /// The evidence given for recent alerts (JSON), newest first.
    pub fn alert_evidence(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let run = || -> rusqlite::Result<Vec<String>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT evidence FROM alert_evidence ORDER BY rowid DESC LIMIT ?1",
            )?;
            stmt.query_map([limit as i64], |r| r.get::<_, String>(0))?
                .collect()
        };
        run().map_err(|e| self.err(e))
    }
}

impl Store {
    /// Keeps the evidence given for a webhook's alerts, received at
    /// `received_us`: durable when this returns `Ok`.
    pub async fn record_alert_evidence(
        &self,
        received_us: i64,
        rows: Vec<AlertRow>,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            let mut stmt = c.prepare_cached(
                "INSERT INTO alert_evidence (received_us, fingerprint, status, evidence) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for a in &rows {
                stmt.execute(params![received_us, a.fingerprint, a.status, a.evidence])?;
            }
            Ok(())
        })
        .await
    }
}
