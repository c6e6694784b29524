//! The DNS lookups in a report: per region, over the targets in question,
//! lookups by outcome and the resolver's answer times. A DNS incident's
//! evidence is its lookups, not its connects.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use vantage_probe::outcome::DnsOutcome;
use vantage_probe::stats::DNS_BUCKETS_US;

use crate::evidence::rate;
use crate::evidence::stats::quantile;
use crate::store::groups::Kind;
use crate::store::rollup::DnsMinute;
use crate::store::{Minute, Snapshot, StoreError};
use crate::time::MINUTE_US;

/// Lookups that ended one way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Answered {
    /// The outcome's label.
    pub outcome: String,
    /// How many lookups.
    pub lookups: u64,
}

/// One region's lookups over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LookupRow {
    /// Region.
    pub src_region: String,
    /// Lookups made.
    pub lookups: u64,
    /// Lookups that returned no address.
    pub failed: u64,
    /// Failed lookups by outcome (`servfail`, `timeout`, ...), most first.
    pub outcomes: Vec<Answered>,
    /// Median time the resolver took to answer, ms (whatever the answer).
    pub answer_p50_ms: Option<f64>,
    /// 95th percentile, ms.
    pub answer_p95_ms: Option<f64>,
}

impl LookupRow {
    /// The row in a few words: "12/60 (20.0%) failed: servfail 12 · answers
    /// 0.4 / 2.0 ms".
    pub(crate) fn words(&self) -> String {
        let mut s = format!("{} failed", rate(self.failed, self.lookups));
        if !self.outcomes.is_empty() {
            let parts: Vec<String> = self
                .outcomes
                .iter()
                .map(|a| format!("{} {}", a.outcome, a.lookups))
                .collect();
            s.push_str(&format!(": {}", parts.join(", ")));
        }
        if let (Some(p50), Some(p95)) = (self.answer_p50_ms, self.answer_p95_ms) {
            s.push_str(&format!(" · answers {p50} / {p95} ms"));
        }
        s
    }
}

/// The lookups of `region` (or every region) from `from_us` to `to_us`, of
/// the `focus` targets (or all), per region.
pub(crate) fn per_region(
    snap: &Snapshot<'_>,
    from_us: i64,
    to_us: i64,
    region: Option<&str>,
    focus: Option<&BTreeSet<String>>,
) -> Result<Vec<LookupRow>, StoreError> {
    let first = from_us.div_euclid(MINUTE_US);
    let end = to_us.div_euclid(MINUTE_US) + i64::from(to_us.rem_euclid(MINUTE_US) != 0);
    let mut regions: BTreeMap<String, DnsMinute> = BTreeMap::new();
    match focus {
        // The focus targets' own lookups.
        Some(targets) => snap.lookup_minutes(first, end, region, targets, |r| {
            regions
                .entry(r.src_region.to_string())
                .or_default()
                .merge(&r.data);
        })?,
        // Every target's: the sums of each group's.
        None => snap.group_rows(Kind::Dns, first, end, region, |r| {
            if let Minute::Dns(m) = &r.data {
                regions
                    .entry(r.src_region.to_string())
                    .or_default()
                    .merge(m);
            }
        })?,
    }
    Ok(regions
        .into_iter()
        .map(|(src_region, m)| {
            let lookups: u64 = m.outcomes.iter().sum();
            let mut outcomes: Vec<Answered> = DnsOutcome::ALL
                .iter()
                .filter(|o| **o != DnsOutcome::Ok && m.outcomes[o.index()] > 0)
                .map(|o| Answered {
                    outcome: o.as_str().to_string(),
                    lookups: m.outcomes[o.index()],
                })
                .collect();
            // Most first; ties in label order (stable sort).
            outcomes.sort_by_key(|a| std::cmp::Reverse(a.lookups));
            let ms = |q| {
                quantile(&DNS_BUCKETS_US, &m.duration.counts, q)
                    .map(|us| (us / 100.0).round() / 10.0)
            };
            LookupRow {
                src_region,
                lookups,
                failed: outcomes.iter().map(|a| a.lookups).sum(),
                outcomes,
                answer_p50_ms: ms(0.5),
                answer_p95_ms: ms(0.95),
            }
        })
        .collect())
}
