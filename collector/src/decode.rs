//! A pushed body to a [`Batch`]: JSON or the binary encoding (its
//! `Content-Type`), identity or gzip (its `Content-Encoding`).
//!
//! JSON is read as a stream: no decompressed copy of the body is ever
//! held: the gzip decoder feeds the JSON parser through a small buffer, so
//! whitespace costs time, never memory, and the only allocation that grows
//! is the batch itself. A binary body is decompressed whole (a fraction
//! of what its JSON would be) and read from memory; its reader checks every count
//! against the bytes left and the rounds against
//! `limits.max_results_per_batch` before allocating for them. Either way
//! the decompressed bytes are counted, and a body that goes past its cap is
//! refused there, before the rest is read.
//!
//! [`Decoders`] runs decodes off the async threads, a bounded number at
//! once; waiting for a turn holds no thread.

use std::io::{self, BufReader, Read};
use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::Semaphore;
use vantage_probe::wire::{Batch, MAX_ATTEMPTS_PER_ROUND, binary};

/// The buffer between the gzip decoder and the JSON parser.
const BUFFER_BYTES: usize = 16 << 10;

/// A body's `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// No coding: the body is the batch.
    Identity,
    /// One or more gzip members (RFC 1952).
    Gzip,
}

/// A body's `Content-Type`: how the batch itself is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json` (or no `Content-Type`: what older probes sent).
    Json,
    /// The binary encoding, [`binary::CONTENT_TYPE`].
    Binary,
}

/// The media types a results body may have, as the collector lists them
/// in its `Accept-Post` answers.
pub(crate) const ACCEPTED_TYPES: &str = "application/vnd.vantage.batch.v1, application/json";

/// Why a body is not a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    /// Which way it failed.
    pub kind: DecodeErrorKind,
    /// What was wrong, for the sender.
    pub message: String,
}

/// The ways a body fails to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// A content coding other than gzip or identity.
    UnsupportedEncoding,
    /// A media type other than JSON or the binary encoding.
    UnsupportedMediaType,
    /// Not gzip, not JSON (or binary), not a batch, or something after it.
    Malformed,
    /// It decompresses to more than its cap.
    TooLarge,
    /// A binary body with more rounds than `limits.max_results_per_batch`
    /// (a JSON body's are counted by the checks after decoding).
    TooManyResults,
}

impl Encoding {
    /// The coding a `Content-Encoding` value names (absent: identity).
    /// Codings are case-insensitive (RFC 9110, 8.4.1).
    pub fn parse(value: Option<&str>) -> Result<Encoding, DecodeError> {
        let value = value.unwrap_or("identity").trim().to_ascii_lowercase();
        match value.as_str() {
            "identity" => Ok(Encoding::Identity),
            "gzip" | "x-gzip" => Ok(Encoding::Gzip),
            other => Err(DecodeError::new(
                DecodeErrorKind::UnsupportedEncoding,
                format!("Content-Encoding {other:?}: send gzip or identity"),
            )),
        }
    }
}

impl Format {
    /// The format a `Content-Type` value names (absent: JSON). Media types
    /// are case-insensitive and may carry parameters (RFC 9110, 8.3.1).
    pub fn parse(value: Option<&str>) -> Result<Format, DecodeError> {
        let Some(value) = value else {
            return Ok(Format::Json);
        };
        let essence = value.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/json") {
            Ok(Format::Json)
        } else if essence.eq_ignore_ascii_case(binary::CONTENT_TYPE) {
            Ok(Format::Binary)
        } else {
            Err(DecodeError::new(
                DecodeErrorKind::UnsupportedMediaType,
                format!("Content-Type {value:?}: send one of {ACCEPTED_TYPES}"),
            ))
        }
    }
}

impl DecodeError {
    fn new(kind: DecodeErrorKind, message: String) -> DecodeError {
        DecodeError { kind, message }
    }
}

/// What one body may hold: `max_decompressed` bytes once decompressed,
/// and (binary) `max_results` rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caps {
    /// Bytes after decompression.
    pub(crate) max_decompressed: usize,
    /// Rounds of a binary body.
    pub(crate) max_results: usize,
}

/// Decodes `body`, written as `format` and coded as `encoding`, into a
/// batch, within `caps`. Every gzip member is read; anything after the
/// batch (but whitespace, for JSON), or after the last member, is
/// malformed.
pub(crate) fn batch(
    format: Format,
    encoding: Encoding,
    body: &[u8],
    caps: Caps,
) -> Result<Batch, DecodeError> {
    let max_decompressed = caps.max_decompressed;
    let decoded = match (format, encoding) {
        // The body is already held, and within `max_body_bytes`.
        (Format::Json, Encoding::Identity) => json(body, max_decompressed, ""),
        (Format::Json, Encoding::Gzip) => json(
            flate2::read::MultiGzDecoder::new(body),
            max_decompressed,
            "gzip body: ",
        ),
        (Format::Binary, Encoding::Identity) if body.len() > max_decompressed => {
            Err(Failure::TooLarge)
        }
        (Format::Binary, Encoding::Identity) => binary_batch(body, caps),
        (Format::Binary, Encoding::Gzip) => {
            inflate(body, max_decompressed).and_then(|bytes| binary_batch(&bytes, caps))
        }
    };
    decoded.map_err(|failure| match failure {
        Failure::TooLarge => DecodeError::new(
            DecodeErrorKind::TooLarge,
            match encoding {
                Encoding::Identity => format!(
                    "the body is more than {max_decompressed} bytes{}",
                    if format == Format::Json {
                        " of JSON"
                    } else {
                        ""
                    }
                ),
                Encoding::Gzip => {
                    format!("the body decompresses to more than {max_decompressed} bytes")
                }
            } + " (what limits.max_results_per_batch results take)",
        ),
        Failure::Malformed(m) => DecodeError::new(DecodeErrorKind::Malformed, m),
        Failure::TooManyResults(m) => DecodeError::new(DecodeErrorKind::TooManyResults, m),
    })
}

/// Every gzip member of `body`, within `max` bytes.
fn inflate(body: &[u8], max: usize) -> Result<Vec<u8>, Failure> {
    let mut counted = Capped {
        inner: flate2::read::MultiGzDecoder::new(body),
        left: max,
        over: false,
    };
    let mut bytes = Vec::with_capacity((body.len() * 4).min(max));
    match counted.read_to_end(&mut bytes) {
        Ok(_) => Ok(bytes),
        Err(_) if counted.over => Err(Failure::TooLarge),
        Err(e) => Err(Failure::Malformed(format!("gzip body: {e}"))),
    }
}

fn binary_batch(bytes: &[u8], caps: Caps) -> Result<Batch, Failure> {
    let bounds = binary::Bounds {
        max_rounds: caps.max_results,
        max_attempts_per_round: MAX_ATTEMPTS_PER_ROUND,
        // No more than the same cap allows a JSON body to hold.
        max_attempts: caps.max_decompressed / binary::MIN_ATTEMPT_JSON_BYTES,
    };
    binary::decode(bytes, bounds).map_err(|e| match e {
        binary::Error::TooManyRounds { rounds, max } => Failure::TooManyResults(format!(
            "{rounds} results in one batch, at most {max} (limits.max_results_per_batch)"
        )),
        binary::Error::TooManyAttempts { .. } => Failure::TooLarge,
        other => Failure::Malformed(other.to_string()),
    })
}

/// Decodes bodies off the async threads, at most `permits` at once.
#[derive(Debug, Clone)]
pub(crate) struct Decoders {
    permits: Arc<Semaphore>,
}

impl Decoders {
    /// At most `concurrent` decodes at once.
    pub(crate) fn new(concurrent: usize) -> Decoders {
        Decoders {
            permits: Arc::new(Semaphore::new(concurrent.max(1))),
        }
    }

    /// [`batch`] on a blocking thread once a turn is free; the wait is a
    /// future, not a held thread.
    pub(crate) async fn decode(
        &self,
        format: Format,
        encoding: Encoding,
        body: impl AsRef<[u8]> + Send + 'static,
        caps: Caps,
    ) -> Result<Batch, DecodeError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the decoders' semaphore is never closed");
        let job = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            batch(format, encoding, body.as_ref(), caps)
        });
        match job.await {
            Ok(decoded) => decoded,
            // Only a panic ends the job early: pass it on, as the
            // handler's own code would have.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// Why [`json`] failed, before it is worded.
enum Failure {
    TooLarge,
    Malformed(String),
    TooManyResults(String),
}

/// A batch parsed from `source`, of which at most `max` bytes are read;
/// `prefix` names a failure of the source itself (the gzip decoder).
fn json(source: impl Read, max: usize, prefix: &str) -> Result<Batch, Failure> {
    let mut counted = Capped {
        inner: source,
        left: max,
        over: false,
    };
    let result = {
        let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(
            BUFFER_BYTES,
            &mut counted,
        ));
        Batch::deserialize(&mut de).and_then(|batch| de.end().map(|()| batch))
    };
    match result {
        Ok(batch) => Ok(batch),
        Err(_) if counted.over => Err(Failure::TooLarge),
        Err(e) if e.is_io() => Err(Failure::Malformed(format!("{prefix}{e}"))),
        Err(e) => Err(Failure::Malformed(format!("not a batch: {e}"))),
    }
}

/// A reader that gives at most `left` bytes, then fails and remembers it.
struct Capped<R> {
    inner: R,
    left: usize,
    over: bool,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte past the cap is asked for, so that a body of exactly
        // `max` bytes is not taken for a longer one.
        let want = buf.len().min(self.left.saturating_add(1));
        let n = self.inner.read(&mut buf[..want])?;
        if n > self.left {
            self.over = true;
            return Err(io::Error::other("over the decompressed cap"));
        }
        self.left -= n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    const BATCH: &str = r#"{"schema":1,"probe":{"src_region":"east","probe_id":"p1"},"stream":"s1","seq":7,"sent_at":"2026-12-02T16:00:00.000000Z","results":[{"target":"api","host":"127.0.0.1","port":443,"started_at":"2026-12-02T16:00:00.000000Z","attempts":[{"address":"127.0.0.1:443","started_at":"2026-12-02T16:00:00.000000Z","outcome":"ok","duration_us":900,"rtt_us":800,"syn_retransmits":0}]}]}"#;

    fn gzip(parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for part in parts {
            let mut z = GzEncoder::new(Vec::new(), Compression::default());
            z.write_all(part).unwrap();
            out.extend(z.finish().unwrap());
        }
        out
    }

    /// `BATCH` followed by `n` bytes of whitespace.
    fn padded(n: usize) -> Vec<u8> {
        let mut body = BATCH.as_bytes().to_vec();
        body.resize(body.len() + n, b' ');
        body
    }

    /// A JSON body within `max` decompressed bytes.
    fn jbatch(encoding: Encoding, body: &[u8], max: usize) -> Result<Batch, DecodeError> {
        let caps = Caps {
            max_decompressed: max,
            max_results: usize::MAX,
        };
        batch(Format::Json, encoding, body, caps)
    }

    fn kind(r: Result<Batch, DecodeError>) -> DecodeErrorKind {
        r.expect_err("refused").kind
    }

    #[test]
    fn identity_and_gzip_decode_the_same_batch() {
        let plain = jbatch(Encoding::Identity, BATCH.as_bytes(), 1 << 20).unwrap();
        let zipped = jbatch(Encoding::Gzip, &gzip(&[BATCH.as_bytes()]), 1 << 20).unwrap();
        assert_eq!(plain, zipped);
        assert_eq!((plain.seq, plain.results.len()), (7, 1));
    }

    #[test]
    fn every_gzip_member_is_read() {
        let (a, b) = BATCH.as_bytes().split_at(100);
        let batch = jbatch(Encoding::Gzip, &gzip(&[a, b]), 1 << 20).unwrap();
        assert_eq!(batch.results.len(), 1);
    }

    #[test]
    fn anything_after_the_batch_is_malformed() {
        let mut zipped = gzip(&[BATCH.as_bytes()]);
        zipped.extend_from_slice(b"garbage");
        let e = jbatch(Encoding::Gzip, &zipped, 1 << 20).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::Malformed);
        assert!(e.message.starts_with("gzip body: "), "{e}");
        let after = format!("{BATCH} {{}}");
        let e = jbatch(Encoding::Identity, after.as_bytes(), 1 << 20).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::Malformed);
        assert!(e.message.contains("trailing characters"), "{e}");
        let two = gzip(&[BATCH.as_bytes(), BATCH.as_bytes()]);
        assert_eq!(
            kind(jbatch(Encoding::Gzip, &two, 1 << 20)),
            DecodeErrorKind::Malformed
        );
    }

    #[test]
    fn not_gzip_and_not_json_are_malformed() {
        for (encoding, body) in [
            (Encoding::Gzip, BATCH.as_bytes().to_vec()),
            (Encoding::Identity, b"{\"schema\":1".to_vec()),
            (Encoding::Identity, Vec::new()),
            (Encoding::Gzip, gzip(&[b"[1, 2]"])),
        ] {
            assert_eq!(
                kind(jbatch(encoding, &body, 1 << 20)),
                DecodeErrorKind::Malformed
            );
        }
    }

    #[test]
    fn the_cap_counts_decompressed_bytes_padding_included() {
        let body = padded(1000);
        let max = body.len();
        assert!(jbatch(Encoding::Identity, &body, max).is_ok());
        assert!(jbatch(Encoding::Gzip, &gzip(&[&body]), max).is_ok());
        let e = jbatch(Encoding::Gzip, &gzip(&[&body]), max - 1).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::TooLarge);
        assert!(e.message.contains(&format!("more than {}", max - 1)), "{e}");
        assert_eq!(
            kind(jbatch(Encoding::Identity, &body, max - 1)),
            DecodeErrorKind::TooLarge
        );
    }

    #[test]
    fn whitespace_padding_far_past_the_cap_is_refused_as_too_large() {
        // 64 MiB of whitespace in well under 1 MiB of gzip, before the
        // batch: refused at the cap, without reading the rest.
        let mut z = GzEncoder::new(Vec::new(), Compression::default());
        let spaces = vec![b' '; 1 << 20];
        for _ in 0..64 {
            z.write_all(&spaces).unwrap();
        }
        z.write_all(BATCH.as_bytes()).unwrap();
        let bomb = z.finish().unwrap();
        assert!(bomb.len() < 1 << 20);
        let e = jbatch(Encoding::Gzip, &bomb, 4 << 20).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::TooLarge, "{e}");
        // Within the cap, the padding is only skipped.
        assert_eq!(jbatch(Encoding::Gzip, &bomb, 65 << 20).unwrap().seq, 7);
    }

    #[test]
    fn only_gzip_and_identity_are_codings() {
        assert_eq!(Encoding::parse(None).unwrap(), Encoding::Identity);
        assert_eq!(Encoding::parse(Some(" GZIP ")).unwrap(), Encoding::Gzip);
        assert_eq!(Encoding::parse(Some("x-gzip")).unwrap(), Encoding::Gzip);
        let e = Encoding::parse(Some("br")).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::UnsupportedEncoding);
    }

    const CAPS: Caps = Caps {
        max_decompressed: 1 << 20,
        max_results: 10,
    };

    #[test]
    fn a_binary_body_decodes_to_the_batch_its_json_does() {
        let json = jbatch(Encoding::Identity, BATCH.as_bytes(), 1 << 20).unwrap();
        let bytes = binary::encode(&json);
        for (encoding, body) in [
            (Encoding::Identity, bytes.clone()),
            (Encoding::Gzip, gzip(&[&bytes])),
            (Encoding::Gzip, gzip(&[&bytes[..9], &bytes[9..]])),
        ] {
            assert_eq!(batch(Format::Binary, encoding, &body, CAPS).unwrap(), json);
        }
        // Read as JSON, or JSON read as binary: malformed, never misread.
        for (format, body) in [
            (Format::Json, bytes.as_slice()),
            (Format::Binary, BATCH.as_bytes()),
        ] {
            let e = batch(format, Encoding::Identity, body, CAPS).unwrap_err();
            assert_eq!(e.kind, DecodeErrorKind::Malformed, "{e}");
        }
    }

    #[test]
    fn a_binary_body_is_held_to_the_decompressed_cap_and_the_results_cap() {
        let json = jbatch(Encoding::Identity, BATCH.as_bytes(), 1 << 20).unwrap();
        let bytes = binary::encode(&json);
        let tight = Caps {
            max_decompressed: bytes.len() - 1,
            ..CAPS
        };
        for body in [bytes.clone(), gzip(&[&bytes])] {
            let encoding = if body == bytes {
                Encoding::Identity
            } else {
                Encoding::Gzip
            };
            let e = batch(Format::Binary, encoding, &body, tight).unwrap_err();
            assert_eq!(e.kind, DecodeErrorKind::TooLarge, "{e}");
        }
        let many = Batch {
            results: vec![json.results[0].clone(); 11],
            ..json
        };
        let e = batch(
            Format::Binary,
            Encoding::Identity,
            &binary::encode(&many),
            CAPS,
        )
        .unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::TooManyResults);
        assert!(
            e.message.contains("11 results in one batch, at most 10"),
            "{e}"
        );
        // No more attempts than the cap's worth of JSON could hold: a
        // small body of many attempts decodes to no more than JSON would.
        let mut round = many.results[0].clone();
        round.attempts = vec![round.attempts[0].clone(); 64];
        let wide = Batch {
            results: vec![round; 10],
            ..many
        };
        let body = binary::encode(&wide);
        let cap = 640 * binary::MIN_ATTEMPT_JSON_BYTES;
        let fits = Caps {
            max_decompressed: cap,
            ..CAPS
        };
        assert!(batch(Format::Binary, Encoding::Identity, &body, fits).is_ok());
        let tight = Caps {
            max_decompressed: cap - 1,
            ..CAPS
        };
        let e = batch(Format::Binary, Encoding::Identity, &body, tight).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::TooLarge, "{e}");
        assert!(body.len() * 8 < cap, "{} bytes", body.len());
    }

    #[test]
    fn json_and_binary_are_the_media_types() {
        assert_eq!(Format::parse(None).unwrap(), Format::Json);
        assert_eq!(
            Format::parse(Some("Application/JSON; charset=utf-8")).unwrap(),
            Format::Json
        );
        assert_eq!(
            Format::parse(Some(binary::CONTENT_TYPE)).unwrap(),
            Format::Binary
        );
        let e = Format::parse(Some("text/plain")).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::UnsupportedMediaType);
        assert!(e.message.contains(ACCEPTED_TYPES), "{e}");
        assert!(ACCEPTED_TYPES.starts_with(binary::CONTENT_TYPE));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn decoders_decode_off_the_async_threads() {
        let decoders = Decoders::new(1);
        let caps = Caps {
            max_decompressed: 1 << 20,
            max_results: 10,
        };
        let runs = (0..4).map(|_| {
            decoders.decode(
                Format::Json,
                Encoding::Gzip,
                gzip(&[BATCH.as_bytes()]),
                caps,
            )
        });
        for decoded in futures_util::future::join_all(runs).await {
            assert_eq!(decoded.unwrap().seq, 7);
        }
    }
}
