//! Reads for the API: rollups and failures over a window of time.

use std::collections::BTreeMap;
use std::time::SystemTime;

use rusqlite::params;
use serde::Serialize;
use vantage_probe::outcome::{ConnectOutcome, DnsOutcome};
use vantage_probe::result::Timestamp;

use super::rollup::{ConnectMinute, DnsMinute, Hist};
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

impl Snapshot<'_> {
    /// Rollup rows in the window, oldest first.
    pub fn rollups(&self, w: &Window) -> Result<Vec<RollupRow>, StoreError> {
        let conn = self.conn;
        let (_, _, region, target) = filters(w);
        let mut stmt = conn
            .prepare_cached(
                "SELECT m.minute, s.src_region, s.probe_id, t.name, s.address, m.data
                 FROM minutes m JOIN series s ON s.id = m.series_id JOIN targets t ON t.id = s.target_id
                 WHERE m.minute >= ?1 AND m.minute < ?2
                   AND (?3 = '' OR s.src_region = ?3) AND (?4 = '' OR t.name = ?4)
                 ORDER BY m.minute, s.src_region, s.probe_id, t.name, s.address LIMIT ?5",
            )
            .map_err(|e| self.err(e))?;
        // Minutes that overlap [from, to).
        let first = w.from.map_or(i64::MIN, |t| us(t).div_euclid(MINUTE_US));
        let end = w.to.map_or(i64::MAX, |t| {
            let u = us(t);
            u.div_euclid(MINUTE_US) + i64::from(u.rem_euclid(MINUTE_US) != 0)
        });
        let rows = stmt
            .query_map(params![first, end, region, target, w.limit as i64], |r| {
                let minute: i64 = r.get(0)?;
                let address: String = r.get(4)?;
                let data: Vec<u8> = r.get(5)?;
                let mut row = RollupRow {
                    minute: from_us(minute * MINUTE_US).into(),
                    src_region: r.get(1)?,
                    probe_id: r.get(2)?,
                    target: r.get(3)?,
                    address: None,
                    count: 0,
                    outcomes: BTreeMap::new(),
                    syn_retransmits: 0,
                    rtt: None,
                    duration: HistView::of(&Hist::new(&[]), &[]),
                };
                if address.is_empty() {
                    let m = DnsMinute::decode(&data).map_err(malformed)?;
                    for o in DnsOutcome::ALL {
                        let n = m.outcomes[o.index()];
                        row.count += n;
                        if n > 0 {
                            row.outcomes.insert(o.as_str(), n);
                        }
                    }
                    row.duration = HistView::of(&m.duration, &vantage_probe::stats::DNS_BUCKETS_US);
                } else {
                    let m = ConnectMinute::decode(&data).map_err(malformed)?;
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
                    row.duration =
                        HistView::of(&m.duration, &vantage_probe::stats::CONNECT_BUCKETS_US);
                }
                Ok(row)
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
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
