//! `vantage-probe check HOST:PORT`: the one-shot an on-call engineer runs in
//! an incident instead of strace. Same rounds as the running probe (same DNS
//! handling, same connect, same kernel RTT), printed as they happen, then a
//! summary.
//!
//! Rendering is split from measuring: [`summary`] is a pure function of the
//! results, [`text`] and [`json`] write them to any `io::Write`.

pub(crate) mod json;
pub(crate) mod summary;
pub(crate) mod text;

use std::sync::Arc;
use std::time::Duration;

use crate::config::DnsSettings;
use crate::config::{Host, Limits, Target};
use crate::dns::{Resolver, ResolverError};
use crate::limits::Limiter;
use crate::result::RoundResult;
use crate::round::{Prober, Runner};

/// What to check and how often.
#[derive(Debug, Clone)]
pub(crate) struct CheckPlan {
    /// The target (name = `HOST:PORT` as given).
    pub target: Target,
    /// Rounds to run.
    pub count: u32,
    /// Time between round starts.
    pub interval: Duration,
    /// How to resolve the host.
    pub dns: DnsSettings,
}

/// Caps for `check`: one target, so they only matter as a safety net.
const CHECK_LIMITS: Limits = Limits {
    max_in_flight: 64,
    max_connects_per_second: 100,
    max_dns_lookups_per_second: 20,
};

/// Runs the plan, calling `on_round` after each round; returns every round.
pub(crate) async fn run(
    plan: &CheckPlan,
    mut on_round: impl FnMut(&RoundResult),
) -> Result<Vec<RoundResult>, ResolverError> {
    let resolver = match plan.target.host {
        Host::Name(_) => Some(Resolver::new(&plan.dns)?),
        Host::Ip(_) => None,
    };
    let prober = Prober::new(resolver, Arc::new(Limiter::new(&CHECK_LIMITS, None)));
    let start = tokio::time::Instant::now();
    let mut rounds = Vec::with_capacity(plan.count as usize);
    for k in 0..plan.count {
        tokio::time::sleep_until(start + plan.interval * k).await;
        let round = prober.run(&plan.target).await;
        on_round(&round);
        rounds.push(round);
    }
    Ok(rounds)
}

#[cfg(test)]
mod tests;
