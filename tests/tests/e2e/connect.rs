//! Every connect outcome provoked for real on 127.0.0.0/8.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use vantage_probe::config::ConnectOptions;
use vantage_probe::outcome::{Blame, ConnectOutcome};
use vantage_probe::{Accepting, FullQueue, Refusing, attempt};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn opts(timeout_ms: u64) -> ConnectOptions {
    ConnectOptions {
        timeout: Duration::from_millis(timeout_ms),
        source: None,
        bind_device: None,
    }
}

#[tokio::test]
async fn accepting_listener_connects_with_the_kernel_rtt() {
    let l = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let a = attempt(l.addr, &opts(1000)).await;
    assert_eq!(a.outcome, ConnectOutcome::Ok, "{a:?}");
    let rtt = a.rtt_us.expect("an rtt on success");
    assert!(rtt > 0, "the kernel took a sample");
    assert!(
        u64::from(rtt) <= a.duration_us,
        "the wire is never slower than our clock: {a:?}"
    );
    assert_eq!(a.syn_retransmits, 0);
    assert_eq!(a.errno, None);
    let local = a.local.expect("the local port is recorded");
    assert!(local.ip().is_loopback() && local.port() > 0);
}

#[tokio::test]
async fn ipv6_loopback_connects() {
    let l = Accepting::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0))
        .await
        .unwrap();
    let a = attempt(l.addr, &opts(1000)).await;
    assert_eq!(a.outcome, ConnectOutcome::Ok, "{a:?}");
    assert!(a.local.unwrap().is_ipv6());
}

#[tokio::test]
async fn closed_port_is_refused() {
    let r = Refusing::bind(LO).unwrap();
    let a = attempt(r.addr, &opts(1000)).await;
    assert_eq!(a.outcome, ConnectOutcome::Refused, "{a:?}");
    assert_eq!(a.errno, Some(libc::ECONNREFUSED));
    assert_eq!(a.rtt_us, None);
    assert!(a.duration_us < 100_000, "a RST comes back at once: {a:?}");
    assert_eq!(a.outcome.blame(), Blame::Remote);
}

/// A backend that goes down: connects that were accepted (and left their
/// TIME_WAITs on its port) are refused from then on, on the same port.
#[tokio::test]
async fn a_listener_that_goes_down_refuses_on_its_port() {
    let l = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let addr = l.addr;
    for _ in 0..3 {
        assert_eq!(attempt(addr, &opts(1000)).await.outcome, ConnectOutcome::Ok);
    }
    let r = l.refuse().await.unwrap();
    assert_eq!(r.addr, addr);
    let a = attempt(addr, &opts(1000)).await;
    assert_eq!(a.outcome, ConnectOutcome::Refused, "{a:?}");
}

#[tokio::test]
async fn full_accept_queue_times_out_at_the_attempt_timeout() {
    let q = FullQueue::bind(LO).unwrap();
    let a = attempt(q.addr, &opts(300)).await;
    assert_eq!(a.outcome, ConnectOutcome::Timeout, "{a:?}");
    assert!((300_000..900_000).contains(&a.duration_us), "{a:?}");
    assert_eq!(
        a.syn_retransmits, 0,
        "the first retransmit is due after 1 s"
    );
    assert!(
        a.local.is_some(),
        "a timed-out attempt can still be found in a capture"
    );
}

#[tokio::test]
async fn a_timeout_counts_the_syns_that_went_unanswered() {
    let q = FullQueue::bind(LO).unwrap();
    let a = attempt(q.addr, &opts(2_500)).await;
    assert_eq!(a.outcome, ConnectOutcome::Timeout, "{a:?}");
    // Retransmits at 1 s and 2 s with linear timeouts (1 s and 3 s without).
    assert!((1..=2).contains(&a.syn_retransmits), "{a:?}");
}

#[tokio::test]
async fn one_lost_syn_is_a_one_second_connect_with_a_retransmit() {
    let q = FullQueue::bind(LO).unwrap();
    let addr = q.addr;
    let pending = tokio::spawn(async move { attempt(addr, &opts(3_000)).await });
    // The first SYN is dropped (queue full); free the slot before the retransmit.
    tokio::time::sleep(Duration::from_millis(300)).await;
    q.accept_one().unwrap();
    let a = pending.await.unwrap();
    assert_eq!(a.outcome, ConnectOutcome::Ok, "{a:?}");
    assert_eq!(a.syn_retransmits, 1, "{a:?}");
    assert!(
        (950_000..1_900_000).contains(&a.duration_us),
        "about 1 s: {a:?}"
    );
    // A retransmitted handshake has no RTT sample: the kernel's figure is
    // a placeholder or the lost time, and the attempt is loss evidence.
    assert_eq!((a.rtt_us, a.rtt_sample()), (None, None), "{a:?}");
}

#[tokio::test]
async fn source_address_is_used() {
    let l = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let src: IpAddr = "127.0.0.5".parse().unwrap();
    let a = attempt(
        l.addr,
        &ConnectOptions {
            source: Some(src),
            ..opts(1000)
        },
    )
    .await;
    assert_eq!(a.outcome, ConnectOutcome::Ok, "{a:?}");
    assert_eq!(a.local.unwrap().ip(), src);
}

#[tokio::test]
async fn a_source_address_this_host_lacks_blames_the_host() {
    let l = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    // bind(2) fails before any packet exists: nothing leaves the machine.
    let a = attempt(
        l.addr,
        &ConnectOptions {
            source: Some("192.0.2.1".parse().unwrap()),
            ..opts(1000)
        },
    )
    .await;
    assert_eq!(a.outcome, ConnectOutcome::LocalAddressUnavailable, "{a:?}");
    assert_eq!(a.outcome.blame(), Blame::Local);
    assert_eq!(a.errno, Some(libc::EADDRNOTAVAIL));
}

#[tokio::test]
async fn a_missing_bind_device_blames_the_host() {
    let l = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let a = attempt(
        l.addr,
        &ConnectOptions {
            bind_device: Some("nosuchdev0".into()),
            ..opts(1000)
        },
    )
    .await;
    // ENODEV as root, EPERM without CAP_NET_RAW: either way, the probe's host.
    assert_eq!(a.outcome.blame(), Blame::Local, "{a:?}");
}
