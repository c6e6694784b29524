//! `validate` at the edges of what a config can name: a device, a FIFO or
//! an oversize file where a token, a file_sd list or the config itself
//! should be; bytes that are not UTF-8; a rule across fields; a spool the
//! probe could never write; a host that is neither an address nor a name.
//! Each is refused with exit code 64 and a message naming the file, the
//! line, the field and the value, the way `run` and `serve` would refuse
//! it, and none of them blocks or eats memory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vantage_tests::{Proc, Scratch, bin};

/// Long enough for any validate; a read that blocks fails the test here
/// instead of hanging the suite.
const DEADLINE: Duration = Duration::from_secs(30);

/// The address space `validate` may use (KiB): far above what it needs,
/// far below what reading `/dev/zero` to the end would take.
const ADDRESS_SPACE_KIB: u32 = 2 << 20;

/// Runs `binary validate config`, bounded in memory and in time: its exit
/// code and stderr.
fn validate(binary: &str, config: &Path) -> (Option<i32>, String) {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" validate \"$1\""
        ))
        .arg(bin(binary))
        .arg(config);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("VANTAGE_")) {
        cmd.env_remove(k);
    }
    let (status, stderr) = Proc::spawn(&mut cmd).wait_exit(DEADLINE);
    (status.code(), stderr)
}

/// Asserts that `validate` refused with 64 and said each of `want`.
fn refused(binary: &str, config: &Path, want: &[&str]) -> String {
    let (code, stderr) = validate(binary, config);
    assert_eq!(code, Some(64), "{binary}: {stderr}");
    for w in want {
        assert!(stderr.contains(w), "{binary}: want {w:?} in:\n{stderr}");
    }
    stderr
}

/// A probe config (lines 1-7) whose token file is `token_file`, with
/// `extra` after it.
fn probe_config(dir: &Scratch, token_file: &str, spool_dir: &str, extra: &str) -> PathBuf {
    dir.write(
        "p.toml",
        &format!(
            "[probe]\nsrc_region = \"us-east-2\"\nid = \"p1\"\n[collector]\n\
             url = \"http://127.0.0.1:9640\"\ntoken_file = {token_file:?}\n\
             spool_dir = {spool_dir:?}\n{extra}"
        ),
    )
}

/// A collector config (lines 1-6) whose token file is `token_file`, with
/// `extra` after it.
fn collector_config(dir: &Scratch, token_file: &str, extra: &str) -> PathBuf {
    dir.write(
        "c.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\n[[tokens]]\n\
             token_file = {token_file:?}\nsrc_region = \"us-east-2\"\n{extra}"
        ),
    )
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn a_device_as_token_file_is_refused_without_reading_it() {
    let dir = Scratch::new("edges-dev-zero");
    let p = probe_config(&dir, "/dev/zero", "spool", "");
    refused(
        "vantage-probe",
        &p,
        &[
            "p.toml:6: collector.token_file = \"/dev/zero\"",
            "/dev/zero is a character device, not a regular file",
        ],
    );
    let c = collector_config(&dir, "/dev/zero", "");
    refused(
        "vantage-collector",
        &c,
        &[
            "c.toml:5: tokens[0].token_file = \"/dev/zero\"",
            "/dev/zero is a character device, not a regular file",
        ],
    );
}

#[test]
fn a_fifo_as_token_file_or_file_sd_is_refused_without_blocking() {
    let dir = Scratch::new("edges-fifo");
    mkfifo(&dir.path.join("fifo"));
    dir.write("token", "0123456789abcdef0123456789abcdef\n");

    let p = probe_config(&dir, "fifo", "spool", "");
    refused(
        "vantage-probe",
        &p,
        &[
            "p.toml:6: collector.token_file = \"fifo\"",
            "fifo is a FIFO, not a regular file",
        ],
    );
    let p = probe_config(&dir, "token", "spool", "[[file_sd]]\npath = \"fifo\"\n");
    refused(
        "vantage-probe",
        &p,
        &[
            "p.toml:9: file_sd[0].path = \"fifo\"",
            "fifo is a FIFO, not a regular file",
        ],
    );

    let c = collector_config(&dir, "fifo", "");
    refused(
        "vantage-collector",
        &c,
        &[
            "c.toml:5: tokens[0].token_file = \"fifo\"",
            "fifo is a FIFO, not a regular file",
        ],
    );
    let c = collector_config(&dir, "token", "[inventory]\nfile_sd = [\"fifo\"]\n");
    refused(
        "vantage-collector",
        &c,
        &[
            "c.toml:8: inventory.file_sd[0] = \"fifo\"",
            "fifo is a FIFO, not a regular file",
        ],
    );
}

#[test]
fn an_oversize_config_is_refused_before_it_is_parsed() {
    let dir = Scratch::new("edges-oversize");
    // Valid TOML all the way: only its size is wrong.
    let padding = "# padding\n".repeat(4 << 20);
    let p = dir.write(
        "big-p.toml",
        &format!("[probe]\nsrc_region = \"us-east-2\"\nid = \"p1\"\n{padding}"),
    );
    refused(
        "vantage-probe",
        &p,
        &["big-p.toml is larger than 32 MiB, the most a config file may hold"],
    );
    let c = dir.write(
        "big-c.toml",
        &format!("[server]\ndata_dir = \"data\"\n{padding}"),
    );
    refused(
        "vantage-collector",
        &c,
        &["big-c.toml is larger than 32 MiB, the most a config file may hold"],
    );
}

#[test]
fn invalid_utf8_names_its_line_and_byte_offset_once() {
    let dir = Scratch::new("edges-utf8");
    for (binary, text) in [
        (
            "vantage-probe",
            b"[probe]\nsrc_region = \"us-east-2\"\nid = \"p\xff1\"\n".as_slice(),
        ),
        (
            "vantage-collector",
            b"[server]\ndata_dir = \"data\"\nfleet = \"pr\xffod\"\n".as_slice(),
        ),
    ] {
        let path = dir.path.join("u.toml");
        std::fs::write(&path, text).unwrap();
        let stderr = refused(
            binary,
            &path,
            &["u.toml:3: not UTF-8 (an invalid byte at byte offset"],
        );
        assert_eq!(stderr.matches("UTF-8").count(), 1, "said once: {stderr}");
    }
    // In a file the config names: the token file's own line.
    dir.write("token", "0123456789abcdef\n0123\u{e9}456789abcdef\n");
    let mut bytes = std::fs::read(dir.path.join("token")).unwrap();
    let e9 = bytes.iter().position(|&b| b == 0xc3).unwrap();
    bytes[e9] = 0xff;
    std::fs::write(dir.path.join("token"), &bytes).unwrap();
    let p = probe_config(&dir, "token", "spool", "");
    refused(
        "vantage-probe",
        &p,
        &[
            "p.toml:6: collector.token_file = \"token\"",
            "token:2: not UTF-8 (an invalid byte at byte offset 21)",
        ],
    );
}

#[test]
fn a_rule_across_fields_names_the_line_of_the_field_it_blames() {
    let dir = Scratch::new("edges-cross");
    dir.write("token", "0123456789abcdef0123456789abcdef\n");
    let c = collector_config(
        &dir,
        "token",
        "[probes]\nsilent_after = \"10m\"\nforget_after = \"5m\"\n\
         [evidence]\nevaluate_every = \"1m\"\nresolve_after = \"30s\"\n",
    );
    refused(
        "vantage-collector",
        &c,
        &[
            "c.toml:9: probes.forget_after = \"5m\": must be longer than probes.silent_after (10m)",
            "c.toml:12: evidence.resolve_after = \"30s\": must be at least evidence.evaluate_every (1m)",
        ],
    );
}

#[test]
fn a_spool_under_proc_is_refused() {
    let dir = Scratch::new("edges-spool");
    dir.write("token", "0123456789abcdef0123456789abcdef\n");
    let p = probe_config(&dir, "token", "/proc/spool", "");
    refused(
        "vantage-probe",
        &p,
        &["p.toml:7: collector.spool_dir = \"/proc/spool\": /proc is a kernel filesystem"],
    );
}

#[test]
fn a_host_that_is_neither_an_address_nor_a_name_is_refused() {
    let dir = Scratch::new("edges-host");
    dir.write("token", "0123456789abcdef0123456789abcdef\n");
    let p = probe_config(
        &dir,
        "token",
        "spool",
        "[[targets]]\nhost = \"10.20.0.5.7\"\nport = 443\n",
    );
    refused(
        "vantage-probe",
        &p,
        &["p.toml:9: targets[0].host = \"10.20.0.5.7\": not an IPv4 address"],
    );
    dir.write("fleet.json", "[{\"targets\": [\"10.20.0.5.7:443\"]}]\n");
    let c = collector_config(&dir, "token", "[inventory]\nfile_sd = [\"fleet.json\"]\n");
    refused(
        "vantage-collector",
        &c,
        &[
            "c.toml:8: inventory.file_sd[0] = \"fleet.json\"",
            "10.20.0.5.7:443",
        ],
    );
}
