//! Reads for the API: rollups and failures over a window of time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use rusqlite::params;
use serde::Serialize;
use vantage_probe::outcome::{ConnectOutcome, DnsOutcome};
use vantage_probe::result::Timestamp;

use super::rollup::{ConnectMinute, DnsMinute, Hist};
use super::seek::{Kind, Named};
use super::{Snapshot, Store, StoreError, malformed};
use crate::time::{MINUTE_US, from_us, us};

/// Which rows to read.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// From (inclusive).
    pub from: Option<SystemTime>,
    /// To (exclusive).
    pub to: Option<SystemTime>,
    /// Only this region.
    pub src_region: Option<String>,
    /// Only this target.
    pub target: Option<String>,
    /// At most this many rows.
    pub limit: usize,
}

/// One minute of one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollupRow {
    /// The minute's start.
    pub minute: Timestamp,
    /// Measuring region.
    pub src_region: String,
    /// Measuring probe.
    pub probe_id: String,
    /// Target name.
    pub target: String,
    /// The address, or `None` for the target's DNS lookups.
    pub address: Option<String>,
    /// Attempts (or lookups) in the minute.
    pub count: u64,
    /// Non-zero counts by outcome label.
    pub outcomes: BTreeMap<&'static str, u64>,
    /// SYN retransmits (connect rows).
    pub syn_retransmits: u64,
    /// Kernel RTT histogram of successful connects (connect rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt: Option<HistView>,
    /// Duration histogram: connect time of successes, or lookup time.
    pub duration: HistView,
}

/// A histogram as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistView {
    /// Upper bounds in microseconds; the last count is above them all.
    pub bounds_us: Vec<u64>,
    /// Non-cumulative counts.
    pub counts: Vec<u64>,
    /// Sum of the observations in microseconds.
    pub sum_us: u64,
}

/// One failure in detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureRow {
    /// When the attempt (or lookup) started, on the probe's clock.
    pub at: Timestamp,
    /// Measuring region.
    pub src_region: String,
    /// Measuring probe.
    pub probe_id: String,
    /// Target name.
    pub target: String,
    /// The address, or `None` for a failed lookup.
    pub address: Option<String>,
    /// The outcome label (`dns_*` for lookups).
    pub outcome: String,
    /// How long it took.
    pub duration_us: u64,
    /// SYN retransmits.
    pub syn_retransmits: u32,
    /// The raw errno, when there was one.
    pub errno: Option<i32>,
    /// The local port of the attempt, to find it in a capture.
    pub local_port: Option<u16>,
    /// Who answered with an ICMP unreachable: where the path broke.
    pub icmp_from: Option<String>,
}

impl HistView {
    fn of(h: &Hist, bounds: &[u64]) -> HistView {
        HistView {
            bounds_us: bounds.to_vec(),
            counts: h.counts.clone(),
            sum_us: h.sum_us,
        }
    }
}

fn filters(w: &Window) -> (i64, i64, String, String) {
    (
        w.from.map_or(i64::MIN, us),
        w.to.map_or(i64::MAX, us),
        w.src_region.clone().unwrap_or_default(),
        w.target.clone().unwrap_or_default(),
    )
}

/// Who measured a rollup row.
struct Who {
    src_region: String,
    probe_id: String,
    target: String,
}

/// The API's row for a stored minute of a series (`address` empty for
/// DNS lookups).
fn rollup_row(
    minute: i64,
    who: Who,
    address: String,
    data: &[u8],
) -> Result<RollupRow, super::rollup::Malformed> {
    let mut row = RollupRow {
        minute: from_us(minute * MINUTE_US).into(),
        src_region: who.src_region,
        probe_id: who.probe_id,
        target: who.target,
        address: None,
        count: 0,
        outcomes: BTreeMap::new(),
        syn_retransmits: 0,
        rtt: None,
        duration: HistView::of(&Hist::new(&[]), &[]),
    };
    if address.is_empty() {
        let m = DnsMinute::decode(data)?;
        for o in DnsOutcome::ALL {
            let n = m.outcomes[o.index()];
            row.count += n;
            if n > 0 {
                row.outcomes.insert(o.as_str(), n);
            }
        }
        row.duration = HistView::of(&m.duration, &vantage_probe::stats::DNS_BUCKETS_US);
    } else {
        let m = ConnectMinute::decode(data)?;
        for o in ConnectOutcome::ALL {
            let n = m.outcomes[o.index()];
            if n > 0 {
                row.outcomes.insert(o.as_str(), n);
            }
        }
        row.count = m.attempts();
        row.address = Some(address);
        row.syn_retransmits = m.syn_retransmits;
        row.rtt = Some(HistView::of(
            &m.rtt,
            &vantage_probe::stats::CONNECT_BUCKETS_US,
        ));
        row.duration = HistView::of(&m.duration, &vantage_probe::stats::CONNECT_BUCKETS_US);
    }
    Ok(row)
}

impl Snapshot<'_> {
    /// Rollup rows in the window, oldest first (then by region, probe,
    /// target and address). A window of one region or one target finds
    /// its series first and reads only theirs.
    pub fn rollups(&self, w: &Window) -> Result<Vec<RollupRow>, StoreError> {
        // Minutes that overlap [from, to).
        let first = w.from.map_or(i64::MIN, |t| us(t).div_euclid(MINUTE_US));
        let end = w.to.map_or(i64::MAX, |t| {
            let u = us(t);
            u.div_euclid(MINUTE_US) + i64::from(u.rem_euclid(MINUTE_US) != 0)
        });
        if w.src_region.is_some() || w.target.is_some() {
            return self.rollups_of(w, first, end);
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT m.minute, s.src_region, s.probe_id, t.name, s.address, m.data
                 FROM minutes m JOIN series s ON s.id = m.series_id JOIN targets t ON t.id = s.target_id
                 WHERE m.minute >= ?1 AND m.minute < ?2
                 ORDER BY m.minute, s.src_region, s.probe_id, t.name, s.address LIMIT ?3",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![first, end, w.limit as i64], |r| {
                let address: String = r.get(4)?;
                rollup_row(
                    r.get(0)?,
                    Who {
                        src_region: r.get(1)?,
                        probe_id: r.get(2)?,
                        target: r.get(3)?,
                    },
                    address,
                    r.get_ref(5)?.as_blob()?,
                )
                .map_err(malformed)
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// [`Snapshot::rollups`] of one region's or one target's series, read
    /// key by key.
    fn rollups_of(&self, w: &Window, first: i64, end: i64) -> Result<Vec<RollupRow>, StoreError> {
        let targets = w.target.clone().map(|t| BTreeSet::from([t]));
        let mut series = self.series_of(&Named {
            targets: targets.as_ref(),
            region: w.src_region.as_deref(),
            kind: Kind::Any,
        })?;
        series.sort_by(|a, b| {
            (&a.src_region, &a.probe_id, &a.target, &a.address, a.id).cmp(&(
                &b.src_region,
                &b.probe_id,
                &b.target,
                &b.address,
                b.id,
            ))
        });
        let mut out = Vec::new();
        let mut bad = None;
        self.seek_minutes(first, end, &series, |minute, s, blob| {
            if out.len() >= w.limit {
                return false;
            }
            let who = Who {
                src_region: s.src_region.clone(),
                probe_id: s.probe_id.clone(),
                target: s.target.clone(),
            };
            match rollup_row(minute, who, s.address.clone(), blob) {
                Ok(row) => out.push(row),
                Err(e) => bad = Some(e),
            }
            bad.is_none()
        })?;
        match bad {
            Some(e) => Err(self.err(malformed(e))),
            None => Ok(out),
        }
    }

    /// Failures in the window, oldest first.
    pub fn failures(&self, w: &Window) -> Result<Vec<FailureRow>, StoreError> {
        let conn = self.conn;
        let (from, to, region, target) = filters(w);
        let mut stmt = conn
            .prepare_cached(
                "SELECT f.at_us, s.src_region, s.probe_id, t.name, s.address, f.outcome, f.duration_us,
                        f.syn_retransmits, f.errno, f.local_port, f.icmp_from
                 FROM failures f JOIN series s ON s.id = f.series_id JOIN targets t ON t.id = s.target_id
                 WHERE f.at_us >= ?1 AND f.at_us < ?2
                   AND (?3 = '' OR s.src_region = ?3) AND (?4 = '' OR t.name = ?4)
                 ORDER BY f.at_us, s.src_region, s.probe_id, t.name LIMIT ?5",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![from, to, region, target, w.limit as i64], |r| {
                let address: String = r.get(4)?;
                Ok(FailureRow {
                    at: from_us(r.get(0)?).into(),
                    src_region: r.get(1)?,
                    probe_id: r.get(2)?,
                    target: r.get(3)?,
                    address: (!address.is_empty()).then_some(address),
                    outcome: r.get(5)?,
                    duration_us: r.get::<_, i64>(6)? as u64,
                    syn_retransmits: r.get::<_, i64>(7)? as u32,
                    errno: r.get(8)?,
                    local_port: r.get(9)?,
                    icmp_from: r.get(10)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

impl Store {
    /// Rollup rows in `w`, oldest first.
    pub fn rollups(&self, w: &Window) -> Result<Vec<RollupRow>, StoreError> {
        self.read(|s| s.rollups(w))
    }

    /// Failures kept in detail in `w`, oldest first.
    pub fn failures(&self, w: &Window) -> Result<Vec<FailureRow>, StoreError> {
        self.read(|s| s.failures(w))
    }
}
