//! The benchmarks' simulated fleet: its targets as every probe sees them.
//! Fabricated results only: nothing is ever sent to these addresses. Also
//! included by the tests crate's load benchmark.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Target `t` as every probe sees it.
pub(crate) struct TargetSpec {
    pub(crate) name: Arc<str>,
    pub(crate) host: Arc<str>,
    pub(crate) labels: Arc<BTreeMap<String, String>>,
    /// Found through a name (half of them), else an address.
    pub(crate) dns: bool,
    pub(crate) address: SocketAddr,
}

/// `n` targets over three providers, ten to a service.
pub(crate) fn targets(n: usize) -> Vec<TargetSpec> {
    const PROVIDERS: [&str; 3] = ["aws", "gcp", "onprem"];
    (0..n)
        .map(|t| {
            let dns = t % 2 == 0;
            let ip = [10, 20, (t / 250) as u8, (t % 250) as u8 + 1];
            TargetSpec {
                name: format!("svc-{t:04}").into(),
                host: if dns {
                    format!("svc-{t:04}.{}.example.internal", PROVIDERS[t % 3]).into()
                } else {
                    format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3]).into()
                },
                labels: Arc::new(BTreeMap::from([
                    ("provider".to_string(), PROVIDERS[t % 3].to_string()),
                    ("service".to_string(), format!("svc-{}", t / 10)),
                ])),
                dns,
                address: SocketAddr::from((ip, 443)),
            }
        })
        .collect()
}
