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
/// instead of the cells themselves. Made on every evaluation from every
/// connect cell, so it names each region once, not once per target.
#[derive(Debug, Clone, Default)]
pub(crate) struct Views {
    /// The regions, each once; views point into it.
    regions: Vec<String>,
    /// Per target, a view per region with cells, in the cells' order.
    targets: HashMap<String, Vec<View>>,
}

/// One region's view of one target, as kept.
#[derive(Debug, Clone)]
struct View {
    region: usize,
    attempts: u64,
    failures: u64,
    state: &'static str,
    reasons: BTreeMap<String, u64>,
}

impl Views {
    /// The views of `a`'s connect cells.
    pub(crate) fn of(a: &Assessment) -> Views {
        let mut out = Views::default();
        let mut region_ix: HashMap<&str, usize> = HashMap::new();
        // The cells come in the matrix's order: a name is looked up only
        // when it is not the previous cell's.
        let mut last: Option<(&str, usize)> = None;
        for c in a.cells.iter().filter(|c| c.address.is_some()) {
            let region = match last {
                Some((r, i)) if r == c.src_region => i,
                _ => {
                    let i = *region_ix.entry(&c.src_region).or_insert_with(|| {
                        out.regions.push(c.src_region.clone());
                        out.regions.len() - 1
                    });
                    last = Some((&c.src_region, i));
                    i
                }
            };
            let of_target = match out.targets.get_mut(&c.target) {
                Some(v) => v,
                None => out.targets.entry(c.target.clone()).or_default(),
            };
            let at = match of_target.iter().rposition(|v| v.region == region) {
                Some(at) => at,
                None => {
                    of_target.push(View {
                        region,
                        attempts: 0,
                        failures: 0,
                        state: "unknown",
                        reasons: BTreeMap::new(),
                    });
                    of_target.len() - 1
                }
            };
            let v = &mut of_target[at];
            v.attempts += c.attempts;
            match c.state(a.at_us, a.alpha) {
                CellState::Failing(f) => {
                    v.state = "failing";
                    v.failures += f.failures;
                    for (k, n) in f.reasons {
                        *v.reasons.entry(k).or_insert(0) += n;
                    }
                }
                CellState::Healthy if v.state == "unknown" => v.state = "reachable",
                _ => {}
            }
        }
        out
    }

    /// `target`'s view from every region with cells, by region name.
    fn of_target(&self, target: &str) -> Vec<RegionView> {
        let mut views: Vec<RegionView> = self
            .targets
            .get(target)
            .into_iter()
            .flatten()
            .map(|v| RegionView {
                src_region: self.regions[v.region].clone(),
                state: v.state.to_string(),
                attempts: v.attempts,
                failures: v.failures,
                reasons: v.reasons.clone(),
            })
            .collect();
        views.sort_by(|a, b| a.src_region.cmp(&b.src_region));
        views
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
    let regions = views.of_target(target);
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
