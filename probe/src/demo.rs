//! `vantage-probe demo`: the probe engine, unchanged, measuring real backends
//! that the demo starts on loopback (see [`crate::testbed`]), so a newcomer
//! sees every kind of outcome in `/metrics` within seconds.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use tokio::sync::mpsc;

use crate::config::{Config, Overrides};
use crate::service::Service;
use crate::shutdown::Control;
use crate::testbed::{Accepting, Answer, DnsServer, FullQueue, Refusing};

/// The demo's config, with placeholders for the addresses picked at start.
pub(crate) const CONFIG_TEMPLATE: &str = include_str!("demo.toml");

/// Starts the backends and runs the probe until `control` says stop.
pub(crate) async fn run(admin: SocketAddr, control: mpsc::Receiver<Control>) -> anyhow::Result<()> {
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let web = Accepting::bind(SocketAddr::new(lo, 0)).await?;
    let refusing = Refusing::bind(lo)?;
    let full = FullQueue::bind(lo)?;
    let zone = HashMap::from([
        (
            "web.demo.vantage.test".to_string(),
            Answer::Addresses(vec![lo]),
        ),
        (
            "pair.demo.vantage.test".to_string(),
            Answer::Addresses(vec![lo, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))]),
        ),
        ("broken.demo.vantage.test".to_string(), Answer::ServFail),
    ]);
    let dns = DnsServer::bind(SocketAddr::new(lo, 0), zone).await?;

    let text = CONFIG_TEMPLATE
        .replace("{admin}", &admin.to_string())
        .replace("{dns}", &dns.addr.to_string())
        .replace("{web}", &web.addr.port().to_string())
        .replace("{refusing}", &refusing.addr.port().to_string())
        .replace("{full}", &full.addr.port().to_string());
    let dir = std::env::temp_dir().join(format!("vantage-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("probe.toml");
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    let config = Config::parse(&text, &path, &Overrides::default())?;

    let service = Service::with_config(path.clone(), Overrides::default(), config).await?;
    let addr = service.admin_addr();
    println!("vantage demo: probe \"demo-probe-1\" in region \"demo-local\"");
    println!(
        "  config:   {} (edit it and send SIGHUP to reload)",
        path.display()
    );
    println!(
        "  backends: web {} | refusing {} | full queue {} | dns {}",
        web.addr, refusing.addr, full.addr, dns.addr
    );
    println!("  metrics:  curl -s http://{addr}/metrics | grep '^vantage_probe_connect'");
    println!(
        "  one-shot: vantage-probe check 127.0.0.1:{} --count 3",
        web.addr.port()
    );
    println!("first rounds within 2 s; Ctrl-C to stop");
    let result = service.run(control).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}
