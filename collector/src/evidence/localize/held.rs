//! Hysteresis: the cells that open incidents hold. Such a cell is judged at
//! the looser [`Bounds::stay`], so a fault near its significance bound
//! does not come and go between evaluations; it ends when its cells pass
//! even that bound, or by the clean run that ends any fault.

use std::collections::HashMap;

use super::{Finding, Scope, Signal};
use crate::evidence::cells::{Bounds, Cell};

/// Region -> target -> the signals (a bit each) of the findings open
/// incidents stand for. Looked up by `&str`, once per cell and signal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held(HashMap<String, HashMap<String, u8>>);

fn bit(signal: Signal) -> u8 {
    match signal {
        Signal::Failures => 1,
        Signal::Latency => 2,
        Signal::Loss => 4,
    }
}

impl Held {
    /// What `findings` (those of the open incidents) hold. Silent and
    /// probe-host findings hold no cell.
    pub fn of<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Held {
        let mut out: HashMap<String, HashMap<String, u8>> = HashMap::new();
        for f in findings {
            if matches!(f.scope, Scope::Silent | Scope::Probe) {
                continue;
            }
            for r in &f.src_regions {
                let targets = out.entry(r.clone()).or_default();
                for t in &f.targets {
                    *targets.entry(t.clone()).or_default() |= bit(f.signal);
                }
            }
        }
        Held(out)
    }

    /// Whether a finding of `signal` holds `cell`.
    pub(crate) fn holds(&self, signal: Signal, cell: &Cell) -> bool {
        self.has(signal, &cell.src_region, &cell.target)
    }

    fn has(&self, signal: Signal, region: &str, target: &str) -> bool {
        self.0
            .get(region)
            .and_then(|t| t.get(target))
            .is_some_and(|b| b & bit(signal) != 0)
    }

    /// Whether every (region, target) of `f` is held for its signal.
    pub(crate) fn holds_all(&self, f: &Finding) -> bool {
        !f.src_regions.is_empty()
            && f.src_regions
                .iter()
                .all(|r| f.targets.iter().all(|t| self.has(f.signal, r, t)))
    }

    /// The bounds `cell` is judged at for `signal`.
    pub(crate) fn bounds(&self, signal: Signal, cell: &Cell, alpha: f64) -> Bounds {
        if self.holds(signal, cell) {
            Bounds::stay(alpha)
        } else {
            Bounds::enter(alpha)
        }
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
