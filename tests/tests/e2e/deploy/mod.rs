//! `deploy/`: the Kubernetes overlays render with kustomize and pass the
//! Kubernetes schemas (and prometheus-operator's, for its resources), hold
//! the security and wiring rules, and carry configs that `validate`
//! accepts as mounted; the PrometheusRule and the dashboards' ConfigMaps
//! match `dashboards/`; the systemd units verify and are rated OK or better; the
//! Dockerfile lints, and the static binaries its build line makes run in an
//! empty root and push to a collector by name.
//!
//! The tools come from `deploy/tools/install` (tests/run calls it): the
//! checks use them offline.

mod container;
mod kubernetes;
mod mounted;
mod systemd;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use vantage_tests::bin;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// A tool that deploy/tools/install put under the repository.
fn tool(rel: &str) -> PathBuf {
    let p = root().join(rel);
    assert!(
        p.exists(),
        "{} is missing: run deploy/tools/install (tests/run does)",
        p.display()
    );
    p
}

/// Runs `cmd`; its output, whatever the exit status.
fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// Runs `cmd` and insists on success; its stdout.
fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The fenced `sh` block of deploy/README.md whose first line is `first`.
fn readme_block(first: &str) -> String {
    let readme = std::fs::read_to_string(root().join("deploy/README.md")).unwrap();
    let start = readme
        .find(&format!("```sh\n{first}"))
        .unwrap_or_else(|| panic!("deploy/README.md has no block starting {first:?}"));
    let body = &readme[start + "```sh\n".len()..];
    body[..body.find("```").unwrap()].to_string()
}

/// Whether this process runs as root.
fn is_root() -> bool {
    run(Command::new("id").arg("-u")).trim() == "0"
}

/// `BINARY validate CONFIG` with exactly `env` of vantage's variables.
fn validate(binary: &str, config: &Path, env: &BTreeMap<String, String>) -> Output {
    let mut cmd = Command::new(bin(binary));
    cmd.arg("validate").arg(config);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("VANTAGE_")) {
        cmd.env_remove(k);
    }
    output(cmd.envs(env))
}
