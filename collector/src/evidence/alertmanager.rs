//! `POST /api/v1/alertmanager`: an Alertmanager webhook receiver (payload
//! version 4). Each alert is matched to targets by its labels (`target`,
//! `instance` as host:port, or a `service` or `provider` label the targets
//! carry) and answered with the cross-region evidence for its window: per
//! region, how the matched targets' connects fared since the alert began,
//! and whether they are reachable now and from where. The answer is stored,
//! so the evidence at the time of the alert stays with it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use vantage_probe::result::Timestamp;

use super::api::{Reachability, judge};
use super::stats::{BASELINE_FLOOR, binomial_tail};
use super::{Params, assess, probes_of};
use crate::answer::{denied, refuse};
use crate::ingest::json_response;
use crate::report::markdown::rate;
use crate::server::AppState;
use crate::store::MINUTE_US;

/// Largest webhook body accepted.
pub const MAX_BODY: usize = 1 << 20;
/// How far before an alert's start its window reaches.
const LEAD: Duration = Duration::from_secs(15 * 60);

/// The webhook payload (the fields used).
#[derive(Debug, Deserialize)]
pub struct Webhook {
    /// Must be "4".
    pub version: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// The alerts of the group.
    pub alerts: Vec<Alert>,
}

/// One alert.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
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
pub struct AlertEvidence {
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
pub struct RegionWindow {
    /// The region.
    pub src_region: String,
    /// Connect attempts to the matched targets.
    pub attempts: u64,
    /// Failures among them.
    pub failures: u64,
    /// `failing` (beyond the baseline floor, binomially) or `reachable`.
    pub state: String,
}

/// `POST /api/v1/alertmanager`.
pub async fn receive(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = denied(&app, &headers) {
        return r;
    }
    if body.len() > MAX_BODY {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body exceeds {MAX_BODY} bytes"),
        );
    }
    let hook: Webhook = match serde_json::from_slice(&body) {
        Ok(h) => h,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("not an Alertmanager webhook payload: {e}"),
            );
        }
    };
    if hook.version != "4" {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_version",
            format!(
                "payload version {:?}; this receiver reads version \"4\"",
                hook.version
            ),
        );
    }
    let mut windows = Vec::new();
    for (i, a) in hook.alerts.iter().enumerate() {
        let start = match humantime::parse_rfc3339_weak(&a.starts_at) {
            Ok(t) => t,
            Err(e) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "malformed",
                    format!("alerts[{i}].startsAt = {:?}: {e}", a.starts_at),
                );
            }
        };
        // A zero or missing end means still firing.
        let end = a
            .ends_at
            .as_deref()
            .and_then(|e| humantime::parse_rfc3339_weak(e).ok())
            .filter(|e| *e > start);
        windows.push((start, end));
    }

    let now = SystemTime::now();
    let probes = probes_of(&app.fleet, now);
    let params = Params::from_policy(&app.config.evidence);
    let store = app.store.clone();
    let alerts: Vec<(String, String, BTreeMap<String, String>)> = hook
        .alerts
        .iter()
        .map(|a| (a.fingerprint.clone(), a.status.clone(), a.labels.clone()))
        .collect();
    let answered = tokio::task::spawn_blocking(move || -> Result<Vec<AlertEvidence>, String> {
        let assessment = assess(&store, &probes, now, params).map_err(|e| e.to_string())?;
        let known = store.read(known_targets).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for ((fingerprint, status, labels), (start, end)) in alerts.into_iter().zip(windows) {
            let (matched, matched_by) = match_targets(&labels, &known);
            let from = start.checked_sub(LEAD).unwrap_or(start);
            let to = end.unwrap_or(now).min(now);
            let regions = store
                .read(|c| window(c, &matched, crate::store::us(from), crate::store::us(to)))
                .map_err(|e| e.to_string())?;
            let reach: Vec<Reachability> = matched
                .iter()
                .map(|t| judge(&assessment, t, None))
                .collect();
            let summary = summarize(&matched, &matched_by, &regions, &reach);
            out.push(AlertEvidence {
                fingerprint,
                status,
                alertname: labels.get("alertname").cloned(),
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
    })
    .await;
    let evidence = match answered {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => return refuse(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", e),
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    };
    let received = crate::store::us(now);
    let stored = evidence.clone();
    if let Err(e) = app
        .store
        .write(move |c| {
            let mut stmt = c.prepare_cached(
                "INSERT INTO alert_evidence (received_us, fingerprint, status, evidence) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for a in &stored {
                let json = serde_json::to_string(a).expect("evidence serializes");
                stmt.execute(params![received, a.fingerprint, a.status, json])?;
            }
            Ok(())
        })
        .await
    {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", e.to_string());
    }
    json_response(StatusCode::OK, &serde_json::json!({ "alerts": evidence }))
}

/// A target as the store knows it: name, `host:port`, labels.
type KnownTarget = (String, String, BTreeMap<String, String>);
/// Every target the store knows.
type Known = Vec<KnownTarget>;

fn known_targets(c: &Connection) -> rusqlite::Result<Known> {
    let mut stmt =
        c.prepare_cached("SELECT DISTINCT name, host, port, labels FROM targets ORDER BY name")?;
    stmt.query_map([], |r| {
        let labels: String = r.get(3)?;
        Ok((
            r.get(0)?,
            format!("{}:{}", r.get::<_, String>(1)?, r.get::<_, i64>(2)?),
            serde_json::from_str(&labels).unwrap_or_default(),
        ))
    })?
    .collect()
}

/// Targets an alert's labels name: by `target`, then `instance`, then a
/// `service` or `provider` label the targets carry.
fn match_targets(labels: &BTreeMap<String, String>, known: &Known) -> (Vec<String>, String) {
    let pick = |f: &dyn Fn(&KnownTarget) -> bool| -> Vec<String> {
        known
            .iter()
            .filter(|k| f(k))
            .map(|k| k.0.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    if let Some(t) = labels.get("target") {
        let m = pick(&|k| &k.0 == t);
        if !m.is_empty() {
            return (m, "target".into());
        }
    }
    if let Some(i) = labels.get("instance") {
        let m = pick(&|k| &k.1 == i);
        if !m.is_empty() {
            return (m, "instance".into());
        }
    }
    for key in ["service", "provider"] {
        if let Some(v) = labels.get(key) {
            let m = pick(&|k| k.2.get(key) == Some(v));
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
    c: &Connection,
    targets: &[String],
    from_us: i64,
    to_us: i64,
) -> rusqlite::Result<Vec<RegionWindow>> {
    use vantage_probe::outcome::Blame;
    let mut per: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    // One pass over the window; rows of other targets are left out by
    // SQLite before their rollups are read.
    let names = serde_json::to_string(targets).expect("names serialize");
    let mut stmt = c.prepare_cached(
        "SELECT s.src_region, m.data FROM minutes m
         JOIN series s ON s.id = m.series_id JOIN targets t ON t.id = s.target_id
         WHERE m.minute >= ?1 AND m.minute <= ?2 AND s.address <> ''
           AND t.name IN (SELECT value FROM json_each(?3))",
    )?;
    let mut rows = stmt.query(params![
        from_us.div_euclid(MINUTE_US),
        to_us.div_euclid(MINUTE_US),
        names
    ])?;
    while let Some(r) = rows.next()? {
        let data: Vec<u8> = r.get(1)?;
        let Ok(m) = crate::store::rollup::ConnectMinute::decode(&data) else {
            continue;
        };
        let e = per.entry(r.get(0)?).or_default();
        e.0 += m.attempts() - m.blamed(Blame::Local);
        e.1 += m.blamed(Blame::Remote);
    }
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
pub fn list(c: &Connection, limit: usize) -> rusqlite::Result<Vec<AlertEvidence>> {
    let mut stmt =
        c.prepare_cached("SELECT evidence FROM alert_evidence ORDER BY rowid DESC LIMIT ?1")?;
    stmt.query_map([limit as i64], |r| r.get::<_, String>(0))?
        .map(|s| {
            s.and_then(|s| {
                serde_json::from_str(&s)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
            })
        })
        .collect()
}

/// `GET /api/v1/alertmanager`: the evidence given for recent alerts.
pub async fn recent(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(r) = denied(&app, &headers) {
        return r;
    }
    crate::answer::read(&app.store, |c| list(c, 100)).await
}
