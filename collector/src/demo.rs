//! `vantage-collector demo`: the whole fleet on one machine. A collector with
//! its embedded store, and one probe per named region, each connecting from
//! its own loopback source address, all measuring backends the demo starts on
//! loopback. These are the real collector and the real probe engine on real
//! sockets; nothing is replayed or simulated.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vantage_probe::config::{Config as ProbeConfig, Overrides};
use vantage_probe::{Accepting, Answer, Control, DnsServer, Refusing, Service};

use crate::config::Config;
use crate::service::Collector;

/// The demo's regions and the loopback address each probe connects from.
pub(crate) const REGIONS: [(&str, Ipv4Addr); 3] = [
    ("us-east-2", Ipv4Addr::new(127, 0, 0, 11)),
    ("us-west-1", Ipv4Addr::new(127, 0, 0, 12)),
    ("onprem", Ipv4Addr::new(127, 0, 0, 13)),
];

/// Runs the fleet until `stop` is cancelled.
pub(crate) async fn run(listen: SocketAddr, stop: CancellationToken) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("vantage-fleet-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = run_in(&dir, listen, stop).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(dir: &Path, listen: SocketAddr, stop: CancellationToken) -> anyhow::Result<()> {
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    // Backends: two services in "gcp", one in "aws", one refusing port.
    let api = Accepting::bind(SocketAddr::new(lo, 0)).await?;
    let web = Accepting::bind(SocketAddr::new(lo, 0)).await?;
    let queue = Accepting::bind(SocketAddr::new(lo, 0)).await?;
    let db = Refusing::bind(lo)?;
    let dns = DnsServer::bind(
        SocketAddr::new(lo, 0),
        HashMap::from([
            (
                "api.gcp.demo.vantage.test".to_string(),
                Answer::Addresses(vec![lo]),
            ),
            (
                "web.gcp.demo.vantage.test".to_string(),
                Answer::Addresses(vec![lo]),
            ),
        ]),
    )
    .await?;

    let tokens: Vec<(&str, String)> = REGIONS
        .iter()
        .map(|(region, _)| (*region, format!("{:032x}", fastrand::u128(..))))
        .collect();
    let mut text = format!(
        "[server]\nlisten = \"{listen}\"\ndata_dir = \"data\"\n[probes]\nsilent_after = \"15s\"\n"
    );
    for (region, token) in &tokens {
        text.push_str(&format!(
            "[[tokens]]\ntoken = \"{token}\"\nsrc_region = \"{region}\"\n"
        ));
    }
    let config = Config::parse(&text, &dir.join("collector.toml"))?;
    let collector = Collector::bind(config).await?;
    let addr = collector.addr();
    // The collector outlives the probes, so their last results get in.
    let collector_stop = CancellationToken::new();
    let collector_task = tokio::spawn(collector.run(collector_stop.clone()));

    let backends = Backends {
        api: api.addr,
        web: web.addr,
        queue: queue.addr,
        db: db.addr,
        dns: dns.addr,
    };
    let mut probes = Vec::new();
    for ((region, source), (_, token)) in REGIONS.iter().zip(&tokens) {
        let p = probe_config(region, source, addr, token, &backends);
        let path: PathBuf = dir.join(format!("probe-{region}.toml"));
        std::fs::write(&path, &p)?;
        let service = Service::with_config(
            path.clone(),
            Overrides::default(),
            ProbeConfig::parse(&p, &path, &Overrides::default())?,
        )
        .await?;
        let admin = service.admin_addr();
        let (tx, rx) = mpsc::channel(1);
        probes.push((region, admin, tx, tokio::spawn(service.run(rx))));
    }

    let admins: Vec<(&str, SocketAddr)> = probes.iter().map(|(r, a, _, _)| (**r, *a)).collect();
    print_banner(dir, addr, &tokens[0].1, &admins, &backends);

    stop.cancelled().await;
    for (_, _, tx, _) in &probes {
        let _ = tx.send(Control::Shutdown).await;
    }
    for (region, _, _, task) in probes {
        match tokio::time::timeout(Duration::from_secs(30), task).await {
            Ok(Ok(Ok(()))) => {}
            other => tracing::warn!(region, ?other, "probe did not stop cleanly"),
        }
    }
    collector_stop.cancel();
    collector_task.await??;
    Ok(())
}

/// Where the demo's backends listen.
struct Backends {
    api: SocketAddr,
    web: SocketAddr,
    queue: SocketAddr,
    db: SocketAddr,
    dns: SocketAddr,
}

/// The config of `region`'s probe: every backend, connects from `source`,
/// results pushed to the collector at `collector` with `token`.
fn probe_config(
    region: &str,
    source: &Ipv4Addr,
    collector: SocketAddr,
    token: &str,
    b: &Backends,
) -> String {
    let targets = [
        (
            "api",
            "api.gcp.demo.vantage.test",
            b.api.port(),
            "gcp",
            "api",
        ),
        (
            "web",
            "web.gcp.demo.vantage.test",
            b.web.port(),
            "gcp",
            "web",
        ),
        ("queue", "127.0.0.1", b.queue.port(), "aws", "queue"),
        ("db", "127.0.0.1", b.db.port(), "aws", "db"),
    ];
    let mut p = format!(
        "[probe]\nsrc_region = \"{region}\"\nid = \"{region}-demo\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [collector]\nurl = \"http://{collector}\"\ntoken = \"{token}\"\nspool_dir = \"spool-{region}\"\nflush_interval = \"1s\"\n\
         [dns]\nservers = [\"{}\"]\ntimeout = \"400ms\"\n[defaults]\ninterval = \"1s\"\ntimeout = \"500ms\"\nfamilies = [\"ipv4\"]\n",
        b.dns
    );
    for (name, host, port, provider, service) in targets {
        p.push_str(&format!(
            "[[targets]]\nname = \"{name}\"\nhost = \"{host}\"\nport = {port}\nsource_address = \"{source}\"\n\
             labels = {{ provider = \"{provider}\", service = \"{service}\" }}\n"
        ));
    }
    p
}

/// What the demo runs and where, for the person who started it.
fn print_banner(
    dir: &Path,
    addr: SocketAddr,
    token: &str,
    admins: &[(&str, SocketAddr)],
    backends: &Backends,
) {
    println!(
        "vantage fleet demo: a collector and {} probes on this machine",
        admins.len()
    );
    println!(
        "  collector: http://{addr}   (store in {})",
        dir.join("data").display()
    );
    println!("    metrics: curl -s http://{addr}/metrics | grep '^vantage_connect_attempts_total'");
    println!(
        "    probes:  curl -s -H 'Authorization: Bearer {}' http://{addr}/api/v1/probes",
        token
    );
    for (region, admin) in admins {
        println!("  probe {region:<10} /metrics on http://{admin}/metrics");
    }
    println!(
        "  backends: api {} | web {} | queue {} | db (refusing) {} | dns {}",
        backends.api, backends.web, backends.queue, backends.db, backends.dns
    );
    println!("results reach the collector within 2 s; Ctrl-C to stop");
}
