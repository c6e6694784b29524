//! Reachability: the second opinion that automation asks before it acts
//! on "I can't reach it" (`GET /api/v1/reachability?target=T[&from=R]`).
//! A target one region cannot reach while others can is not down.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use vantage_probe::result::Timestamp;

use super::assessment::Assessment;
use super::cells::State as CellState;
use super::localize::{Finding, Scope};

/// One region's view of a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RegionView {
    pub src_region: String,
    /// `reachable`, `failing` or `unknown`.
    pub state: String,
    /// Recent attempts (every address).
    pub attempts: u64,
    /// Failures in the telling window, when failing.
    pub failures: u64,
    /// Failures by outcome, when failing.
    pub reasons: BTreeMap<String, u64>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Reachability {
    pub target: String,
    /// When the judgment it comes from was made: the evaluation loop's
    /// last.
    pub judged_at: Timestamp,
    /// `reachable` (no region fails), `reachable_elsewhere` (some regions
    /// fail, others reach it: not the target), `down` (a target-side
    /// finding), `unreachable` (every region with data fails, without a
    /// quorum to call it down), `unknown` (no recent data).
    pub verdict: String,
    /// The asking region's own state, when `from` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<RegionView>,
    /// Regions that reach it.
    pub reachable_from: Vec<String>,
    /// Regions that fail to reach it.
    pub failing_from: Vec<String>,
    /// Every region with recent data.
    pub regions: Vec<RegionView>,
    /// The findings that name this target.
    pub findings: Vec<Finding>,
}

/// Every target's view from each region, as an assessment's cells give it:
/// what reachability answers from, kept with the published judgment
/// instead of the cells themselves.
#[derive(Debug, Clone, Default)]
pub(crate) struct Views(HashMap<String, BTreeMap<String, RegionView>>);

impl Views {
    /// The views of `a`'s connect cells.
    pub(crate) fn of(a: &Assessment) -> Views {
        let mut out: HashMap<String, BTreeMap<String, RegionView>> = HashMap::new();
        for c in a.cells.iter().filter(|c| c.address.is_some()) {
            let of_target = match out.get_mut(&c.target) {
                Some(m) => m,
                None => out.entry(c.target.clone()).or_default(),
            };
            let v = match of_target.get_mut(&c.src_region) {
                Some(v) => v,
                None => of_target
                    .entry(c.src_region.clone())
                    .or_insert_with(|| RegionView {
                        src_region: c.src_region.clone(),
                        state: "unknown".into(),
                        attempts: 0,
                        failures: 0,
                        reasons: BTreeMap::new(),
                    }),
            };
            v.attempts += c.attempts;
            match c.state(a.at_us, a.alpha) {
                CellState::Failing(f) => {
                    v.state = "failing".into();
                    v.failures += f.failures;
                    for (k, n) in f.reasons {
                        *v.reasons.entry(k).or_insert(0) += n;
                    }
                }
                CellState::Healthy if v.state == "unknown" => v.state = "reachable".into(),
                _ => {}
            }
        }
        Views(out)
    }
}

/// The reachability of `target` in a judgment at `at_us`: its `views`
/// and `findings`.
pub(crate) fn judge(
    views: &Views,
    findings: &[Finding],
    at_us: i64,
    target: &str,
    from: Option<&str>,
) -> Reachability {
    let regions = views.0.get(target).cloned().unwrap_or_default();
    let regions: Vec<RegionView> = regions.into_values().collect();
    let names = |state: &str| -> Vec<String> {
        regions
            .iter()
            .filter(|v| v.state == state)
            .map(|v| v.src_region.clone())
            .collect()
    };
    let (reachable_from, failing_from) = (names("reachable"), names("failing"));
    let findings: Vec<Finding> = findings
        .iter()
        .filter(|f| f.targets.iter().any(|t| t == target))
        .cloned()
        .collect();
    let verdict = if findings
        .iter()
        .any(|f| f.scope == Scope::Target || f.scope == Scope::Global)
    {
        "down"
    } else if reachable_from.is_empty() && failing_from.is_empty() {
        "unknown"
    } else if failing_from.is_empty() {
        "reachable"
    } else if reachable_from.is_empty() {
        "unreachable"
    } else {
        "reachable_elsewhere"
    };
    Reachability {
        target: target.to_string(),
        judged_at: Timestamp::from(crate::time::from_us(at_us)),
        verdict: verdict.to_string(),
        from: from.and_then(|r| regions.iter().find(|v| v.src_region == r).cloned()),
        reachable_from,
        failing_from,
        regions,
        findings,
    }
}
