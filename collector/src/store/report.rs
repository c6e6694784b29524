//! What a report reads: connect and lookup minutes in order, who answered
//! with ICMP, and the fleet's name the collector wrote.

use std::collections::BTreeSet;

use rusqlite::{OptionalExtension, params};

use super::rollup::{ConnectMinute, DnsMinute};
use super::seek::{Kind, Named};
use super::{Snapshot, Store, StoreError};

/// One connect minute of one series, as a report reads it.
#[derive(Debug)]
pub struct ReportMinute<'a> {
    /// Minutes since the epoch.
    pub minute: i64,
    /// Measuring region.
    pub src_region: &'a str,
    /// The target's id: the same for every row of it in one snapshot.
    pub target_id: i64,
    /// Target name.
    pub target: &'a str,
    /// The target's labels (JSON object).
    pub labels: &'a str,
    /// The minute.
    pub data: ConnectMinute,
}

/// One minute of one target's DNS lookups from one probe, as a report
/// reads it.
#[derive(Debug)]
pub struct ReportLookups<'a> {
    /// Minutes since the epoch.
    pub minute: i64,
    /// Measuring region.
    pub src_region: &'a str,
    /// Target name.
    pub target: &'a str,
    /// The minute.
    pub data: DnsMinute,
}

/// ICMP unreachables from one sender, with one outcome, for one (region,
/// target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpCount {
    /// The ICMP's source address.
    pub sender: String,
    /// The outcome it gave the connects.
    pub outcome: String,
    /// The region whose SYNs it answered.
    pub src_region: String,
    /// The target those SYNs were for.
    pub target: String,
    /// How many.
    pub count: u64,
}

impl Snapshot<'_> {
    /// Visits the connect minutes of the `targets` named from
    /// `first_minute` (included) to `end_minute` (excluded), of `region` or
    /// of every region, ordered by minute, region, target and address. A
    /// row whose data does not decode is passed over.
    ///
    /// Read series by series, minute by minute: what it costs grows with
    /// their rows, not with the fleet's. Every target's sums are the group
    /// rows' ([`Snapshot::group_rows`]).
    pub fn connect_minutes(
        &self,
        first_minute: i64,
        end_minute: i64,
        region: Option<&str>,
        targets: &BTreeSet<String>,
        mut visit: impl FnMut(ReportMinute<'_>),
    ) -> Result<(), StoreError> {
        let series = self.series_of(&Named::targets(targets, region, Kind::Connect))?;
        self.seek_minutes(first_minute, end_minute, &series, |minute, s, blob| {
            if let Ok(data) = ConnectMinute::decode(blob) {
                visit(ReportMinute {
                    minute,
                    src_region: &s.src_region,
                    target_id: s.target_id,
                    target: &s.target,
                    labels: &s.labels,
                    data,
                });
            }
            true
        })
    }

    /// Visits the DNS lookup minutes of the `targets` named, read as
    /// [`Snapshot::connect_minutes`] reads theirs, ordered by minute,
    /// region and target.
    pub fn lookup_minutes(
        &self,
        first_minute: i64,
        end_minute: i64,
        region: Option<&str>,
        targets: &BTreeSet<String>,
        mut visit: impl FnMut(ReportLookups<'_>),
    ) -> Result<(), StoreError> {
        let series = self.series_of(&Named::targets(targets, region, Kind::Dns))?;
        self.seek_minutes(first_minute, end_minute, &series, |minute, s, blob| {
            if let Ok(data) = DnsMinute::decode(blob) {
                visit(ReportLookups {
                    minute,
                    src_region: &s.src_region,
                    target: &s.target,
                    data,
                });
            }
            true
        })
    }

    /// ICMP unreachables kept with the failures from `from_us` (included)
    /// to `to_us` (excluded), from `region` or every region, counted by
    /// (sender, outcome, region, target).
    pub fn icmp_counts(
        &self,
        from_us: i64,
        to_us: i64,
        region: Option<&str>,
    ) -> Result<Vec<IcmpCount>, StoreError> {
        let run = || -> rusqlite::Result<Vec<IcmpCount>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT f.icmp_from, f.outcome, s.src_region, t.name, count(*)
                 FROM failures f JOIN series s ON s.id = f.series_id JOIN targets t ON t.id = s.target_id
                 WHERE f.at_us >= ?1 AND f.at_us < ?2 AND f.icmp_from IS NOT NULL
                   AND (?3 = '' OR s.src_region = ?3)
                 GROUP BY 1, 2, 3, 4",
            )?;
            stmt.query_map(params![from_us, to_us, region.unwrap_or("")], |r| {
                Ok(IcmpCount {
                    sender: r.get(0)?,
                    outcome: r.get(1)?,
                    src_region: r.get(2)?,
                    target: r.get(3)?,
                    count: r.get::<_, i64>(4)? as u64,
                })
            })?
            .collect()
        };
        run().map_err(|e| self.err(e))
    }

    /// The fleet's name (`[server] fleet` of the collector that wrote the
    /// store), if it wrote one.
    pub fn fleet_name(&self) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = 'fleet'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }
}

impl Store {
    /// Records the fleet's name, for the reports read from this store.
    pub async fn set_fleet_name(&self, name: String) -> Result<(), StoreError> {
        self.write(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('fleet', ?1)",
                [name],
            )
            .map(|_| ())
        })
        .await
    }
}
