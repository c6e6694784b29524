//! A pushed body to a [`Batch`]: identity or gzip, read as a stream. No
//! decompressed copy of the body is ever held: the gzip decoder feeds the
//! JSON parser through a small buffer, so whitespace costs time, never
//! memory, and the only allocation that grows is the batch itself. The
//! decompressed bytes are counted, and a body that goes past its cap is
//! refused there, before the rest is read.
//!
//! [`Decoders`] runs decodes off the async threads, a bounded number at
//! once; waiting for a turn holds no thread.

use std::io::{self, BufReader, Read};
use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::Semaphore;
use vantage_probe::wire::Batch;

/// The buffer between the gzip decoder and the JSON parser.
const BUFFER_BYTES: usize = 16 << 10;

/// A body's `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// No coding: the body is the JSON.
    Identity,
    /// One or more gzip members (RFC 1952).
    Gzip,
}

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
    /// Not gzip, not JSON, not a batch, or something after it.
    Malformed,
    /// It decompresses to more than its cap.
    TooLarge,
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

impl DecodeError {
    fn new(kind: DecodeErrorKind, message: String) -> DecodeError {
        DecodeError { kind, message }
    }
}

/// Decodes `body`, coded as `encoding`, into a batch, reading at most
/// `max_decompressed` bytes of JSON. Every gzip member is read; anything
/// after the batch but whitespace, or after the last member, is malformed.
pub(crate) fn batch(
    encoding: Encoding,
    body: &[u8],
    max_decompressed: usize,
) -> Result<Batch, DecodeError> {
    let decoded = match encoding {
        // The body is already held, and within `max_body_bytes`.
        Encoding::Identity => json(body, max_decompressed, ""),
        Encoding::Gzip => json(
            flate2::read::MultiGzDecoder::new(body),
            max_decompressed,
            "gzip body: ",
        ),
    };
    decoded.map_err(|failure| match failure {
        Failure::TooLarge => DecodeError::new(
            DecodeErrorKind::TooLarge,
            match encoding {
                Encoding::Identity => {
                    format!("the body is more than {max_decompressed} bytes of JSON")
                }
                Encoding::Gzip => {
                    format!("the body decompresses to more than {max_decompressed} bytes")
                }
            } + " (what limits.max_results_per_batch results take)",
        ),
        Failure::Malformed(m) => DecodeError::new(DecodeErrorKind::Malformed, m),
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
        encoding: Encoding,
        body: impl AsRef<[u8]> + Send + 'static,
        max_decompressed: usize,
    ) -> Result<Batch, DecodeError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the decoders' semaphore is never closed");
        let job = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            batch(encoding, body.as_ref(), max_decompressed)
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

    fn kind(r: Result<Batch, DecodeError>) -> DecodeErrorKind {
        r.expect_err("refused").kind
    }

    #[test]
    fn identity_and_gzip_decode_the_same_batch() {
        let plain = batch(Encoding::Identity, BATCH.as_bytes(), 1 << 20).unwrap();
        let zipped = batch(Encoding::Gzip, &gzip(&[BATCH.as_bytes()]), 1 << 20).unwrap();
        assert_eq!(plain, zipped);
        assert_eq!((plain.seq, plain.results.len()), (7, 1));
    }

    #[test]
    fn every_gzip_member_is_read() {
        let (a, b) = BATCH.as_bytes().split_at(100);
        let batch = batch(Encoding::Gzip, &gzip(&[a, b]), 1 << 20).unwrap();
        assert_eq!(batch.results.len(), 1);
    }

    #[test]
    fn anything_after_the_batch_is_malformed() {
        let mut zipped = gzip(&[BATCH.as_bytes()]);
        zipped.extend_from_slice(b"garbage");
        let e = batch(Encoding::Gzip, &zipped, 1 << 20).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::Malformed);
        assert!(e.message.starts_with("gzip body: "), "{e}");
        let after = format!("{BATCH} {{}}");
        let e = batch(Encoding::Identity, after.as_bytes(), 1 << 20).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::Malformed);
        assert!(e.message.contains("trailing characters"), "{e}");
        let two = gzip(&[BATCH.as_bytes(), BATCH.as_bytes()]);
        assert_eq!(
            kind(batch(Encoding::Gzip, &two, 1 << 20)),
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
                kind(batch(encoding, &body, 1 << 20)),
                DecodeErrorKind::Malformed
            );
        }
    }

    #[test]
    fn the_cap_counts_decompressed_bytes_padding_included() {
        let body = padded(1000);
        let max = body.len();
        assert!(batch(Encoding::Identity, &body, max).is_ok());
        assert!(batch(Encoding::Gzip, &gzip(&[&body]), max).is_ok());
        let e = batch(Encoding::Gzip, &gzip(&[&body]), max - 1).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::TooLarge);
        assert!(e.message.contains(&format!("more than {}", max - 1)), "{e}");
        assert_eq!(
            kind(batch(Encoding::Identity, &body, max - 1)),
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
        let e = batch(Encoding::Gzip, &bomb, 4 << 20).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::TooLarge, "{e}");
        // Within the cap, the padding is only skipped.
        assert_eq!(batch(Encoding::Gzip, &bomb, 65 << 20).unwrap().seq, 7);
    }

    #[test]
    fn only_gzip_and_identity_are_codings() {
        assert_eq!(Encoding::parse(None).unwrap(), Encoding::Identity);
        assert_eq!(Encoding::parse(Some(" GZIP ")).unwrap(), Encoding::Gzip);
        assert_eq!(Encoding::parse(Some("x-gzip")).unwrap(), Encoding::Gzip);
        let e = Encoding::parse(Some("br")).unwrap_err();
        assert_eq!(e.kind, DecodeErrorKind::UnsupportedEncoding);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn decoders_decode_off_the_async_threads() {
        let decoders = Decoders::new(1);
        let runs =
            (0..4).map(|_| decoders.decode(Encoding::Gzip, gzip(&[BATCH.as_bytes()]), 1 << 20));
        for decoded in futures_util::future::join_all(runs).await {
            assert_eq!(decoded.unwrap().seq, 7);
        }
    }
}
