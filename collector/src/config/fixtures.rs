//! Config tests as data: every invalid fixture under `collector/tests/config/`
//! gives exactly its message, naming the file, the line, the field and the
//! value.

use std::path::{Path, PathBuf};

use super::Config;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config")
}

/// The error a fixture gives, with the fixture directory left out of paths.
fn error_of(name: &str) -> String {
    let dir = fixtures();
    let err = Config::load(&dir.join(name)).expect_err("the fixture is invalid");
    err.to_string().replace(&format!("{}/", dir.display()), "")
}

/// (fixture, exact message)
const INVALID: &[(&str, &str)] = &[
    ("syntax.toml", "syntax.toml:1: unclosed table, expected `]`"),
    (
        "unknown_field.toml",
        "unknown_field.toml:3: unknown field `listen_on`, expected one of `fleet`, `listen`, `data_dir`, `tls_cert_file`, `tls_key_file`, `watch_every`, `header_read_timeout`, `body_read_timeout`, `idle_timeout`, `tls_handshake_timeout`, `max_connections`",
    ),
    (
        "bad_server.toml",
        "bad_server.toml: 5 invalid values:\n  bad_server.toml:3: server.listen = \"9640\": must be an IP:port like \"0.0.0.0:9640\"\n  bad_server.toml:2: server.fleet = \"prod east\": must be 1-63 characters of letters, digits, '-', '_' or '.'\n  bad_server.toml:4: server.data_dir = \"\": must not be empty\n  bad_server.toml:5: server.tls_cert_file / tls_key_file = \"cert.pem\": set both, or neither for plain HTTP\n  bad_server.toml:6: server.watch_every = \"0s\": must be longer than zero",
    ),
    (
        "bad_connections.toml",
        "bad_connections.toml: 4 invalid values:\n  bad_connections.toml:3: server.header_read_timeout = \"0s\": must be longer than zero\n  bad_connections.toml:4: server.body_read_timeout = \"2h\": must be at most 1h; a longer timeout is none\n  bad_connections.toml:5: server.idle_timeout = \"a while\": not a duration (expected number at 0); write it like \"60s\" or \"30d\"\n  bad_connections.toml:7: server.max_connections = 0: must be between 1 and 1000000",
    ),
    (
        "bad_tokens.toml",
        "bad_tokens.toml: 4 invalid values:\n  bad_tokens.toml:4: tokens[0]: set exactly one of token and token_file\n  bad_tokens.toml:9: tokens[1].src_region: required (the one region this token may report for)\n  bad_tokens.toml:15: tokens[2].probe_ids = \"not ok\": must be 1-253 characters of letters, digits, '-', '_' or '.'\n  bad_tokens.toml:18: tokens[3].token_file = \"no-such-token\": cannot read no-such-token: No such file or directory (os error 2)",
    ),
    (
        "bad_policies.toml",
        "bad_policies.toml: 3 invalid values:\n  bad_policies.toml:6: probes.forget_after = \"5m\": must be longer than probes.silent_after (10m)\n  bad_policies.toml:11: evidence.recent = \"soon\": not a duration (expected number at 0); write it like \"60s\" or \"30d\"\n  bad_policies.toml:10: evidence.resolve_after = \"30s\": must be at least evidence.evaluate_every (1m)",
    ),
    (
        "bad_limits.toml",
        "bad_limits.toml: 5 invalid values:\n  bad_limits.toml:5: limits.max_body_bytes = 2147483648: must be between 1 and 1073741824\n  bad_limits.toml:6: limits.max_results_per_batch = -1: must be between 1 and 10000000\n  bad_limits.toml:7: limits.max_batches_per_second = 0: must be between 1 and 100000\n  bad_limits.toml:8: limits.max_future = \"-5s\": not a duration (expected number at 0); write it like \"60s\" or \"30d\"\n  bad_limits.toml:9: limits.max_concurrent_decodes = 0: must be between 1 and 1024",
    ),
    (
        "bad_inventory.toml",
        "bad_inventory.toml: 3 invalid values:\n  bad_inventory.toml:5: inventory.file_sd[0] = \"no-such-list.json\": cannot read no-such-list.json: No such file or directory (os error 2)\n  bad_inventory.toml:5: inventory.file_sd[1] = \"bad_list.json\": bad_list.json: [0].targets[0] = \"db.internal:0\": must be host:port with a port of 1-65535\n  bad_inventory.toml:5: inventory.file_sd[2] = \"bad_hosts.json\": bad_hosts.json: [0].targets[1] = \"10.20.0.5.7:443\": must be host:port with a port of 1-65535",
    ),
    (
        "token_device.toml",
        "token_device.toml: 1 invalid value:\n  token_device.toml:6: tokens[0].token_file = \"/dev/zero\": /dev/zero is a character device, not a regular file",
    ),
    (
        "duplicate_tokens.toml",
        "duplicate_tokens.toml: 1 invalid value:\n  duplicate_tokens.toml:8: tokens[1]: the same token as tokens[0] (line 4); a token names exactly one region",
    ),
    (
        "default_blamed.toml",
        "default_blamed.toml: 1 invalid value:\n  default_blamed.toml:6: probes.silent_after = \"2d\": probes.forget_after (1day, the default) must be longer than it",
    ),
    (
        "not_utf8.toml",
        "not_utf8.toml:3: not UTF-8 (an invalid byte at byte offset 38)",
    ),
];

#[test]
fn every_invalid_fixture_gives_its_message() {
    for (name, want) in INVALID {
        assert_eq!(error_of(name), *want, "fixture {name}");
    }
    // A new fixture without an expected message is a test that never runs.
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".toml") {
            assert!(
                INVALID.iter().any(|(n, _)| *n == name),
                "{name} has no expected message"
            );
        }
    }
}

/// Each of these would block a load (and every reload) forever if it were
/// opened for reading: nothing ever writes to the FIFO.
#[test]
fn a_fifo_is_refused_unopened_as_token_file_inventory_or_config() {
    let dir = std::env::temp_dir().join(format!("vantage-c-fifo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        "[server]\ndata_dir = \"data\"\n[[tokens]]\ntoken_file = \"fifo\"\nsrc_region = \"r\"\n\
         [inventory]\nfile_sd = [\"fifo\"]\n",
    )
    .unwrap();
    let err = Config::load(&config).unwrap_err().to_string();
    let not_regular = format!("{} is a FIFO, not a regular file", fifo.display());
    assert!(
        err.contains(&format!(
            "c.toml:4: tokens[0].token_file = \"fifo\": {not_regular}"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "c.toml:7: inventory.file_sd[0] = \"fifo\": {not_regular}"
        )),
        "{err}"
    );
    assert_eq!(Config::load(&fifo).unwrap_err().to_string(), not_regular);
    std::fs::remove_dir_all(&dir).unwrap();
}
