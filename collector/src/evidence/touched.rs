//! Judging the cells a stored batch added failures to, as it is stored:
//! a hard fault is found when the batch that makes it significant lands,
//! not at the next evaluation period's tick.
//!
//! Only a cell that now fails at the bound that enters a fault, and that
//! the last judgment did not already find failing, asks for an evaluation,
//! and each (region, target) asks once between two ticks: an open incident's
//! failures, or a cell that fails alone but not across the fleet, do not
//! keep the evaluation loop busy.

use std::collections::HashSet;

use super::cells::{Cell, State};
use super::judgment::Judgment;
use super::localize::{Held, Signal};

/// How many of `cells` (those the batches added failures to, at `now_us`)
/// now fail and were not found failing by `last`: `tried` holds the
/// (region, target) pairs that already asked since the last tick, and
/// gains those that ask now.
pub(crate) fn new_faults(
    cells: &[Cell],
    last: &Judgment,
    now_us: i64,
    alpha: f64,
    tried: &mut HashSet<(String, String)>,
) -> usize {
    let found = Held::of(&last.findings);
    cells
        .iter()
        .filter(|c| !found.holds(Signal::Failures, c))
        .filter(|c| matches!(c.state(now_us, alpha), State::Failing(_)))
        .filter(|c| tried.insert((c.src_region.clone(), c.target.clone())))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::Params;
    use crate::evidence::assessment::judge;

    const S: i64 = 1_000_000;
    const NOW: i64 = 100_000 * S;

    /// A cell of five minutes at one attempt a second, clean before, that
    /// failed at each of the seconds `failed` before now.
    fn cell(region: &str, target: &str, failed: &[i64]) -> Cell {
        let mut c = Cell::named(
            region.into(),
            target.into(),
            "gcp".into(),
            false,
            Some("10.1.0.9:5432".into()),
        );
        c.attempts = 300;
        c.first_us = NOW - 300 * S;
        c.baseline_attempts = 3600;
        c.failures = failed
            .iter()
            .map(|s| (NOW - s * S, "timeout".to_string()))
            .collect();
        c
    }

    /// The judgment of `cells`, as the loop would have published it.
    fn judged(cells: Vec<Cell>) -> Judgment {
        let p = Params::default();
        Judgment::of(judge(cells, &[], NOW, p, &Held::default()))
    }

    fn fleet(failing: &[i64]) -> Vec<Cell> {
        ["us-east-2", "us-west-1", "onprem"]
            .iter()
            .flat_map(|r| {
                ["db", "api"].map(|t| {
                    let f = if (*r, t) == ("us-east-2", "db") {
                        failing
                    } else {
                        &[]
                    };
                    cell(r, t, f)
                })
            })
            .collect()
    }

    #[test]
    fn a_cell_that_fails_anew_asks_once_until_the_tick() {
        let healthy = judged(fleet(&[]));
        assert!(healthy.findings.is_empty());
        let failing = [cell("us-east-2", "db", &[3, 2, 1, 0])];
        let mut tried = HashSet::new();
        assert_eq!(new_faults(&failing, &healthy, NOW, 1e-3, &mut tried), 1);
        // Its next batch: already asked for.
        assert_eq!(new_faults(&failing, &healthy, NOW, 1e-3, &mut tried), 0);
        // After the tick it may ask again.
        tried.clear();
        assert_eq!(new_faults(&failing, &healthy, NOW, 1e-3, &mut tried), 1);
    }

    #[test]
    fn a_cell_the_last_judgment_found_failing_does_not_ask() {
        let found = judged(fleet(&[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]));
        assert!(
            found
                .findings
                .iter()
                .any(|f| f.src_regions == ["us-east-2"] && f.targets == ["db"]),
            "{:?}",
            found.findings
        );
        let mut tried = HashSet::new();
        let failing = [cell("us-east-2", "db", &[10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0])];
        assert_eq!(new_faults(&failing, &found, NOW, 1e-3, &mut tried), 0);
        // Another region failing to it now is news.
        let other = [cell("us-west-1", "db", &[3, 2, 1, 0])];
        assert_eq!(new_faults(&other, &found, NOW, 1e-3, &mut tried), 1);
    }

    #[test]
    fn one_failure_or_a_cell_that_recovered_does_not_ask() {
        let healthy = judged(fleet(&[]));
        let mut tried = HashSet::new();
        let once = [cell("us-east-2", "db", &[0])];
        assert_eq!(new_faults(&once, &healthy, NOW, 1e-3, &mut tried), 0);
        // Two failures two minutes ago, clean since.
        let over = [cell("us-east-2", "db", &[121, 120])];
        assert_eq!(new_faults(&over, &healthy, NOW, 1e-3, &mut tried), 0);
        assert!(tried.is_empty());
    }
}
