//! DNS through a real DNS server on loopback: every outcome, no caching,
//! one exchange per lookup, and a round over several addresses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use vantage_probe::config::{ConnectOptions, DnsSettings, Families, Host, Limits, Target};
use vantage_probe::outcome::{ConnectOutcome, DnsOutcome};
use vantage_probe::{Accepting, Answer, DnsServer, Limiter, Prober, Refusing, Resolver, Runner};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V4: Families = Families {
    ipv4: true,
    ipv6: false,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn server() -> DnsServer {
    let zone = HashMap::from([
        ("ok.test".to_string(), Answer::Addresses(vec![LO])),
        (
            "three.test".to_string(),
            Answer::Addresses(vec![ip("127.0.0.1"), ip("127.0.0.2"), ip("127.0.0.3")]),
        ),
        (
            "v6only.test".to_string(),
            Answer::Addresses(vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]),
        ),
        ("fail.test".to_string(), Answer::ServFail),
        ("refuse.test".to_string(), Answer::Refused),
        ("quiet.test".to_string(), Answer::Silence),
    ]);
    DnsServer::bind(SocketAddr::new(LO, 0), zone).await.unwrap()
}

fn resolver(server: SocketAddr, timeout_ms: u64) -> Resolver {
    Resolver::new(&DnsSettings {
        servers: Some(vec![server]),
        timeout: Duration::from_millis(timeout_ms),
        use_hosts_file: false,
        tcp_only: false,
    })
    .unwrap()
}

#[tokio::test]
async fn every_dns_outcome_is_classified() {
    let dns = server().await;
    let r = resolver(dns.addr, 500);
    let cases = [
        ("ok.test", V4, DnsOutcome::Ok, 1),
        ("ok.test", Families::BOTH, DnsOutcome::Ok, 1),
        ("three.test", V4, DnsOutcome::Ok, 3),
        ("v6only.test", V4, DnsOutcome::NoRecords, 0),
        ("v6only.test", Families::BOTH, DnsOutcome::Ok, 1),
        ("nowhere.test", V4, DnsOutcome::Nxdomain, 0),
        ("fail.test", V4, DnsOutcome::Servfail, 0),
        ("refuse.test", V4, DnsOutcome::Refused, 0),
    ];
    for (name, families, outcome, addresses) in cases {
        let (obs, ips) = r.lookup(name, families).await;
        assert_eq!(obs.outcome, outcome, "{name} {families:?}");
        assert_eq!(obs.addresses as usize, addresses, "{name}");
        assert_eq!(ips.len(), addresses, "{name}");
        assert!(obs.duration_us > 0);
    }
}

#[tokio::test]
async fn a_silent_server_is_a_timeout_after_one_exchange() {
    let dns = server().await;
    let r = resolver(dns.addr, 400);
    let (obs, _) = r.lookup("quiet.test", V4).await;
    assert_eq!(obs.outcome, DnsOutcome::Timeout);
    // Bounded by the configured timeout: no second round of queries.
    assert!((400_000..700_000).contains(&obs.duration_us), "{obs:?}");
}

#[tokio::test]
async fn lookups_are_never_cached() {
    let dns = server().await;
    let r = resolver(dns.addr, 500);
    let before = dns.queries();
    for _ in 0..3 {
        assert_eq!(r.lookup("ok.test", V4).await.0.outcome, DnsOutcome::Ok);
        assert_eq!(
            r.lookup("nowhere.test", V4).await.0.outcome,
            DnsOutcome::Nxdomain
        );
    }
    assert_eq!(dns.queries() - before, 6, "every lookup reached the server");
}

#[tokio::test]
async fn an_unreachable_resolver_is_its_own_outcome() {
    // Nothing listens: a TCP resolver connection is refused at once.
    let closed = Refusing::bind(LO).unwrap();
    let r = Resolver::new(&DnsSettings {
        servers: Some(vec![closed.addr]),
        timeout: Duration::from_millis(500),
        use_hosts_file: false,
        tcp_only: true,
    })
    .unwrap();
    let (obs, _) = r.lookup("ok.test", V4).await;
    assert_eq!(obs.outcome, DnsOutcome::Unreachable, "{obs:?}");
    assert!(obs.duration_us < 400_000, "{obs:?}");
}

#[tokio::test]
async fn a_round_attempts_every_address_and_tells_them_apart() {
    let dns = server().await;
    let first = Accepting::bind(SocketAddr::new(ip("127.0.0.1"), 0))
        .await
        .unwrap();
    let port = first.addr.port();
    // 127.0.0.2 has nothing on the port: it refuses while its siblings work.
    let third = Accepting::bind(SocketAddr::new(ip("127.0.0.3"), port))
        .await
        .unwrap();
    let prober = Prober::new(
        Some(resolver(dns.addr, 500)),
        Arc::new(Limiter::new(
            &Limits {
                max_in_flight: 8,
                max_connects_per_second: 100,
                max_dns_lookups_per_second: 100,
            },
            None,
        )),
    );
    let target = Target {
        name: "three".into(),
        host: Host::Name("three.test".into()),
        port,
        labels: Arc::default(),
        interval: Duration::from_secs(1),
        families: V4,
        connect: ConnectOptions {
            timeout: Duration::from_millis(500),
            source: None,
            bind_device: None,
        },
    };
    let round = prober.run(&target).await;
    assert_eq!(round.dns.as_ref().unwrap().outcome, DnsOutcome::Ok);
    let outcomes: Vec<(IpAddr, ConnectOutcome)> = round
        .attempts
        .iter()
        .map(|a| (a.address.ip(), a.outcome))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (ip("127.0.0.1"), ConnectOutcome::Ok),
            (ip("127.0.0.2"), ConnectOutcome::Refused),
            (ip("127.0.0.3"), ConnectOutcome::Ok),
        ]
    );
    assert!(!round.is_ok());
    drop(third);
}
