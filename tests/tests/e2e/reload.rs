//! What changes under a running collector: tokens rotated and certificates
//! renewed, on SIGHUP and when their files change (a Kubernetes Secret
//! swapped in place), and a change that does not load changing nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vantage_probe::outcome::ConnectOutcome;
use vantage_tests::{
    Proc, Scratch, bin, free_port, http, http_get, parse_exposition, value, wait_for_200,
    wait_until,
};

use crate::collector::{EAST, WEST, batch, config_text, post, round};

/// The SIGHUP tests keep the file watch out of the way.
fn without_watch(text: &str) -> String {
    text.replace(
        "data_dir = \"data\"",
        "data_dir = \"data\"\nwatch_every = \"1h\"",
    )
}

/// What `GET /api/v1/findings` with `token` answers: its status, 0 for no
/// answer.
async fn status(addr: SocketAddr, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    http(
        addr,
        "GET",
        "/api/v1/findings",
        &[("Authorization", &auth)],
        b"",
    )
    .await
    .map_or(0, |(s, _)| s)
}

/// SIGHUP rotates tokens without a restart; a config that does not load
/// changes nothing and says so; the process lives through both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rotates_the_tokens_and_a_bad_config_changes_nothing() {
    let dir = Scratch::new("collector-hup");
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let path = dir.write("collector.toml", &without_watch(&config_text(addr, "")));
    let mut c = Command::new(bin("vantage-collector"));
    c.args(["serve", "--log-level", "warn", "--config"])
        .arg(&path);
    let mut p = Proc::spawn(&mut c);
    wait_for_200(addr, "/-/ready", Duration::from_secs(10)).await;
    let status = |token| status(addr, token);
    let reload_gauge = || async move {
        let (_, text) = http_get(addr, "/metrics").await.unwrap();
        value(
            &parse_exposition(&text),
            "vantage_collector_config_last_reload_successful",
            &[],
        )
    };
    let b = batch(
        "us-east-2",
        "e1",
        1,
        vec![round("api", 443, ConnectOutcome::Ok, None)],
    );
    assert_eq!(post(addr, EAST, &b).await.0, 200);

    // EAST is rotated out for a new token of the same region.
    const ROTATED: &str = "rotated-token-0123456789abcdef";
    std::fs::write(
        &path,
        without_watch(&config_text(addr, "")).replace(EAST, ROTATED),
    )
    .unwrap();
    p.signal("HUP");
    wait_until(
        "the rotated token working",
        Duration::from_secs(10),
        async || status(ROTATED).await == 200,
    )
    .await;
    assert_eq!(status(EAST).await, 401, "the old token still works");
    let b2 = batch(
        "us-east-2",
        "e1",
        2,
        vec![round("api", 443, ConnectOutcome::Ok, None)],
    );
    assert_eq!(post(addr, EAST, &b2).await.0, 401);
    assert_eq!(post(addr, ROTATED, &b2).await.0, 200);
    assert_eq!(reload_gauge().await, Some(1.0));

    // A broken config: refused, the rotated tokens stay, the gauge says so.
    std::fs::write(&path, "[server\nlisten = ").unwrap();
    p.signal("HUP");
    wait_until("the refusal showing", Duration::from_secs(10), async || {
        reload_gauge().await == Some(0.0)
    })
    .await;
    assert_eq!(status(ROTATED).await, 200);
    assert_eq!(status(WEST).await, 200);
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "SIGHUP ended the collector"
    );
    let (_, text) = http_get(addr, "/metrics").await.unwrap();
    let samples = parse_exposition(&text);
    for (result, n) in [("success", 1.0), ("failure", 1.0)] {
        assert_eq!(
            value(
                &samples,
                "vantage_collector_config_reloads_total",
                &[("result", result)]
            ),
            Some(n)
        );
    }
}

/// SIGHUP reads the TLS certificate and key again (a renewal, without a
/// restart): clients that trust only the new CA get in, and a pair that
/// does not load changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_takes_a_renewed_tls_certificate() {
    let dir = Scratch::new("collector-tls-hup");
    let (old_dir, new_dir) = (dir.path.join("old"), dir.path.join("new"));
    std::fs::create_dir_all(&old_dir).unwrap();
    std::fs::create_dir_all(&new_dir).unwrap();
    let (old_ca, old_cert, old_key) = vantage_tests::test_certificates(&old_dir);
    let (new_ca, new_cert, new_key) = vantage_tests::test_certificates(&new_dir);
    let (cert, key) = (dir.path.join("served.pem"), dir.path.join("served.key"));
    std::fs::copy(&old_cert, &cert).unwrap();
    std::fs::copy(&old_key, &key).unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let path = dir.write(
        "collector.toml",
        &without_watch(&config_text(addr, "")).replace(
            "data_dir = \"data\"",
            &format!(
                "data_dir = \"data\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"",
                cert.display(),
                key.display()
            ),
        ),
    );
    let mut c = Command::new(bin("vantage-collector"));
    c.args(["serve", "--log-level", "warn", "--config"])
        .arg(&path);
    let p = Proc::spawn(&mut c);
    let url = format!("https://127.0.0.1:{}/-/healthy", addr.port());
    let trusted_by = |ca: std::path::PathBuf| {
        let url = url.clone();
        async move {
            let client =
                vantage_probe::http_client(Duration::from_secs(5), Some(&ca), true).unwrap();
            client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    };
    wait_until("TLS coming up", Duration::from_secs(10), async || {
        trusted_by(old_ca.clone()).await
    })
    .await;
    assert!(!trusted_by(new_ca.clone()).await);

    // Renewed: the new pair in place, then SIGHUP.
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    p.signal("HUP");
    wait_until(
        "the renewed certificate being served",
        Duration::from_secs(10),
        async || trusted_by(new_ca.clone()).await,
    )
    .await;
    assert!(!trusted_by(old_ca.clone()).await);

    // A key that does not match the certificate: refused, nothing changes.
    std::fs::copy(&old_key, &key).unwrap();
    p.signal("HUP");
    let client = vantage_probe::http_client(Duration::from_secs(5), Some(&new_ca), true).unwrap();
    let metrics_url = format!("https://127.0.0.1:{}/metrics", addr.port());
    wait_until(
        "the bad pair being refused",
        Duration::from_secs(10),
        async || {
            let metrics = client
                .get(&metrics_url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let gauge = value(
                &parse_exposition(&metrics),
                "vantage_collector_config_last_reload_successful",
                &[],
            );
            gauge == Some(0.0)
        },
    )
    .await;
    assert!(trusted_by(new_ca.clone()).await, "a bad pair was taken");
}

/// A Secret volume the way the kubelet writes one: each key a symlink
/// through `..data`, which points at a timestamped directory and is
/// swapped for a new one with a single rename.
struct SecretVolume {
    dir: PathBuf,
    version: u32,
}

impl SecretVolume {
    fn new(dir: PathBuf, files: &[(&str, &Path)]) -> SecretVolume {
        std::fs::create_dir_all(&dir).unwrap();
        let mut v = SecretVolume { dir, version: 0 };
        v.update(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), v.dir.join(name)).unwrap();
        }
        v
    }

    fn update(&mut self, files: &[(&str, &Path)]) {
        self.version += 1;
        let name = format!("..2026_12_01_00_00_0{}", self.version);
        std::fs::create_dir(self.dir.join(&name)).unwrap();
        for (file, from) in files {
            std::fs::copy(from, self.dir.join(&name).join(file)).unwrap();
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }
}

/// No signal: a rotated token and a renewed certificate, swapped into a
/// mounted Secret, are taken within a few looks at the files; one swap is
/// one reload; a swap that does not load changes nothing and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_secret_rotates_the_token_and_renews_the_certificate_without_a_signal() {
    let dir = Scratch::new("collector-watch");
    let (old_dir, new_dir) = (dir.path.join("old"), dir.path.join("new"));
    std::fs::create_dir_all(&old_dir).unwrap();
    std::fs::create_dir_all(&new_dir).unwrap();
    let (old_ca, old_cert, old_key) = vantage_tests::test_certificates(&old_dir);
    let (new_ca, new_cert, new_key) = vantage_tests::test_certificates(&new_dir);
    const ROTATED: &str = "rotated-token-0123456789abcdef";
    let old_token = dir.write("east.token", EAST);
    let new_token = dir.write("rotated.token", ROTATED);
    let mut secret = SecretVolume::new(
        dir.path.join("secret"),
        &[
            ("tls.crt", &old_cert),
            ("tls.key", &old_key),
            ("east", &old_token),
        ],
    );
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let text = config_text(addr, "")
        .replace(
            "data_dir = \"data\"",
            "data_dir = \"data\"\nwatch_every = \"200ms\"\n\
             tls_cert_file = \"secret/tls.crt\"\ntls_key_file = \"secret/tls.key\"",
        )
        .replace(
            &format!("token = \"{EAST}\""),
            "token_file = \"secret/east\"",
        );
    let path = dir.write("collector.toml", &text);
    let mut p = Proc::spawn(
        Command::new(bin("vantage-collector"))
            .args(["serve", "--log-level", "warn", "--config"])
            .arg(&path),
    );

    // What a client that trusts `ca` and holds `token` gets back.
    let base = format!("https://127.0.0.1:{}", addr.port());
    let ask = |ca: &Path, token: &str, what: &str| {
        let client = vantage_probe::http_client(Duration::from_secs(5), Some(ca), true).unwrap();
        let (url, auth) = (format!("{base}{what}"), format!("Bearer {token}"));
        async move {
            match client.get(&url).header("Authorization", auth).send().await {
                Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                Err(_) => (0, String::new()),
            }
        }
    };
    wait_until("TLS coming up", Duration::from_secs(10), async || {
        ask(&old_ca, EAST, "/api/v1/findings").await.0 == 200
    })
    .await;
    assert_eq!(ask(&new_ca, EAST, "/api/v1/findings").await.0, 0);

    // The Secret is updated: new certificate, key and token in one swap.
    secret.update(&[
        ("tls.crt", &new_cert),
        ("tls.key", &new_key),
        ("east", &new_token),
    ]);
    wait_until(
        "the swapped Secret being taken",
        Duration::from_secs(10),
        async || ask(&new_ca, ROTATED, "/api/v1/findings").await.0 == 200,
    )
    .await;
    assert_eq!(ask(&old_ca, ROTATED, "/api/v1/findings").await.0, 0);
    assert_eq!(ask(&new_ca, EAST, "/api/v1/findings").await.0, 401);
    let b = batch(
        "us-east-2",
        "e1",
        1,
        vec![round("api", 443, ConnectOutcome::Ok, None)],
    );
    let client = vantage_probe::http_client(Duration::from_secs(5), Some(&new_ca), true).unwrap();
    let pushed = client
        .post(format!("{base}{}", vantage_probe::wire::RESULTS_PATH))
        .header("Authorization", format!("Bearer {ROTATED}"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(vantage_tests::gzip(&serde_json::to_vec(&b).unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status().as_u16(), 200);

    // Files that do not change are not reloaded: several looks later, the
    // one swap is still one reload.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let reloads = |text: &str, result: &str| {
        value(
            &parse_exposition(text),
            "vantage_collector_config_reloads_total",
            &[("result", result)],
        )
    };
    let (_, metrics) = ask(&new_ca, ROTATED, "/metrics").await;
    assert_eq!(reloads(&metrics, "success"), Some(1.0), "{metrics}");
    assert_eq!(reloads(&metrics, "failure"), Some(0.0));

    // A swap whose key does not match its certificate: refused, the
    // served certificate and the tokens stay, the gauge says so.
    secret.update(&[
        ("tls.crt", &old_cert),
        ("tls.key", &new_key),
        ("east", &old_token),
    ]);
    let gauge = |text: &str| {
        value(
            &parse_exposition(text),
            "vantage_collector_config_last_reload_successful",
            &[],
        )
    };
    wait_until(
        "the bad swap being refused",
        Duration::from_secs(10),
        async || gauge(&ask(&new_ca, ROTATED, "/metrics").await.1) == Some(0.0),
    )
    .await;
    let (_, metrics) = ask(&new_ca, ROTATED, "/metrics").await;
    assert_eq!(reloads(&metrics, "failure"), Some(1.0), "{metrics}");
    assert_eq!(ask(&new_ca, ROTATED, "/api/v1/findings").await.0, 200);
    assert_eq!(ask(&new_ca, EAST, "/api/v1/findings").await.0, 401);
    assert!(p.child.try_wait().unwrap().is_none());
}

/// A token rotated in place on both sides (the collector's token file and
/// the probe's, as two Secrets would be): the collector takes the new one
/// by itself, refuses the old, and the running probe, refused, reads its
/// token file again and carries on with no restart and nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_rotated_in_both_files_needs_no_restart_of_either() {
    let dir = Scratch::new("rotate-both");
    const OLD: &str = "old-token-0123456789abcdef";
    const NEW: &str = "new-token-0123456789abcdef";
    // Replaced the way a Secret volume or an editor replaces a file.
    let replace = |name: &str, text: &str| {
        let tmp = dir.write(&format!("{name}.tmp"), text);
        std::fs::rename(tmp, dir.path.join(name)).unwrap();
    };
    replace("collector.token", OLD);
    replace("probe.token", OLD);
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = dir.write(
        "collector.toml",
        &format!(
            "[server]\nlisten = \"{listen}\"\ndata_dir = \"data\"\nwatch_every = \"200ms\"\n\
             [[tokens]]\ntoken_file = \"collector.token\"\nsrc_region = \"us-east-2\"\n"
        ),
    );
    let _collector = Proc::spawn(
        Command::new(bin("vantage-collector"))
            .args(["serve", "--log-level", "warn", "--config"])
            .arg(&config),
    );
    wait_for_200(listen, "/-/ready", Duration::from_secs(10)).await;
    let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let probe_config = dir.write(
        "probe.toml",
        &format!(
            "[probe]\nsrc_region = \"us-east-2\"\nid = \"e1\"\n[admin]\nlisten = \"{admin}\"\n\
             [collector]\nurl = \"http://{listen}\"\ntoken_file = \"probe.token\"\n\
             spool_dir = \"spool\"\nflush_interval = \"200ms\"\n\
             [[targets]]\nname = \"collector\"\nhost = \"127.0.0.1\"\nport = {}\n\
             interval = \"500ms\"\ntimeout = \"400ms\"\n",
            listen.port()
        ),
    );
    let mut probe = Proc::spawn(
        Command::new(bin("vantage-probe"))
            .args(["run", "--log-level", "info", "--config"])
            .arg(&probe_config),
    );
    wait_until("the probe pushing", Duration::from_secs(15), async || {
        pushed(admin).await.0 >= 2.0
    })
    .await;
    let before = pushed(admin).await.0;

    // Both files get the new token; the collector takes it by itself.
    replace("collector.token", NEW);
    replace("probe.token", NEW);
    let status = |token| status(listen, token);
    wait_until(
        "the old token being refused",
        Duration::from_secs(10),
        async || status(OLD).await == 401,
    )
    .await;
    assert_eq!(status(NEW).await, 200);

    // The probe's pushes go on, with the new token, in the same process.
    wait_until(
        "the probe pushing with the new token",
        Duration::from_secs(15),
        async || pushed(admin).await.0 >= before + 3.0,
    )
    .await;
    assert!(
        probe.child.try_wait().unwrap().is_none(),
        "the probe exited"
    );
    wait_until("the spool draining", Duration::from_secs(10), async || {
        pushed(admin).await.1 <= 1.0
    })
    .await;
    let stderr = probe.stop_cleanly("TERM", Duration::from_secs(15)).await;
    assert!(
        stderr.contains("sending with the one now in the token file"),
        "{stderr}"
    );
}

/// A probe's batches acknowledged as stored, and batches in its spool.
async fn pushed(admin: SocketAddr) -> (f64, f64) {
    let (_, body) = http_get(admin, "/metrics").await.unwrap_or_default();
    let s = parse_exposition(&body);
    (
        value(
            &s,
            "vantage_probe_push_batches_total",
            &[("result", "stored")],
        )
        .unwrap_or(0.0),
        value(&s, "vantage_probe_spool_batches", &[]).unwrap_or(f64::NAN),
    )
}
