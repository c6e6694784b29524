//! The collector's parsers of outside input, each as the running collector
//! calls it, for the fuzz targets in `tests/fuzz/`. Hidden from the docs:
//! an entry point for the fuzzer, not an API.

use std::io;

use crate::evidence::alertmanager;
use crate::report::{Report, markdown, svg, text};

/// A body sent to `POST /api/v1/alertmanager`, read as the handler reads
/// it (within its `MAX_BODY`, which the fuzzer's inputs are far below):
/// the number of alerts, or why it is refused.
pub fn alertmanager_webhook(body: &[u8]) -> Result<usize, String> {
    let (_, windows) = alertmanager::parse(body).map_err(|e| e.to_string())?;
    Ok(windows.len())
}

/// An answer of `GET /api/v1/report` as `report --collector` reads it, then
/// rendered in every format the command writes (markdown, text, JSON, SVG).
/// The bytes written, or why it is not a report.
pub fn report(body: &[u8]) -> Result<usize, String> {
    let report: Report = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    render(&report, &mut out).map_err(|e| format!("rendering: {e}"))?;
    Ok(out.len())
}

fn render(report: &Report, out: &mut Vec<u8>) -> io::Result<()> {
    markdown::render(report, out)?;
    text::render(report, out)?;
    serde_json::to_writer_pretty(&mut *out, report)?;
    svg::render(report, out)
}
