//! The running probe in-process: real rounds against loopback backends,
//! `/metrics` scraped, parsed, checked by promtool, counts consistent.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::sync::mpsc;
use vantage_probe::config::{Config, Overrides};
use vantage_probe::{Accepting, Answer, Control, DnsServer, Refusing, Service};
use vantage_tests::{
    Scratch, http_get, parse_exposition, promtool_check_metrics, value, wait_for_200,
};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[tokio::test]
async fn metrics_expose_real_rounds_with_bounded_labels() {
    let web = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let closed = Refusing::bind(LO).unwrap();
    let dns = DnsServer::bind(
        SocketAddr::new(LO, 0),
        HashMap::from([("web.test".to_string(), Answer::Addresses(vec![LO]))]),
    )
    .await
    .unwrap();
    let dir = Scratch::new("metrics");
    let text = format!(
        r#"
[probe]
src_region = "test-region"
id = "p1"
[admin]
listen = "127.0.0.1:0"
[dns]
servers = ["{dns}"]
timeout = "100ms"
[defaults]
interval = "200ms"
timeout = "90ms"
families = ["ipv4"]
[[targets]]
name = "web"
host = "web.test"
port = {web}
labels = {{ service = "web", provider = "local" }}
[[targets]]
name = "db"
host = "127.0.0.1"
port = {closed}
labels = {{ service = "db", provider = "local" }}
[[targets]]
name = "gone"
host = "gone.test"
port = {web}
"#,
        dns = dns.addr,
        web = web.addr.port(),
        closed = closed.addr.port(),
    );
    let path = dir.write("probe.toml", &text);
    let config = Config::parse(&text, &path, &Overrides::default()).unwrap();
    let service = Service::with_config(path, Overrides::default(), config)
        .await
        .unwrap();
    let admin = service.admin_addr();
    let (tx, rx) = mpsc::channel(1);
    let running = tokio::spawn(service.run(rx));

    wait_for_200(admin, "/-/ready", Duration::from_secs(5)).await;
    assert_eq!(http_get(admin, "/-/healthy").await.unwrap().0, 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (status, body) = http_get(admin, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    promtool_check_metrics(&body);
    let s = parse_exposition(&body);

    let web_attempts = value(
        &s,
        "vantage_probe_connect_attempts_total",
        &[("target", "web")],
    )
    .unwrap();
    assert!(
        web_attempts >= 4.0,
        "about 6 rounds in 1.3 s: {web_attempts}"
    );
    // Every successful attempt has one RTT sample and one duration sample.
    let web_rtt = value(
        &s,
        "vantage_probe_connect_rtt_seconds_count",
        &[("target", "web")],
    )
    .unwrap();
    assert_eq!(web_rtt, web_attempts);
    assert_eq!(
        value(
            &s,
            "vantage_probe_connect_failures_total",
            &[("target", "web")]
        ),
        None,
        "no failure series for a healthy target"
    );
    let web_lookups = value(
        &s,
        "vantage_probe_dns_lookups_total",
        &[("target", "web"), ("outcome", "ok")],
    )
    .unwrap();
    assert_eq!(
        web_lookups, web_attempts,
        "one lookup per round, one address"
    );

    let db_attempts = value(
        &s,
        "vantage_probe_connect_attempts_total",
        &[("target", "db")],
    )
    .unwrap();
    let db_refused = value(
        &s,
        "vantage_probe_connect_failures_total",
        &[("target", "db"), ("reason", "refused")],
    )
    .unwrap();
    assert!(db_attempts >= 4.0);
    assert_eq!(db_refused, db_attempts, "every attempt refused");

    // A name that does not resolve: lookups counted, no connect attempted.
    assert!(
        value(
            &s,
            "vantage_probe_dns_lookups_total",
            &[("target", "gone"), ("outcome", "nxdomain")]
        )
        .unwrap()
            >= 4.0
    );
    assert_eq!(
        value(
            &s,
            "vantage_probe_connect_attempts_total",
            &[("target", "gone")]
        ),
        Some(0.0),
        "no connect attempted, and the series says so from the start"
    );

    // Labels are bounded: names and enums, never an address or an error text.
    for sample in &s {
        assert_eq!(
            sample.labels.get("src_region").map(String::as_str),
            Some("test-region"),
            "{sample:?}"
        );
        for (k, v) in &sample.labels {
            assert!(
                v.parse::<IpAddr>().is_err() && v.parse::<SocketAddr>().is_err(),
                "{k}={v}"
            );
            assert!(v.len() < 64, "{k}={v}");
        }
    }
    assert_eq!(value(&s, "vantage_probe_targets", &[]), Some(3.0));
    assert!(value(&s, "vantage_probe_scheduler_lag_seconds_count", &[]).unwrap() >= 12.0);

    tx.send(Control::Shutdown).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("drains promptly")
        .unwrap()
        .unwrap();
}
