//! Each crate's top-level modules form a DAG in a declared layer order: a
//! module imports only its own layer (without a cycle) and the ones below.
//! A change that needs an arrow up has a type in the wrong place.

use std::path::Path;

use vantage_tests::layers;

/// The probe's layers, top first.
const PROBE: &[&[&str]] = &[
    // The command line, and the one-shot commands it starts.
    &["cli"],
    &["demo", "check"],
    // The running probe, its parts, and what they run on.
    &["service"],
    &["admin", "engine", "push"],
    &["exposition", "round", "limits", "open_files"],
    // The measurements, then the validated config that sets them (with
    // their plain option types).
    &["dns", "connect"],
    &["config"],
    // Records, counters and the wire format: plain data.
    &["metrics", "stats", "wire", "result", "loss"],
    // Leaves.
    &[
        "outcome", "icmp", "tcp_info", "schedule", "memory", "shutdown", "testbed",
    ],
];

#[test]
fn the_probe_is_a_dag_in_its_layer_order() {
    let probe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../probe");
    let report = layers::check(&probe, PROBE).unwrap();
    assert!(report.is_clean(), "the probe's layers:\n{report}");
}

/// The collector's layers, top first (ARCHITECTURE.md's code map).
const COLLECTOR: &[&[&str]] = &[
    // The command line and what it runs; the fuzz targets' entry points.
    &["cli", "fuzz"],
    &["demo"],
    &["service"],
    &["reload"],
    // The only module that knows the web framework.
    &["http"],
    // The shared state, built once, and the evaluation loop.
    &["app"],
    // The domain: values in, values and domain errors out.
    &["ingest", "metrics", "report"],
    &["evidence", "inventory"],
    &["fleet", "auth", "validate", "tls", "decode"],
    // The only module that writes SQL.
    &["store"],
    // Leaves.
    &["time", "config", "groups"],
];

#[test]
fn the_collector_is_a_dag_in_its_layer_order() {
    let collector = Path::new(env!("CARGO_MANIFEST_DIR")).join("../collector");
    let report = layers::check(&collector, COLLECTOR).unwrap();
    assert!(report.is_clean(), "the collector's layers:\n{report}");
}

/// Files under `collector/src/` outside `within` whose code mentions any
/// of `needles`.
fn mentions_outside(within: &str, needles: &[&str]) -> Vec<String> {
    let collector = Path::new(env!("CARGO_MANIFEST_DIR")).join("../collector");
    let mut out = Vec::new();
    for needle in needles {
        for f in layers::files_mentioning(&collector, needle).unwrap() {
            if !f.starts_with(within) {
                out.push(format!("{}: {needle}", f.display()));
            }
        }
    }
    out
}

#[test]
fn only_the_http_layer_knows_the_web_framework() {
    let found = mentions_outside("http", &["axum", "hyper", "http_body"]);
    assert!(
        found.is_empty(),
        "axum or hyper outside collector/src/http/: {found:?}"
    );
}

#[test]
fn only_the_store_speaks_sql() {
    let found = mentions_outside(
        "store",
        &["rusqlite", "SELECT ", "INSERT ", "UPDATE ", "DELETE FROM"],
    );
    assert!(
        found.is_empty(),
        "SQL outside collector/src/store/: {found:?}"
    );
}
