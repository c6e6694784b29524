//! The Dockerfile lints, and the static binaries its build line makes run
//! in an empty root and push to a collector by name.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vantage_probe::Accepting;
use vantage_tests::{Proc, Scratch, bin, free_port, wait_until};

use super::{is_root, output, readme_block, root, run, tool};

/// The `cargo build` line of the Dockerfile's build stage, and the paths
/// its final stage copies: (RUSTFLAGS, cargo arguments, copied paths).
fn dockerfile_build() -> (String, Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(root().join("deploy/container/Dockerfile")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("RUN ") && l.contains("cargo build"))
        .expect("a RUN line with cargo build");
    let rest = line.strip_prefix("RUN RUSTFLAGS=\"").unwrap();
    let (flags, cmd) = rest.split_once("\" ").unwrap();
    let args: Vec<String> = cmd.split_whitespace().skip(1).map(String::from).collect();
    let copied = text
        .lines()
        .filter_map(|l| l.strip_prefix("COPY --from=build /src/"))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    (flags.to_string(), args, copied)
}

/// Whether an ELF file needs no loader and no shared library.
fn is_static(path: &Path) -> bool {
    let file = run(Command::new("file").arg("-b").arg(path));
    let header = run(Command::new("readelf")
        .args(["--program-headers", "--dynamic", "--wide"])
        .arg(path));
    (file.contains("statically linked") || file.contains("static-pie linked"))
        && !header.contains("INTERP")
        && !header.contains("(NEEDED)")
}

#[test]
fn the_dockerfile_lints() {
    let hadolint = tool(".tools/venv/bin/hadolint");
    run(Command::new(&hadolint).arg(root().join("deploy/container/Dockerfile")));
    // The linter does reject: a floating base, root, an unpinned install.
    let dir = Scratch::new("hadolint");
    let bad = dir.write(
        "Dockerfile",
        "FROM debian:latest\nRUN apt-get update && apt-get install -y curl\nUSER root\n",
    );
    assert!(!output(Command::new(&hadolint).arg(bad)).status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_container_build_makes_static_binaries_that_push_from_an_empty_root() {
    // The Dockerfile's own build line, run here (Docker is not needed for
    // what it compiles).
    let (flags, args, copied) = dockerfile_build();
    assert_eq!(flags, "-C target-feature=+crt-static");
    assert_eq!(copied.len(), 2, "both binaries");
    // A target directory of its own: the workspace's stays unlocked for
    // the other tests' builds, and `nice` leaves them the CPU first.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root().join("target"), PathBuf::from)
        .join("container");
    let started = std::time::Instant::now();
    run(Command::new("nice")
        .args(["-n", "10"])
        .arg(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .env("RUSTFLAGS", &flags)
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(root())
        .args(&args)
        .arg("--quiet"));
    eprintln!("container build: {:.0?}", started.elapsed());

    let mut built = BTreeMap::new();
    for path in &copied {
        let p = target.join(path.strip_prefix("target/").unwrap());
        assert!(is_static(&p), "{} is not static", p.display());
        let size = std::fs::metadata(&p).unwrap().len();
        eprintln!("{}: {:.1} MiB", p.display(), size as f64 / 1048576.0);
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let version = run(Command::new(&p).arg("--version"));
        assert_eq!(
            version.trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION"))
        );
        built.insert(name, p);
    }
    // Their validate runs too, on this repository's example configs.
    let examples = Scratch::new("static-validate");
    for f in [
        "probe.toml",
        "targets.json",
        "collector.toml",
        "fleet-targets.json",
    ] {
        let text = std::fs::read_to_string(root().join("deploy/examples").join(f)).unwrap();
        examples.write(f, &text);
    }
    std::fs::create_dir_all(examples.path.join("tokens")).unwrap();
    examples.write("tokens/us-east-2", &"e".repeat(64));
    examples.write("tokens/us-west-1", &"w".repeat(64));
    for name in ["vantage-probe", "vantage-collector"] {
        let config = examples
            .path
            .join(format!("{}.toml", name.trim_start_matches("vantage-")));
        let ok = run(Command::new(&built[name]).arg("validate").arg(&config));
        assert!(ok.contains(": ok: "), "{ok}");
    }
    // The check can fail: the test's own build is dynamically linked.
    assert!(!is_static(&bin("vantage-probe")));

    // The fleet's secrets, made by deploy/README.md's own commands.
    let secrets = Scratch::new("static-secrets");
    run(Command::new("bash")
        .args([
            "-euo",
            "pipefail",
            "-c",
            &readme_block("# The fleet's secrets"),
        ])
        .current_dir(&secrets.path));
    let token = std::fs::read_to_string(secrets.path.join("tokens/onprem")).unwrap();
    assert_eq!(token.trim().len(), 64, "openssl rand -hex 32");

    // The static collector serves TLS with that certificate.
    let col_port = free_port();
    let col_config = secrets.write(
        "collector.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{col_port}\"\ndata_dir = \"data\"\n\
             tls_cert_file = \"tls/collector.crt\"\ntls_key_file = \"tls/collector.key\"\n\
             [[tokens]]\ntoken_file = \"tokens/us-east-2\"\nsrc_region = \"us-east-2\"\n\
             [[tokens]]\ntoken_file = \"tokens/us-west-1\"\nsrc_region = \"us-west-1\"\n\
             [[tokens]]\ntoken_file = \"tokens/onprem\"\nsrc_region = \"onprem\"\n"
        ),
    );
    let _collector = Proc::spawn(
        Command::new(&built["vantage-collector"])
            .args(["serve", "--config"])
            .arg(&col_config),
    );

    // The static probe runs in an empty root like distroless static's: no
    // shell, no libc, no NSS modules; /etc/hosts, nsswitch.conf and the
    // CA certificates only. It resolves the collector's name there (glibc's
    // built-in files module: loopback) and pushes over TLS, trusting the
    // fleet's CA.
    assert!(
        is_root(),
        "this test chroots into an empty root and needs root (CI runs as root)"
    );
    let jail = Scratch::new("static-root");
    let backend = Accepting::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
        .await
        .unwrap();
    for d in ["bin", "etc/ssl/certs", "etc/vantage", "spool"] {
        std::fs::create_dir_all(jail.path.join(d)).unwrap();
    }
    std::fs::copy(&built["vantage-probe"], jail.path.join("bin/vantage-probe")).unwrap();
    std::fs::copy(
        "/etc/ssl/certs/ca-certificates.crt",
        jail.path.join("etc/ssl/certs/ca-certificates.crt"),
    )
    .unwrap();
    std::fs::copy(
        secrets.path.join("tls/ca.crt"),
        jail.path.join("etc/vantage/ca.crt"),
    )
    .unwrap();
    jail.write(
        "etc/hosts",
        "127.0.0.1 localhost collector.vantage.example.com\n",
    );
    jail.write("etc/nsswitch.conf", "hosts: files dns\n");
    jail.write("etc/vantage/token", &token);
    jail.write(
        "etc/vantage/probe.toml",
        &format!(
            "[probe]\nsrc_region = \"onprem\"\nid = \"static-1\"\n[admin]\nlisten = \"127.0.0.1:{}\"\n\
             [collector]\nurl = \"https://collector.vantage.example.com:{col_port}\"\n\
             token_file = \"token\"\nca_file = \"ca.crt\"\nspool_dir = \"/spool\"\nflush_interval = \"200ms\"\n\
             [[targets]]\nname = \"backend\"\nhost = \"127.0.0.1\"\nport = {}\ninterval = \"500ms\"\ntimeout = \"300ms\"\n",
            free_port(),
            backend.addr.port()
        ),
    );
    let probe = Proc::spawn(
        Command::new("chroot")
            .arg(&jail.path)
            .args([
                "/bin/vantage-probe",
                "run",
                "--config",
                "/etc/vantage/probe.toml",
            ])
            .env_clear()
            // Only to find chroot itself; nothing in the root reads it.
            .env("PATH", std::env::var("PATH").unwrap_or_default()),
    );

    // The collector, asked over TLS by the certificate's name, knows it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = std::fs::read(secrets.path.join("tls/ca.crt")).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .resolve(
            "collector.vantage.example.com",
            SocketAddr::from(([127, 0, 0, 1], col_port)),
        )
        .build()
        .unwrap();
    let url = format!("https://collector.vantage.example.com:{col_port}/api/v1/probes");
    wait_until(
        "the static probe's results at the static collector",
        Duration::from_secs(30),
        async || {
            let Ok(r) = client.get(&url).bearer_auth(token.trim()).send().await else {
                return false;
            };
            let body = r.text().await.unwrap_or_default();
            body.contains("\"probe_id\":\"static-1\"") && body.contains("\"state\":\"reporting\"")
        },
    )
    .await;
    probe.signal("TERM");
    let (status, stderr) = probe.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{stderr}");
}
