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
        "bad_policies.toml: 3 invalid values:\n  bad_policies.toml: probes.forget_after (5m) must be longer than probes.silent_after (10m)\n  bad_policies.toml:11: evidence.recent = \"soon\": not a duration (expected number at 0); write it like \"60s\" or \"30d\"\n  bad_policies.toml: evidence.resolve_after (30s) must be at least evidence.evaluate_every (1m)",
    ),
    (
        "bad_limits.toml",
        "bad_limits.toml: 4 invalid values:\n  bad_limits.toml:5: limits.max_body_bytes = 2147483648: must be between 1 and 1073741824\n  bad_limits.toml:6: limits.max_results_per_batch = -1: must be between 1 and 10000000\n  bad_limits.toml:7: limits.max_batches_per_second = 0: must be between 1 and 100000\n  bad_limits.toml:8: limits.max_future = \"-5s\": not a duration (expected number at 0); write it like \"60s\" or \"30d\"",
    ),
    (
        "bad_inventory.toml",
        "bad_inventory.toml: 2 invalid values:\n  bad_inventory.toml:5: inventory.file_sd[0] = \"no-such-list.json\": no-such-list.json: No such file or directory (os error 2)\n  bad_inventory.toml:5: inventory.file_sd[1] = \"bad_list.json\": bad_list.json: [0].targets[0] = \"db.internal:0\": must be host:port with a port of 1-65535",
    ),
];

#[test]
fn every_invalid_fixture_gives_its_message() {
    for (name, want) in INVALID {
        assert_eq!(error_of(name), *want, "fixture {name}");
    }
}
