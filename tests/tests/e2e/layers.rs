//! The probe's top-level modules form a DAG in a declared layer order: a
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
    // The validated config and the measurements it configures.
    &["config"],
    &["dns", "connect"],
    // Records, counters and the wire format: plain data.
    &["metrics", "stats", "wire", "result"],
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
