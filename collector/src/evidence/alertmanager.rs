//! `POST /api/v1/alertmanager`: an Alertmanager webhook receiver (payload
//! version 4). Each alert is matched to targets by its labels (`target`,
//! `instance` as host:port, or a `service` or `provider` label the targets
//! carry) and answered with the cross-region evidence for its window: per
//! region, how the matched targets' connects fared since the alert began,
//! and whether they are reachable now and from where. The answer is stored,
//! so the evidence at the time of the alert stays with it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use vantage_probe::result::Timestamp;

use super::reachability::Reachability;
use super::stats::{BASELINE_FLOOR, binomial_tail};
use super::{Judge, rate};
use crate::store::{AlertRow, KnownTarget, Snapshot, Store, StoreError};
use crate::time::{MINUTE_US, us};

/// Largest webhook body accepted.
pub(crate) const MAX_BODY: usize = 1 << 20;
/// How far before an alert's start its window reaches.
const LEAD: Duration = Duration::from_secs(15 * 60);

/// The webhook payload (the fields used).
#[derive(Debug, Deserialize)]
pub(crate) struct Webhook {
    /// Must be "4".
    pub version: String,
    /// The alerts of the group.
    pub alerts: Vec<Alert>,
}

/// One alert.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Alert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// When it started (RFC 3339).
    pub starts_at: String,
    /// When it ended; Alertmanager sends a zero time while firing.
    #[serde(default)]
    pub ends_at: Option<String>,
    /// Alertmanager's fingerprint.
    #[serde(default)]
    pub fingerprint: String,
}

/// The evidence for one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AlertEvidence {
    /// Alertmanager's fingerprint.
    pub fingerprint: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// The alert's `alertname`, if any.
    pub alertname: Option<String>,
    /// The window judged.
    pub from: Timestamp,
    /// See `from`.
    pub to: Timestamp,
    /// Targets the labels matched, and by which label.
    pub matched: Vec<String>,
    /// How they were matched (`target`, `instance`, `service`, `provider`), or
    /// why nothing matched.
    pub matched_by: String,
    /// Per region over the window.
    pub regions: Vec<RegionWindow>,
    /// Each matched target's reachability now.
    pub now: Vec<Reachability>,
    /// In one sentence.
    pub summary: String,
}

/// One region over an alert's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RegionWindow {
    pub src_region: String,
    /// Connect attempts to the matched targets.
    pub attempts: u64,
    /// Failures among them.
    pub failures: u64,
    /// `failing` (beyond the baseline floor, binomially) or `reachable`.
    pub state: String,
}

/// Why a webhook payload is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HookError {
    /// Not JSON of a webhook payload's shape.
    #[error("not an Alertmanager webhook payload: {0}")]
    NotAPayload(String),
    /// Not payload version 4.
    #[error("payload version {0:?}; this receiver reads version \"4\"")]
    UnknownVersion(String),
    /// An alert's start is not a time.
    #[error("alerts[{index}].startsAt = {value:?}: {message}")]
    BadStart {
        /// Which alert.
        index: usize,
        /// What it said.
        value: String,
        /// Why it is not a time.
        message: String,
    },
}

/// One alert's window: its start, and its end unless it is still firing.
pub(crate) type AlertWindow = (SystemTime, Option<SystemTime>);

/// Reads a webhook body: the payload, and each alert's window.
pub(crate) fn parse(body: &[u8]) -> Result<(Webhook, Vec<AlertWindow>), HookError> {
    let hook: Webhook =
        serde_json::from_slice(body).map_err(|e| HookError::NotAPayload(e.to_string()))?;
    let windows = windows(&hook)?;
    Ok((hook, windows))
}

/// Checks a payload: its version, and each alert's window.
pub(crate) fn windows(hook: &Webhook) -> Result<Vec<AlertWindow>, HookError> {
    if hook.version != "4" {
        return Err(HookError::UnknownVersion(hook.version.clone()));
    }
    let mut windows = Vec::new();
    for (i, a) in hook.alerts.iter().enumerate() {
        let start = crate::time::parse(&a.starts_at).map_err(|e| HookError::BadStart {
            index: i,
            value: a.starts_at.clone(),
            message: e.to_string(),
        })?;
        // A zero or missing end means still firing.
        let end = a
            .ends_at
            .as_deref()
            .and_then(|e| crate::time::parse(e).ok())
            .filter(|e| *e > start);
        windows.push((start, end));
    }
    Ok(windows)
}

/// The evidence for each alert of `hook` (whose windows are `windows`),
/// judged at `now`. Blocking: it reads the store.
pub(crate) fn answer(
    judge: &Judge,
    hook: &Webhook,
    windows: &[AlertWindow],
    now: SystemTime,
) -> Result<Vec<AlertEvidence>, super::Unjudged> {
    let assessment = judge.latest(now)?;
    let store = judge.store();
    let known = store.read(|s| s.known_targets())?;
    let mut out = Vec::new();
    for (a, &(start, end)) in hook.alerts.iter().zip(windows) {
        let (matched, matched_by) = match_targets(&a.labels, &known);
        let from = start.checked_sub(LEAD).unwrap_or(start);
        let to = end.unwrap_or(now).min(now);
        let regions = store.read(|s| window(s, &matched, us(from), us(to)))?;
        let reach: Vec<Reachability> = matched
            .iter()
            .map(|t| assessment.reachability(t, None))
            .collect();
        let summary = summarize(&matched, &matched_by, &regions, &reach);
        out.push(AlertEvidence {
            fingerprint: a.fingerprint.clone(),
            status: a.status.clone(),
            alertname: a.labels.get("alertname").cloned(),
            from: from.into(),
            to: to.into(),
            matched,
            matched_by,
            regions,
            now: reach,
            summary,
        });
    }
    Ok(out)
}

/// Keeps the evidence given, received at `received`: durable when this
/// returns `Ok`.
pub(crate) async fn record(
    store: &Store,
    received: SystemTime,
    evidence: &[AlertEvidence],
) -> Result<(), StoreError> {
    let rows = evidence
        .iter()
        .map(|a| AlertRow {
            fingerprint: a.fingerprint.clone(),
            status: a.status.clone(),
            evidence: serde_json::to_string(a).expect("evidence serializes"),
        })
        .collect();
    store.record_alert_evidence(us(received), rows).await
}

/// Targets an alert's labels name: by `target`, then `instance`, then a
/// `service` or `provider` label the targets carry.
fn match_targets(
    labels: &BTreeMap<String, String>,
    known: &[KnownTarget],
) -> (Vec<String>, String) {
    let pick = |f: &dyn Fn(&KnownTarget) -> bool| -> Vec<String> {
        known
            .iter()
            .filter(|k| f(k))
            .map(|k| k.name.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    if let Some(t) = labels.get("target") {
        let m = pick(&|k| &k.name == t);
        if !m.is_empty() {
            return (m, "target".into());
        }
    }
    if let Some(i) = labels.get("instance") {
        let m = pick(&|k| &k.instance == i);
        if !m.is_empty() {
            return (m, "instance".into());
        }
    }
    for key in ["service", "provider"] {
        if let Some(v) = labels.get(key) {
            let m = pick(&|k| k.labels.get(key) == Some(v));
            if !m.is_empty() {
                return (m, key.into());
            }
        }
    }
    (
        Vec::new(),
        "no target matches the alert's target, instance, service or provider labels".into(),
    )
}

/// Per region: attempts and failures to `targets` in the window.
fn window(
    snap: &Snapshot<'_>,
    targets: &[String],
    from_us: i64,
    to_us: i64,
) -> Result<Vec<RegionWindow>, StoreError> {
    use vantage_probe::outcome::Blame;
    let mut per: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    snap.target_minutes(
        targets,
        from_us.div_euclid(MINUTE_US),
        to_us.div_euclid(MINUTE_US),
        |region, m| {
            let e = match per.get_mut(region) {
                Some(e) => e,
                None => per.entry(region.to_string()).or_default(),
            };
            e.0 += m.attempts() - m.blamed(Blame::Local);
            e.1 += m.blamed(Blame::Remote);
        },
    )?;
    Ok(per
        .into_iter()
        .map(|(src_region, (attempts, failures))| RegionWindow {
            state: if failures >= 2 && binomial_tail(failures, attempts, BASELINE_FLOOR) < 1e-3 {
                "failing".into()
            } else {
                "reachable".into()
            },
            src_region,
            attempts,
            failures,
        })
        .collect())
}

fn summarize(
    matched: &[String],
    matched_by: &str,
    regions: &[RegionWindow],
    now: &[Reachability],
) -> String {
    if matched.is_empty() {
        return format!("No evidence: {matched_by}.");
    }
    let failing: Vec<String> = regions
        .iter()
        .filter(|r| r.state == "failing")
        .map(|r| format!("{} {}", r.src_region, rate(r.failures, r.attempts)))
        .collect();
    let fine: Vec<&str> = regions
        .iter()
        .filter(|r| r.state != "failing")
        .map(|r| r.src_region.as_str())
        .collect();
    let verdicts: BTreeSet<&str> = now.iter().map(|r| r.verdict.as_str()).collect();
    let now_says = verdicts.into_iter().collect::<Vec<_>>().join(", ");
    let targets = matched.join(", ");
    match (failing.is_empty(), fine.is_empty()) {
        (true, _) if regions.is_empty() => {
            format!("No probe measured {targets} in the alert's window.")
        }
        (true, _) => format!(
            "{targets}: no region saw connects fail beyond normal in the alert's window ({} regions); now {now_says}. The alert's cause is not reachability from these regions.",
            regions.len()
        ),
        (false, true) => format!(
            "{targets}: every region saw connects fail ({}); now {now_says}. The fault is on the target side or shared by every region.",
            failing.join("; ")
        ),
        (false, false) => format!(
            "{targets}: connects failed from {} but not from {}; now {now_says}. The targets are up; the fault is on the failing regions' paths.",
            failing.join("; "),
            fine.join(", ")
        ),
    }
}

/// Stored alert evidence, newest first.
pub(crate) fn recent(snap: &Snapshot<'_>, limit: usize) -> Result<Vec<AlertEvidence>, StoreError> {
    snap.alert_evidence(limit)?
        .iter()
        .map(|s| {
            serde_json::from_str(s).map_err(|e| StoreError::Unreadable {
                what: "alert evidence",
                message: e.to_string(),
            })
        })
        .collect()
}
