//! The `vantage-probe` binary as an operator runs it: validate, check, run
//! with SIGHUP reload and SIGTERM drain, demo.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use vantage_probe::{Accepting, Refusing};
use vantage_tests::{
    Proc, Scratch, bin, free_port, http_get, parse_exposition, value, wait_for_200,
};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn probe() -> Command {
    Command::new(bin("vantage-probe"))
}

#[test]
fn validate_accepts_the_example_and_names_the_line_of_an_error() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let dir = Scratch::new("example");
    for f in ["probe.toml", "targets.json"] {
        let text = std::fs::read_to_string(format!("{root}/deploy/examples/{f}")).unwrap();
        dir.write(f, &text);
    }
    std::fs::create_dir_all(dir.path.join("tokens")).unwrap();
    dir.write("tokens/us-east-2", "0123456789abcdef0123456789abcdef\n");
    let ok = probe()
        .arg("validate")
        .arg(dir.path.join("probe.toml"))
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    assert!(
        String::from_utf8_lossy(&ok.stdout)
            .contains(": ok: probe ci-runner-probe-1 in us-east-2, 6 targets")
    );

    let bad = probe()
        .args([
            "validate",
            &format!("{root}/probe/tests/config/timeout_vs_interval.toml"),
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(64));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("timeout_vs_interval.toml:15: targets[0].timeout = \"5s\": must be shorter than the interval (5s)"),
        "{err}"
    );
}

#[test]
fn run_refuses_to_start_without_a_region() {
    let dir = Scratch::new("noregion");
    let path = dir.write("p.toml", "[probe]\nid = \"p1\"\n");
    let out = probe()
        .args(["run", "--config"])
        .arg(&path)
        .env_remove("VANTAGE_SRC_REGION")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("probe.src_region: required"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_attempt_and_a_summary() {
    let web = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let out = probe()
        .args([
            "check",
            &web.addr.to_string(),
            "--count",
            "3",
            "--interval",
            "100ms",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let attempts: Vec<&str> = text.lines().filter(|l| l.contains(" tcp ")).collect();
    assert_eq!(attempts.len(), 3, "{text}");
    for line in attempts {
        assert!(
            line.contains(" ok ") && line.contains(" rtt ") && line.contains(" UTC "),
            "{line}"
        );
    }
    assert!(
        text.contains("connects: 3 sent, 3 ok, 0 failed (0.0%)\nsyns: 3 sent, 0 lost: 0.0% ± "),
        "{text}"
    );
    assert!(
        text.contains("rtt (kernel, SYN to SYN-ACK): min "),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_exits_1_on_failure_and_speaks_json() {
    let closed = Refusing::bind(LO).unwrap();
    let out = probe()
        .args([
            "check",
            &closed.addr.to_string(),
            "-c",
            "2",
            "-i",
            "100ms",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "two rounds and a summary");
    assert_eq!(lines[0]["type"], "round");
    assert_eq!(lines[0]["attempts"][0]["outcome"], "refused");
    assert_eq!(lines[0]["attempts"][0]["errno"], libc::ECONNREFUSED);
    assert_eq!(lines[2]["type"], "summary");
    assert_eq!(lines[2]["failed"], 2);
    assert_eq!(lines[2]["loss_percent"], 100.0);

    let usage = probe().args(["check", "no-port-here"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("expected HOST:PORT"));
}

fn config(port: u16, admin: u16, targets: &str) -> String {
    format!(
        "[probe]\nsrc_region = \"cli-test\"\nid = \"p1\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
         [defaults]\ninterval = \"200ms\"\ntimeout = \"100ms\"\n{targets}\n"
    )
    .replace("{port}", &port.to_string())
}

const ONE: &str = "[[targets]]\nname = \"web\"\nhost = \"127.0.0.1\"\nport = {port}\n";
const TWO: &str = "[[targets]]\nname = \"web\"\nhost = \"127.0.0.1\"\nport = {port}\n\
                   [[targets]]\nname = \"web-again\"\nhost = \"127.0.0.1\"\nport = {port}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_reloads_on_sighup_keeps_the_old_config_when_bad_and_drains_on_sigterm() {
    let web = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let dir = Scratch::new("reload");
    let admin_port = free_port();
    let admin = SocketAddr::new(LO, admin_port);
    let path = dir.write("p.toml", &config(web.addr.port(), admin_port, ONE));
    let p = Proc::spawn(
        probe()
            .args(["run", "--log-level", "warn", "--config"])
            .arg(&path),
    );
    wait_for_200(admin, "/-/ready", Duration::from_secs(10)).await;

    // A good new config: the added target appears.
    dir.write("p.toml", &config(web.addr.port(), admin_port, TWO));
    p.signal("HUP");
    let s = poll_metrics(admin, |s| {
        value(
            s,
            "vantage_probe_connect_attempts_total",
            &[("target", "web-again")],
        )
        .is_some()
    })
    .await;
    assert_eq!(
        value(
            &s,
            "vantage_probe_config_reloads_total",
            &[("result", "success")]
        ),
        Some(1.0)
    );

    // A bad one: refused, the probe keeps measuring both targets.
    dir.write(
        "p.toml",
        "[probe]\nsrc_region = \"cli-test\"\nid = \"p1\"\nbogus = 1\n",
    );
    p.signal("HUP");
    let s = poll_metrics(admin, |s| {
        value(
            s,
            "vantage_probe_config_reloads_total",
            &[("result", "failure")],
        ) == Some(1.0)
    })
    .await;
    assert_eq!(
        value(&s, "vantage_probe_config_last_reload_successful", &[]),
        Some(0.0)
    );
    let before = value(
        &s,
        "vantage_probe_connect_attempts_total",
        &[("target", "web-again")],
    )
    .unwrap();
    let s = poll_metrics(admin, |s| {
        value(
            s,
            "vantage_probe_connect_attempts_total",
            &[("target", "web-again")],
        )
        .unwrap()
            > before
    })
    .await;
    assert_eq!(value(&s, "vantage_probe_targets", &[]), Some(2.0));

    let stderr = p.stop_cleanly("TERM", Duration::from_secs(15)).await;
    assert!(stderr.contains("config reload failed"), "{stderr}");
    assert!(
        stderr.contains("unknown field `bogus`"),
        "the reason is logged: {stderr}"
    );
}

async fn poll_metrics(
    admin: SocketAddr,
    done: impl Fn(&[vantage_tests::Sample]) -> bool,
) -> Vec<vantage_tests::Sample> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok((200, body)) = http_get(admin, "/metrics").await {
            let s = parse_exposition(&body);
            if done(&s) {
                return s;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_every_outcome_within_seconds() {
    let admin_port = free_port();
    let admin = SocketAddr::new(LO, admin_port);
    let p = Proc::spawn(probe().args([
        "demo",
        "--log-level",
        "warn",
        "--admin",
        &admin.to_string(),
        "--for",
        "30s",
    ]));
    let s = poll_metrics(admin, |s| {
        let has =
            |name: &str, labels: &[(&str, &str)]| value(s, name, labels).is_some_and(|v| v > 0.0);
        has(
            "vantage_probe_connect_rtt_seconds_count",
            &[("target", "web")],
        ) && has(
            "vantage_probe_connect_failures_total",
            &[("target", "db"), ("reason", "refused")],
        ) && has(
            "vantage_probe_connect_failures_total",
            &[("target", "queue"), ("reason", "timeout")],
        ) && has(
            "vantage_probe_dns_lookups_total",
            &[("target", "gone"), ("outcome", "nxdomain")],
        ) && has(
            "vantage_probe_dns_lookups_total",
            &[("target", "broken-dns"), ("outcome", "servfail")],
        ) && has(
            "vantage_probe_connect_failures_total",
            &[("target", "web-pair"), ("reason", "refused")],
        )
    })
    .await;
    assert!(value(&s, "vantage_probe_rounds_total", &[]).unwrap() > 0.0);
    p.stop_cleanly("INT", Duration::from_secs(15)).await;
}

/// `probe run` under an open-files limit set by the shell that starts it.
fn probe_under_ulimit(hard: u32, soft: u32, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -Sn {soft} && ulimit -Hn {hard} && exec \"$0\" \"$@\""
        ))
        .arg(bin("vantage-probe"))
        .args(args);
    cmd
}

/// A process's open-files limit as the kernel holds it: (soft, hard).
fn open_files_of(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (v[0], v[1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_raises_its_open_files_limit_to_what_its_caps_hold_and_warns_when_it_cannot() {
    let web = Accepting::bind(SocketAddr::new(LO, 0)).await.unwrap();
    let dir = Scratch::new("nofile");
    let admin_port = free_port();
    let admin = SocketAddr::new(LO, admin_port);
    let text = config(web.addr.port(), admin_port, ONE) + "[limits]\nmax_in_flight = 1000\n";
    let path = dir.write("p.toml", &text);
    let path = path.to_str().unwrap();

    // Soft 256 from the shell, hard 4096: raised to 1000 in flight plus
    // the probe's own descriptors, no further.
    let p = Proc::spawn(&mut probe_under_ulimit(
        4096,
        256,
        &["run", "--log-level", "info", "--config", path],
    ));
    wait_for_200(admin, "/-/ready", Duration::from_secs(10)).await;
    let raised = 1000 + vantage_probe::RESERVED_FDS;
    assert_eq!(open_files_of(p.child.id()), (raised, 4096));
    let stderr = p.stop_cleanly("TERM", Duration::from_secs(15)).await;
    assert!(
        stderr.contains("raised the open-files soft limit"),
        "{stderr}"
    );

    // A hard limit of 300: as far as it goes, and both validate and run
    // say what to change.
    let v = probe_under_ulimit(300, 300, &["validate", path])
        .output()
        .unwrap();
    assert!(v.status.success(), "{v:?}");
    let out = String::from_utf8_lossy(&v.stdout);
    assert!(
        out.contains(
            "warning: the open-files hard limit is 300, but limits.max_in_flight needs about 1064"
        ),
        "{out}"
    );
    let p = Proc::spawn(&mut probe_under_ulimit(
        300,
        256,
        &["run", "--log-level", "warn", "--config", path],
    ));
    wait_for_200(admin, "/-/ready", Duration::from_secs(10)).await;
    assert_eq!(open_files_of(p.child.id()), (300, 300));
    let stderr = p.stop_cleanly("TERM", Duration::from_secs(15)).await;
    assert!(
        stderr.contains("the open-files hard limit is 300") && stderr.contains("LimitNOFILE="),
        "{stderr}"
    );
}
