//! The probe function: one round of one target. Resolve the host (when it is
//! a name), then attempt one connect to every resolved address, in parallel,
//! each admitted by the global caps.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use futures_util::future::join_all;

use crate::config::{Host, Target};
use crate::connect;
use crate::dns::Resolver;
use crate::limits::{Admission, Limiter, Operation};
use crate::result::{RoundResult, Timestamp};

/// Runs rounds. The scheduler is generic over it so that its own tests can
/// drive it with a round that only records when it ran.
pub trait Runner: Send + Sync + 'static {
    /// Waits until a round may start (the global caps); the round holds
    /// the admission until it ends.
    fn admit(&self) -> impl Future<Output = Admission> + Send;

    /// Measures `target` once.
    fn run(&self, target: &Target) -> impl Future<Output = RoundResult> + Send;
}

/// The real runner: DNS through hickory, connects through the kernel.
#[derive(Debug)]
pub struct Prober {
    resolver: Option<Resolver>,
    limiter: Arc<Limiter>,
}

impl Prober {
    /// A prober with a resolver (needed when any target is a name).
    pub fn new(resolver: Option<Resolver>, limiter: Arc<Limiter>) -> Prober {
        Prober { resolver, limiter }
    }
}

impl Runner for Prober {
    async fn admit(&self) -> Admission {
        self.limiter.admit_round().await
    }

    async fn run(&self, target: &Target) -> RoundResult {
        let started_at = Timestamp::now();
        let (dns, addresses) = match &target.host {
            Host::Ip(ip) => (None, vec![*ip]),
            Host::Name(name) => {
                let Some(resolver) = &self.resolver else {
                    unreachable!("a resolver is built whenever a target is a name");
                };
                let _permit = self.limiter.acquire(Operation::Lookup).await;
                let (observation, ips) = resolver.lookup(name, target.families).await;
                (Some(observation), ips)
            }
        };
        let connect = |ip: IpAddr| async move {
            let _permit = self.limiter.acquire(Operation::Connect).await;
            connect::attempt(SocketAddr::new(ip, target.port), &target.connect).await
        };
        let addresses: Vec<IpAddr> = unique(addresses, target).collect();
        // Most targets have one address: no need for the join machinery.
        let attempts = match addresses[..] {
            [] => Vec::new(),
            [ip] => vec![connect(ip).await],
            _ => join_all(addresses.into_iter().map(connect)).await,
        };
        RoundResult {
            target: target.name.clone(),
            host: match &target.host {
                Host::Name(n) => n.clone(),
                Host::Ip(ip) => ip.to_string().into(),
            },
            port: target.port,
            labels: target.labels.clone(),
            started_at,
            dns,
            attempts,
        }
    }
}

/// The addresses of the enabled families, each once, in answer order.
fn unique(mut addresses: Vec<IpAddr>, target: &Target) -> impl Iterator<Item = IpAddr> {
    let mut seen = Vec::with_capacity(addresses.len());
    addresses.retain(|ip| {
        let keep = target.families.allows(*ip) && !seen.contains(ip);
        seen.push(*ip);
        keep
    });
    addresses.into_iter()
}
