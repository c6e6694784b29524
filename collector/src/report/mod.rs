//! The incident report: the evidence for an incident (or a window of time)
//! as one document, built from stored data only, so that the same data
//! always gives the same bytes. [`build`] makes the model (also the
//! `--format json` output, schema [`SCHEMA`]); `markdown.rs`, `text.rs` and
//! `svg.rs` render it to any `io::Write`.

pub(crate) mod fetch;
pub(crate) mod icmp;
pub(crate) mod lookups;
pub(crate) mod markdown;
pub(crate) mod run;
pub(crate) mod svg;
pub(crate) mod text;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vantage_probe::outcome::{Blame, ConnectOutcome};
use vantage_probe::result::Timestamp;
use vantage_probe::stats::CONNECT_BUCKETS_US;

use crate::evidence::cells::Syns;
use crate::evidence::incidents;
use crate::evidence::stats::quantile;
use crate::store::groups::Kind;
use crate::store::rollup::{ConnectMinute, Hist};
use crate::store::{Minute, Snapshot, StoreError};
use crate::time::{MINUTE_US, from_us, us};

/// The version of the JSON form.
pub(crate) const SCHEMA: u32 = 1;

/// Context shown before an incident's first failure.
const LEAD: Duration = Duration::from_secs(10 * 60);

/// What to report on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Request {
    /// One incident.
    pub incident: Option<u64>,
    /// Or a window: from (inclusive).
    pub from: Option<Timestamp>,
    /// To (exclusive).
    pub to: Option<Timestamp>,
    /// Only this target.
    pub target: Option<String>,
    /// Only this region.
    pub src_region: Option<String>,
}

/// The report (`--format json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Report {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The fleet the data belongs to (`[server] fleet` of its collector).
    pub fleet: String,
    /// Where the data was read: a collector URL or a data directory.
    pub source: String,
    /// The window covered.
    pub from: Timestamp,
    /// See `from`.
    pub to: Timestamp,
    /// A title for the document.
    pub title: String,
    /// The verdict in one line.
    pub verdict: String,
    /// The incident reported on, if any.
    pub incident: Option<IncidentSummary>,
    /// What happened, oldest first.
    pub timeline: Vec<Line>,
    /// Regions with data, sorted.
    pub regions: Vec<String>,
    /// Target groups with data, sorted.
    pub groups: Vec<String>,
    /// Region x group over the window.
    pub matrix: Vec<MatrixCell>,
    /// Per region and minute, over the targets in question (for charts).
    pub series: Vec<RegionSeries>,
    /// Regions that reach the affected targets.
    pub healthy_alternatives: Vec<String>,
    /// Who answered SYNs with ICMP unreachable (to the targets in
    /// question): where the path broke. Absent from older collectors.
    #[serde(default)]
    pub icmp_senders: Vec<icmp::IcmpSender>,
    /// DNS lookups per region, of the targets in question: by outcome,
    /// with the resolver's answer times. Absent from older collectors.
    #[serde(default)]
    pub lookups: Vec<lookups::LookupRow>,
    /// What the data cannot say.
    pub cannot_say: Vec<String>,
}

impl Report {
    /// Whether it reports on a DNS incident: its evidence is lookups.
    pub(crate) fn is_dns(&self) -> bool {
        self.incident.as_ref().is_some_and(|i| i.scope == "dns")
    }
}

/// The incident in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct IncidentSummary {
    pub id: u64,
    /// `open` or `resolved`.
    pub state: String,
    pub scope: String,
    /// Affected regions.
    pub src_regions: Vec<String>,
    /// Affected targets.
    pub targets: Vec<String>,
    /// First failure.
    pub onset: Timestamp,
    /// When it was resolved.
    pub resolved: Option<Timestamp>,
    /// The finding's sentence.
    pub explanation: String,
}

/// One timeline line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Line {
    /// When.
    pub at: Timestamp,
    /// What.
    pub event: String,
}

/// One region x group cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MatrixCell {
    /// Region.
    pub src_region: String,
    /// Target group.
    pub group: String,
    /// Connect attempts (local failures left out).
    pub attempts: u64,
    /// Failures blamed on the target or path.
    pub failures: u64,
    /// The most common failure outcome.
    pub dominant_reason: Option<String>,
    /// SYN retransmits, over every attempt.
    pub syn_retransmits: u64,
    /// Successful connects that took over 0.9 s: a SYN was lost and sent
    /// again. Absent from older collectors.
    #[serde(default)]
    pub slow_connects: u64,
    /// SYNs sent (one per connect on the wire, one more per retransmit).
    /// Absent from older collectors.
    #[serde(default)]
    pub syns_sent: u64,
    /// SYNs that went unanswered: retransmitted, or the last of a connect
    /// that timed out.
    #[serde(default)]
    pub syns_lost: u64,
    /// Median kernel RTT of successful connects, ms.
    pub rtt_p50_ms: Option<f64>,
    /// 95th percentile, ms.
    pub rtt_p95_ms: Option<f64>,
}

/// One region's minutes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RegionSeries {
    /// Region.
    pub src_region: String,
    /// Minutes with data, oldest first.
    pub minutes: Vec<MinutePoint>,
}

/// One minute of one region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MinutePoint {
    /// The minute's start.
    pub minute: Timestamp,
    /// Attempts.
    pub attempts: u64,
    /// Failures.
    pub failures: u64,
    /// SYNs sent. Absent from older collectors.
    #[serde(default)]
    pub syns_sent: u64,
    /// SYNs lost.
    #[serde(default)]
    pub syns_lost: u64,
    /// RTT percentiles of successful connects, ms: 5th, 50th, 95th.
    pub rtt_ms: Option<[f64; 3]>,
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReportError {
    /// The incident does not exist.
    #[error("no incident {0}")]
    NoSuchIncident(u64),
    /// Neither an incident nor a whole window was asked for.
    #[error("give an incident, or both from and to")]
    NoWindow,
    /// The store said no.
    #[error("reading the store: {0}")]
    Store(#[from] StoreError),
}

fn at(us: i64) -> Timestamp {
    from_us(us).into()
}

/// Builds the report for `req` from a snapshot of the store; `source`
/// names where the data was read.
pub(crate) fn build(
    snap: &Snapshot<'_>,
    req: &Request,
    source: &str,
) -> Result<Report, ReportError> {
    let fleet = snap.fleet_name()?.unwrap_or_else(|| "unnamed".to_string());
    let incident = match req.incident {
        Some(id) => Some(incidents::one(snap, id)?.ok_or(ReportError::NoSuchIncident(id))?),
        None => None,
    };
    let (from_us, to_us) = window(incident.as_ref().map(|(i, _)| i), req)?;
    let focus: Option<BTreeSet<String>> = match (&incident, &req.target) {
        (_, Some(t)) => Some(BTreeSet::from([t.clone()])),
        (Some((i, _)), None) if !i.finding.targets.is_empty() => {
            Some(i.finding.targets.iter().cloned().collect())
        }
        _ => None,
    };
    let tally = Tally::read(
        snap,
        from_us,
        to_us,
        req.src_region.as_deref(),
        focus.as_ref(),
    )?;
    let story = match &incident {
        Some((i, events)) => Story::of_incident(i, events, &tally.regions),
        None => Story::of_window(&snap.incident_events(from_us, to_us)?, from_us, to_us),
    };
    let icmp_senders = icmp::senders(
        snap,
        from_us,
        to_us,
        req.src_region.as_deref(),
        focus.as_ref(),
    )?;
    let lookups = lookups::per_region(
        snap,
        from_us,
        to_us,
        req.src_region.as_deref(),
        focus.as_ref(),
    )?;
    let mut cannot_say = story.cannot_say;
    cannot_say.extend(mechanisms(&tally.matrix));
    Ok(Report {
        schema: SCHEMA,
        fleet,
        source: source.to_string(),
        from: at(from_us),
        to: at(to_us),
        title: story.title,
        verdict: story.verdict,
        incident: story.summary,
        timeline: story.timeline,
        regions: tally.regions.into_iter().collect(),
        groups: tally.groups.into_iter().collect(),
        matrix: tally.matrix,
        series: tally.series,
        healthy_alternatives: story.healthy_alternatives,
        icmp_senders,
        lookups,
        cannot_say,
    })
}

/// The window a report covers, µs: an incident's from its onset (with
/// [`LEAD`] of context) to its end, in whole minutes; else the request's.
fn window(
    incident: Option<&incidents::Incident>,
    req: &Request,
) -> Result<(i64, i64), ReportError> {
    match (incident, &req.from, &req.to) {
        (Some(i), _, _) => {
            let onset = i.finding.since_us.min(i.opened_us);
            let end = i.resolved_us.unwrap_or(i.last_seen_us);
            Ok((
                (onset - LEAD.as_micros() as i64).div_euclid(MINUTE_US) * MINUTE_US,
                (end.div_euclid(MINUTE_US) + 1) * MINUTE_US,
            ))
        }
        (None, Some(f), Some(t)) => Ok((us(f.system_time()), us(t.system_time()))),
        _ => Err(ReportError::NoWindow),
    }
}

/// What the minutes add up to: who had data, the region x group matrix,
/// and per region and minute the targets in question.
struct Tally {
    regions: BTreeSet<String>,
    groups: BTreeSet<String>,
    matrix: Vec<MatrixCell>,
    series: Vec<RegionSeries>,
}

impl Tally {
    /// Reads the minutes from `from_us` to `to_us` of `region` (or every
    /// region): the matrix from the rows of each region and group, and
    /// the per-minute series from the `focus` targets' own minutes (or,
    /// with no focus, from the groups' minutes). So a report reads what it
    /// shows, not every series of the fleet.
    fn read(
        snap: &Snapshot<'_>,
        from_us: i64,
        to_us: i64,
        region: Option<&str>,
        focus: Option<&BTreeSet<String>>,
    ) -> Result<Tally, StoreError> {
        let first = from_us.div_euclid(MINUTE_US);
        let end = to_us.div_euclid(MINUTE_US) + i64::from(to_us.rem_euclid(MINUTE_US) != 0);
        let mut regions = BTreeSet::new();
        let mut groups = BTreeSet::new();
        let mut cells: BTreeMap<(String, String), Acc> = BTreeMap::new();
        let mut minutes: BTreeMap<(String, i64), Acc> = BTreeMap::new();
        snap.group_rows(Kind::Connect, first, end, region, |r| {
            let Minute::Connect(m) = &r.data else {
                return;
            };
            let key = (r.src_region.to_string(), r.group.to_string());
            match cells.get_mut(&key) {
                Some(a) => a.add(m),
                None => {
                    regions.insert(key.0.clone());
                    groups.insert(key.1.clone());
                    cells.entry(key).or_default().add(m);
                }
            }
        })?;
        match focus {
            Some(targets) => snap.connect_minutes(first, end, region, targets, |r| {
                minutes
                    .entry((r.src_region.to_string(), r.minute))
                    .or_default()
                    .add(&r.data);
            })?,
            None => snap.group_minutes(Kind::Connect, first, end, region, |r| {
                if let Minute::Connect(m) = &r.data {
                    minutes
                        .entry((r.src_region.to_string(), r.minute))
                        .or_default()
                        .add(m);
                }
            })?,
        }
        let matrix = cells
            .into_iter()
            .map(|((src_region, group), a)| MatrixCell {
                src_region,
                group,
                attempts: a.attempts,
                failures: a.failures,
                dominant_reason: a.dominant(),
                syn_retransmits: a.syn_retransmits,
                slow_connects: a.syns.slow,
                syns_sent: a.syns.sent,
                syns_lost: a.syns.lost,
                rtt_p50_ms: a.rtt(0.5),
                rtt_p95_ms: a.rtt(0.95),
            })
            .collect();
        let mut series: BTreeMap<String, Vec<MinutePoint>> = BTreeMap::new();
        for ((region, minute), a) in minutes {
            series.entry(region).or_default().push(MinutePoint {
                minute: at(minute * MINUTE_US),
                attempts: a.attempts,
                failures: a.failures,
                syns_sent: a.syns.sent,
                syns_lost: a.syns.lost,
                rtt_ms: match (a.rtt(0.05), a.rtt(0.5), a.rtt(0.95)) {
                    (Some(a), Some(b), Some(c)) => Some([a, b, c]),
                    _ => None,
                },
            });
        }
        Ok(Tally {
            regions,
            groups,
            matrix,
            series: series
                .into_iter()
                .map(|(src_region, minutes)| RegionSeries {
                    src_region,
                    minutes,
                })
                .collect(),
        })
    }
}

/// The words of a report: title, verdict, timeline, and what the data
/// cannot say about its subject.
struct Story {
    title: String,
    verdict: String,
    summary: Option<IncidentSummary>,
    timeline: Vec<Line>,
    healthy_alternatives: Vec<String>,
    cannot_say: Vec<String>,
}

impl Story {
    /// One incident's, with `regions` that had data in its window.
    fn of_incident(
        i: &incidents::Incident,
        events: &[incidents::Event],
        regions: &BTreeSet<String>,
    ) -> Story {
        let timeline = events
            .iter()
            .map(|e| Line {
                at: at(e.at_us),
                event: e.text.clone(),
            })
            .collect();
        let f = &i.finding;
        let what = if f.targets.is_empty() {
            f.src_regions.join(", ")
        } else {
            match &f.target_group {
                Some(g) => format!("{} -> {g}", f.src_regions.join(", ")),
                None => f.targets.join(", "),
            }
        };
        let state = if i.resolved_us.is_some() {
            "resolved"
        } else {
            "open"
        };
        let missing: Vec<&str> = f
            .healthy_alternatives
            .iter()
            .filter(|r| !regions.contains(*r))
            .map(|s| s.as_str())
            .collect();
        let mut cannot_say = Vec::new();
        if !missing.is_empty() {
            cannot_say.push(format!(
                "Regions named as healthy alternatives have no data in this window: {}.",
                missing.join(", ")
            ));
        }
        Story {
            title: format!(
                "Incident {}: {} ({}, {state})",
                i.id,
                what,
                f.scope.as_str()
            ),
            verdict: format!("{} ({state})", f.scope.as_str()),
            summary: Some(IncidentSummary {
                id: i.id,
                state: state.to_string(),
                scope: f.scope.as_str().to_string(),
                src_regions: f.src_regions.clone(),
                targets: f.targets.clone(),
                onset: at(f.since_us),
                resolved: i.resolved_us.map(at),
                explanation: f.explanation.clone(),
            }),
            timeline,
            healthy_alternatives: f.healthy_alternatives.clone(),
            cannot_say,
        }
    }

    /// A window's, with the timeline lines of the incidents inside it.
    fn of_window(overlapping: &[incidents::Event], from_us: i64, to_us: i64) -> Story {
        let timeline = overlapping
            .iter()
            .map(|e| Line {
                at: at(e.at_us),
                event: format!("Incident {}: {}", e.incident, e.text),
            })
            .collect();
        let ids: BTreeSet<u64> = overlapping.iter().map(|e| e.incident).collect();
        let verdict = if ids.is_empty() {
            "no incident in this window".to_string()
        } else {
            format!(
                "{} incident{} in this window: {}",
                ids.len(),
                if ids.len() == 1 { "" } else { "s" },
                ids.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Story {
            title: format!(
                "Connectivity {} to {}",
                crate::time::clock(at(from_us)),
                crate::time::clock(at(to_us))
            ),
            verdict,
            summary: None,
            timeline,
            healthy_alternatives: Vec::new(),
            cannot_say: Vec::new(),
        }
    }
}

/// Mechanisms and limits the numbers imply.
fn mechanisms(matrix: &[MatrixCell]) -> Vec<String> {
    let mut out = Vec::new();
    let timeouts: u64 = matrix
        .iter()
        .filter(|c| c.dominant_reason.as_deref() == Some("timeout"))
        .map(|c| c.failures)
        .sum();
    let retransmits: u64 = matrix.iter().map(|c| c.syn_retransmits).sum();
    if timeouts > 0 {
        out.push(format!(
            "{timeouts} connects timed out: their SYNs went unanswered. The data cannot tell a SYN lost on the way out from a SYN-ACK lost on the way back, nor a drop on the path from a backend that stopped answering."
        ));
    }
    if retransmits > 0 {
        out.push(format!(
            "{retransmits} SYN retransmits in this window: the kernel resent lost SYNs (about 1 s each), so lost packets show as slow connects before they show as failures."
        ));
    }
    out.push(
        "Connect failures show where TCP handshakes failed, not why: a firewall, a route, a saturated NAT and an overloaded backend look alike from the probes.".to_string(),
    );
    out
}

/// Totals of some rollup rows.
#[derive(Default)]
struct Acc {
    attempts: u64,
    failures: u64,
    syn_retransmits: u64,
    syns: Syns,
    reasons: BTreeMap<&'static str, u64>,
    rtt: Option<Hist>,
}

impl Acc {
    fn add(&mut self, m: &ConnectMinute) {
        self.attempts += m.attempts() - m.blamed(Blame::Local);
        self.failures += m.blamed(Blame::Remote);
        for o in ConnectOutcome::ALL {
            let n = m.outcomes[o.index()];
            if n > 0 && o.blame() == Blame::Remote {
                *self.reasons.entry(o.as_str()).or_insert(0) += n;
            }
        }
        self.syn_retransmits += m.syn_retransmits;
        let s = Syns::of(m);
        self.syns.sent += s.sent;
        self.syns.lost += s.lost;
        self.syns.slow += s.slow;
        match &mut self.rtt {
            Some(h) => h.merge(&m.rtt),
            None => self.rtt = Some(m.rtt.clone()),
        }
    }

    fn dominant(&self) -> Option<String> {
        // Ties go to the first outcome in label order: stable output.
        let mut best: Option<(&str, u64)> = None;
        for (r, n) in &self.reasons {
            if best.is_none_or(|(_, b)| *n > b) {
                best = Some((r, *n));
            }
        }
        best.map(|(r, _)| r.to_string())
    }

    fn rtt(&self, q: f64) -> Option<f64> {
        let h = self.rtt.as_ref()?;
        quantile(&CONNECT_BUCKETS_US, &h.counts, q).map(|us| (us / 100.0).round() / 10.0)
    }
}

#[cfg(test)]
mod tests;
