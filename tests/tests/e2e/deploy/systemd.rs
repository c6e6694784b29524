//! The systemd units verify, are rated OK or better by `systemd-analyze
//! security`, and their configs validate.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use vantage_tests::{Scratch, bin};

use super::{output, root, run, validate};

/// The highest systemd exposure score the units may have ("OK" ends at 4.9).
const EXPOSURE_LIMIT: f64 = 2.0;

/// A unit's `Key=value` lines.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

/// The overall exposure `systemd-analyze security --offline=true` gives.
fn exposure(unit: &Path) -> f64 {
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit));
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}"));
    line.split(": ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn the_systemd_units_verify_are_hardened_and_their_configs_validate() {
    let dir = Scratch::new("systemd");
    let readme = std::fs::read_to_string(root().join("deploy/README.md")).unwrap();
    for (binary, unit_name) in [
        ("vantage-probe", "vantage-probe.service"),
        ("vantage-collector", "vantage-collector.service"),
    ] {
        let text = std::fs::read_to_string(root().join("deploy/systemd").join(unit_name)).unwrap();
        // verify wants the executables to exist: the built ones stand in
        // for /usr/local/bin, nothing else changes.
        let installed = format!("/usr/local/bin/{binary}");
        let unit = dir.write(
            unit_name,
            &text.replace(&installed, bin(binary).to_str().unwrap()),
        );
        run(Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&unit));

        let score = exposure(&unit);
        eprintln!("{unit_name}: exposure {score}");
        assert!(
            score <= EXPOSURE_LIMIT,
            "{unit_name}: exposure {score} above {EXPOSURE_LIMIT}"
        );
        assert!(
            readme.contains(&format!("`{unit_name}` | {score:.1}")),
            "deploy/README.md records {unit_name}'s exposure as {score:.1}"
        );

        // The config is validated before every start, the same file.
        let config = format!(
            "/etc/vantage/{}.toml",
            binary.trim_start_matches("vantage-")
        );
        assert_eq!(
            unit_values(&text, "ExecStartPre"),
            [format!("{installed} validate {config}")]
        );
        assert!(unit_values(&text, "ExecStart")[0].ends_with(&format!("--config {config}")));
        let reload = unit_values(&text, "ExecReload");
        if binary == "vantage-probe" {
            assert_eq!(reload, ["/bin/kill -HUP $MAINPID"]);
        } else {
            assert!(
                reload.is_empty(),
                "the collector's tokens are credentials, copied at start: no ExecReload"
            );
        }

        // The host config validates with the unit's credentials laid out
        // as systemd does (a file as ID, a directory's files as ID_FILE)
        // and /etc/vantage as deploy/README.md fills it.
        let etc = dir.path.join(binary).join("etc/vantage");
        let creds = dir.path.join(binary).join("credentials");
        std::fs::create_dir_all(etc.join("tokens")).unwrap();
        std::fs::create_dir_all(etc.join("tls")).unwrap();
        std::fs::create_dir_all(&creds).unwrap();
        if binary == "vantage-probe" {
            std::fs::write(etc.join("tokens/probe"), "a".repeat(64)).unwrap();
            // A real CA: validate loads the bundle as the push client will.
            let (ca, _, _) = vantage_tests::test_certificates(&dir.path);
            std::fs::copy(ca, etc.join("tls/ca.crt")).unwrap();
        } else {
            for (i, region) in ["us-east-2", "us-west-1", "onprem"].iter().enumerate() {
                std::fs::write(etc.join("tokens").join(region), format!("{i}").repeat(64)).unwrap();
            }
            // A real pair: validate loads the certificate and key.
            let (_, cert, key) = vantage_tests::test_certificates(&dir.path);
            std::fs::copy(cert, etc.join("tls/collector.crt")).unwrap();
            std::fs::copy(key, etc.join("tls/collector.key")).unwrap();
            std::fs::copy(
                root().join("deploy/examples/fleet-targets.json"),
                etc.join("fleet-targets.json"),
            )
            .unwrap();
        }
        for cred in unit_values(&text, "LoadCredential") {
            let (id, source) = cred.split_once(':').unwrap();
            let source = etc.join(source.strip_prefix("/etc/vantage/").unwrap());
            if source.is_dir() {
                for e in std::fs::read_dir(&source).unwrap() {
                    let e = e.unwrap();
                    std::fs::copy(
                        e.path(),
                        creds.join(format!("{id}_{}", e.file_name().to_string_lossy())),
                    )
                    .unwrap();
                }
            } else {
                std::fs::copy(&source, creds.join(id)).unwrap();
            }
        }
        let host = std::fs::read_to_string(
            root()
                .join("deploy/systemd")
                .join(format!("{}.toml", binary.trim_start_matches("vantage-"))),
        )
        .unwrap();
        let run_dir = format!("/run/credentials/{unit_name}/");
        let host = host
            .replace(&run_dir, &format!("{}/", creds.display()))
            .replace("/etc/vantage/", &format!("{}/", etc.display()));
        let config = dir.write(&format!("{binary}.toml"), &host);
        let mut env = BTreeMap::new();
        for e in unit_values(&text, "Environment") {
            let (k, v) = e.split_once('=').unwrap();
            // %l: the host's short name.
            env.insert(k.to_string(), v.replace("%l", "db-host-7"));
        }
        let out = validate(binary, &config, &env);
        assert!(
            out.status.success(),
            "{unit_name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The state lives in the unit's StateDirectory.
        let state = format!("/var/lib/{}", unit_values(&text, "StateDirectory")[0]);
        assert!(
            host.contains(&format!("\"{state}")),
            "{binary}: state under {state}"
        );
    }

    // The checks can fail: a unit whose binary is missing does not verify,
    // and one without its hardening is rated far above the limit.
    let text =
        std::fs::read_to_string(root().join("deploy/systemd/vantage-probe.service")).unwrap();
    let missing = dir.write("missing.service", &text);
    assert!(
        !output(
            Command::new("systemd-analyze")
                .args(["verify", "--man=no"])
                .arg(&missing)
        )
        .status
        .success()
    );
    let bare: String = text
        .lines()
        .filter(|l| l.starts_with('[') || l.starts_with("Exec") || l.starts_with("Description"))
        .map(|l| {
            l.replace(
                "/usr/local/bin/vantage-probe",
                bin("vantage-probe").to_str().unwrap(),
            ) + "\n"
        })
        .collect();
    let bare = dir.write("bare.service", &bare);
    assert!(exposure(&bare) > 5.0);
}
