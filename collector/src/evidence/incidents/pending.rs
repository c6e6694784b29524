//! A new fault's first findings, before its incident opens. The first
//! page is what on-call reads and acts on, so an incident opens with a
//! scope the next evaluation has confirmed: a finding waits until two
//! evaluations in a row judge it with the same scope. One whose scope is
//! still moving after [`SETTLE_EVALUATIONS`] opens anyway, and its first
//! line says so. Silent probes are counted, not voted on: they open at once.

use crate::evidence::localize::{Finding, Scope};

/// Evaluations in a row a new fault is seen before its incident opens,
/// settled or not.
pub(crate) const SETTLE_EVALUATIONS: u32 = 3;

/// Evaluations in a row with the same scope that settle it.
const SETTLED: u32 = 2;

/// A fault seen, its incident not yet open.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pending {
    /// The latest finding.
    pub finding: Finding,
    /// Evaluations in a row that found it.
    pub evaluations: u32,
    /// The latest of those in a row with its present scope.
    pub settled: u32,
    /// The scopes it was judged before its present one, oldest first.
    pub earlier_scopes: Vec<Scope>,
}

impl Pending {
    /// A fault found for the first time.
    pub(crate) fn first(f: &Finding) -> Pending {
        Pending {
            finding: f.clone(),
            evaluations: 1,
            settled: 1,
            earlier_scopes: Vec::new(),
        }
    }

    /// The same fault found again, as `f`.
    pub(crate) fn again(&self, f: &Finding) -> Pending {
        let mut next = self.clone();
        next.evaluations += 1;
        if f.scope == self.finding.scope {
            next.settled += 1;
        } else {
            next.settled = 1;
            next.earlier_scopes.push(self.finding.scope);
        }
        next.finding = f.clone();
        next
    }

    /// Whether its incident opens now.
    pub(crate) fn ready(&self) -> bool {
        self.finding.scope == Scope::Silent
            || self.settled >= SETTLED
            || self.evaluations >= SETTLE_EVALUATIONS
    }

    /// Whether it opens before its scope settled.
    pub(crate) fn settling(&self) -> bool {
        self.settled < SETTLED && self.finding.scope != Scope::Silent
    }
}
