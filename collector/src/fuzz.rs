//! The collector's parsers of outside input, each as the running collector
//! calls it, for the fuzz targets in `tests/fuzz/`. Hidden from the docs:
//! an entry point for the fuzzer, not an API.

use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::IngestLimits;
use crate::decode::{self, Encoding, Format};
use crate::evidence::alertmanager;
use crate::report::{Report, markdown, svg, text};
use crate::validate;

/// A body sent to `POST /api/v1/alertmanager`, read as the handler reads
/// it (within its `MAX_BODY`, which the fuzzer's inputs are far below):
/// the number of alerts, or why it is refused.
pub fn alertmanager_webhook(body: &[u8]) -> Result<usize, String> {
    let (_, windows) = alertmanager::parse(body).map_err(|e| e.to_string())?;
    Ok(windows.len())
}

/// A body sent to `POST /api/v1/results` as JSON, decoded and checked as
/// the handler does it within the default limits (on a fixed clock,
/// 2027-01-15 08:00 UTC): as identity, as a gzip body, and gzipped (which
/// must decode as the identity body does). The results of the batch that
/// passes the checks, or why it is refused.
pub fn batch(body: &[u8]) -> Result<usize, String> {
    results_body(Format::Json, body)
}

/// The same for a body in the binary encoding; and a batch it reads is
/// written again and must read back the same.
pub fn binary_batch(body: &[u8]) -> Result<usize, String> {
    let limits = IngestLimits::defaults();
    if let Ok(read) = decode::batch(Format::Binary, Encoding::Identity, body, caps(&limits)) {
        let again = vantage_probe::wire::binary::encode(&read);
        let back = decode::batch(Format::Binary, Encoding::Identity, &again, caps(&limits));
        assert_eq!(
            back.as_ref(),
            Ok(&read),
            "a batch read from binary is written back differently"
        );
    }
    results_body(Format::Binary, body)
}

fn caps(limits: &IngestLimits) -> decode::Caps {
    decode::Caps {
        max_decompressed: limits.max_decompressed_bytes,
        max_results: limits.max_results_per_batch,
    }
}

fn results_body(format: Format, body: &[u8]) -> Result<usize, String> {
    let limits = IngestLimits::defaults();
    let caps = caps(&limits);
    // A fixed clock, so that a crash found is one that repeats.
    let received = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let plain = decode::batch(format, Encoding::Identity, body, caps);
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(body).map_err(|e| e.to_string())?;
    let zipped = z.finish().map_err(|e| e.to_string())?;
    let through = decode::batch(format, Encoding::Gzip, &zipped, caps);
    match (&plain, &through) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "gzip changed the batch"),
        (Err(a), Err(b)) => assert_eq!(a.kind, b.kind, "{a} / {b}"),
        _ => panic!("identity {plain:?}, gzipped {through:?}"),
    }
    let as_identity = checked(plain, &limits, received);
    let as_gzip = checked(
        decode::batch(format, Encoding::Gzip, body, caps),
        &limits,
        received,
    );
    as_identity.or(as_gzip)
}

fn checked(
    decoded: Result<vantage_probe::wire::Batch, decode::DecodeError>,
    limits: &IngestLimits,
    received: SystemTime,
) -> Result<usize, String> {
    let batch = decoded.map_err(|e| e.to_string())?;
    validate::check(&batch, limits, received).map_err(|e| e.to_string())?;
    Ok(batch.results.len())
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    /// The fuzz target's seed is a batch that passes every check, plain
    /// and gzipped, so the fuzzer starts deep in the validation.
    #[test]
    fn the_batch_seed_is_a_valid_batch() {
        let seed = include_bytes!("../../tests/fuzz/seeds/batch/batch.json");
        assert_eq!(super::batch(seed), Ok(2));
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(seed).unwrap();
        assert_eq!(super::batch(&z.finish().unwrap()), Ok(2));
        assert!(super::batch(b"{}").is_err());
    }

    /// The binary target's seed is the same batch in the binary encoding
    /// (written by this test when `VANTAGE_WRITE_SEEDS` is set, after a
    /// change of the layout).
    #[test]
    fn the_binary_batch_seed_is_the_batch_seed_in_binary() {
        let seed = include_bytes!("../../tests/fuzz/seeds/batch/batch.json");
        let batch: vantage_probe::wire::Batch = serde_json::from_slice(seed).unwrap();
        let bytes = vantage_probe::wire::binary::encode(&batch);
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fuzz/seeds/batch_binary/batch.bin"
        );
        if std::env::var_os("VANTAGE_WRITE_SEEDS").is_some() {
            std::fs::write(path, &bytes).unwrap();
        }
        assert_eq!(
            std::fs::read(path).unwrap(),
            bytes,
            "{path} is stale: run this test with VANTAGE_WRITE_SEEDS=1"
        );
        assert_eq!(super::binary_batch(&bytes), Ok(2));
        assert!(super::binary_batch(seed).is_err(), "JSON is not binary");
    }
}
