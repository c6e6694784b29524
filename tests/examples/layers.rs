//! Prints the import graph of a crate's top-level modules, its cycles and,
//! given a layer order, its upward arrows.
//!
//! `cargo run -p vantage-tests --example layers -- <crate dir> [layers]`,
//! layers top first, `;` between layers and `,` within one:
//! `http;app;evidence,report;store;config`.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: layers <crate dir> [layer;layer,layer;...]");
        return ExitCode::from(64);
    };
    let spec = args.get(1).map(String::as_str).unwrap_or("");
    let layers: Vec<Vec<&str>> = spec
        .split(';')
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::trim).collect())
        .collect();
    let layers: Vec<&[&str]> = layers.iter().map(Vec::as_slice).collect();
    match vantage_tests::layers::check(Path::new(dir), &layers) {
        Ok(report) => {
            print!("{report}");
            if report.cycles.is_empty() && report.upward.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("error: {dir}: {err}");
            ExitCode::FAILURE
        }
    }
}
