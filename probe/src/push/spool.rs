//! The on-disk spool: sealed batches waiting for the collector's
//! acknowledgement, oldest first, bounded in bytes.
//!
//! Each batch is one file, `<seq>-<results>.batch`: gzipped, in the binary
//! encoding (the request body to a collector that reads it; JSON files
//! spooled by an older probe are sent as they are). It is written to a
//! temporary name, fsynced and renamed, so a crash leaves either the whole
//! batch or none of it. The stream id and
//! the last sequence number live beside them, so a restarted probe neither
//! reuses a sequence number nor loses its place. When the spool is over its
//! size, the oldest batches are dropped and counted, never silently.
//!
//! A `seq` file restored from an older copy makes the probe reuse sequence
//! numbers the collector has stored; it answers such a batch 409
//! `seq_reused`. The spool then starts a new stream ([`Spool::restream`]):
//! a new random id, and every waiting batch rewritten under it (each file
//! atomically), so that all of them are sent again and stored.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::result::{Identity, RoundResult, Timestamp};
use crate::wire::{Batch, SCHEMA_VERSION, binary};

/// A sealed batch in the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Position in the spool's stream; the collector's receipt for a batch
    /// is (probe, stream, seq), so a batch sent again stays one batch.
    pub seq: u64,
    /// Results in it.
    pub results: u64,
    /// Its size on disk.
    pub bytes: u64,
}

/// Sealed batches waiting on disk for the collector, oldest first, within
/// `max_bytes` (the oldest are dropped to make room).
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    stream: String,
    last_seq: u64,
    entries: VecDeque<Entry>,
    bytes: u64,
}

/// What sealing a batch cost: batches and results dropped to stay in bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Dropped {
    /// Batches removed unsent.
    pub batches: u64,
    /// Results in them.
    pub results: u64,
}

/// What [`Spool::restream`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Restreamed {
    /// The stream given up.
    pub old: String,
    /// The stream the waiting batches are under now.
    pub new: String,
    /// Batches rewritten under it.
    pub batches: usize,
    /// Batches whose file did not read back as a batch: set aside in
    /// `rejected/`, as the sender does with one it cannot read.
    pub unreadable: usize,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, holding at most `max_bytes`.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> io::Result<Spool> {
        fs::create_dir_all(dir.join("rejected"))?;
        let stream_file = dir.join("stream");
        let stream = match fs::read_to_string(&stream_file) {
            Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
            _ => new_stream(&stream_file, "")?,
        };
        let mut entries = Vec::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                // An interrupted write: the batch was never sealed.
                let _ = fs::remove_file(e.path());
                continue;
            }
            if let Some(entry) = parse_name(&name) {
                entries.push(Entry {
                    bytes: e.metadata()?.len(),
                    ..entry
                });
            }
        }
        entries.sort_by_key(|e| e.seq);
        let recorded: u64 = fs::read_to_string(dir.join("seq"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let last_seq = recorded.max(entries.last().map_or(0, |e| e.seq));
        let bytes = entries.iter().map(|e| e.bytes).sum();
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            stream,
            last_seq,
            entries: entries.into(),
            bytes,
        })
    }

    /// Seals `results` into a new batch on disk; drops the oldest batches
    /// if the spool is then over its size.
    pub(crate) fn seal(
        &mut self,
        probe: &Identity,
        results: Vec<RoundResult>,
        last: bool,
    ) -> io::Result<Dropped> {
        let seq = self.last_seq + 1;
        let count = results.len() as u64;
        let batch = Batch {
            schema: SCHEMA_VERSION,
            probe: probe.clone(),
            stream: self.stream.clone(),
            seq,
            sent_at: Timestamp::now(),
            results,
            last,
        };
        let body = encode(&batch)?;
        let path = self.dir.join(file_name(seq, count));
        write_atomically(&path, &body)?;
        write_atomically(&self.dir.join("seq"), seq.to_string().as_bytes())?;
        self.last_seq = seq;
        self.entries.push_back(Entry {
            seq,
            results: count,
            bytes: body.len() as u64,
        });
        self.bytes += body.len() as u64;
        let mut dropped = Dropped::default();
        while self.bytes > self.max_bytes && self.entries.len() > 1 {
            let oldest = self.entries.front().cloned().expect("not empty");
            self.remove(oldest.seq)?;
            dropped.batches += 1;
            dropped.results += oldest.results;
        }
        Ok(dropped)
    }

    /// The oldest unacknowledged batch.
    pub(crate) fn oldest(&self) -> Option<Entry> {
        self.entries.front().cloned()
    }

    /// The request body of `entry`.
    pub(crate) fn body(&self, entry: &Entry) -> io::Result<Vec<u8>> {
        fs::read(self.dir.join(file_name(entry.seq, entry.results)))
    }

    /// Removes an acknowledged (or dropped) batch.
    pub(crate) fn remove(&mut self, seq: u64) -> io::Result<()> {
        if let Some(i) = self.entries.iter().position(|e| e.seq == seq) {
            let e = self.entries.remove(i).expect("index is valid");
            self.bytes -= e.bytes;
            match fs::remove_file(self.dir.join(file_name(e.seq, e.results))) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
                _ => {}
            }
        }
        Ok(())
    }

    /// Moves a batch the collector refused for good into `rejected/`,
    /// where an operator can inspect it; it is not sent again.
    pub(crate) fn reject(&mut self, seq: u64) -> io::Result<()> {
        if let Some(i) = self.entries.iter().position(|e| e.seq == seq) {
            let e = self.entries.remove(i).expect("index is valid");
            self.bytes -= e.bytes;
            let name = file_name(e.seq, e.results);
            fs::rename(self.dir.join(&name), self.dir.join("rejected").join(name))?;
        }
        Ok(())
    }

    /// Starts a new stream: the collector has this stream's seq stored
    /// with other content (the `seq` file went back). The new id is
    /// recorded first, as at the first open, so that batches sealed from
    /// now on are under it; then every waiting batch is rewritten under it
    /// with its seq (each file replaced atomically). A crash half-way
    /// leaves batches of either stream, each whole: one the collector
    /// refuses again makes the spool restream again, and none is lost.
    pub(crate) fn restream(&mut self) -> io::Result<Restreamed> {
        let new = new_stream(&self.dir.join("stream"), &self.stream)?;
        let old = std::mem::replace(&mut self.stream, new.clone());
        let mut batches = 0;
        let mut unreadable = Vec::new();
        for i in 0..self.entries.len() {
            let e = self.entries[i].clone();
            let path = self.dir.join(file_name(e.seq, e.results));
            let mut batch = match fs::read(&path).and_then(|body| decode(&body)) {
                Ok(b) => b,
                Err(err) => {
                    tracing::error!(error = %err, seq = e.seq, "a spooled batch does not read back; setting it aside");
                    unreadable.push(e.seq);
                    continue;
                }
            };
            batch.stream.clone_from(&new);
            let body = encode(&batch)?;
            write_atomically(&path, &body)?;
            self.bytes = self.bytes - e.bytes + body.len() as u64;
            self.entries[i].bytes = body.len() as u64;
            batches += 1;
        }
        for seq in &unreadable {
            self.reject(*seq)?;
        }
        Ok(Restreamed {
            old,
            new,
            batches,
            unreadable: unreadable.len(),
        })
    }

    /// Batches waiting.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing waits.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes waiting.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Results waiting.
    pub(crate) fn results(&self) -> u64 {
        self.entries.iter().map(|e| e.results).sum()
    }

    /// This spool's stream id.
    pub(crate) fn stream(&self) -> &str {
        &self.stream
    }
}

/// A new random stream id, different from `old`, recorded in `file`.
fn new_stream(file: &Path, old: &str) -> io::Result<String> {
    let s = loop {
        let s = format!("{:016x}", fastrand::u64(..));
        if s != old {
            break s;
        }
    };
    write_atomically(file, s.as_bytes())?;
    Ok(s)
}

/// A batch as the spool keeps it: gzipped, in the binary encoding (about
/// a third of gzipped JSON's bytes on the ingest bench's fleet, so about
/// three times as many rounds fit in the spool's bound).
fn encode(batch: &Batch) -> io::Result<Vec<u8>> {
    gzip(&binary::encode(batch))
}

/// At gzip's default level: a batch is compressed once, on the probe, and
/// 6% smaller than at the fastest level (15.7 against 16.7 bytes per
/// result on the ingest bench's fleet).
fn gzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::default(),
    );
    gz.write_all(bytes)?;
    gz.finish()
}

/// A spooled body back to its batch: binary, or the gzipped JSON that
/// probes spooled before the binary encoding.
fn decode(body: &[u8]) -> io::Result<Batch> {
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut bytes)?;
    if binary::is_binary(&bytes) {
        // The probe's own file: bounded by its size, as any reader is.
        let bounds = binary::Bounds {
            max_rounds: usize::MAX,
            max_attempts_per_round: usize::MAX,
            max_attempts: usize::MAX,
        };
        return binary::decode(&bytes, bounds)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
    }
    serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Whether a spooled body is in the binary encoding (else JSON): its
/// first bytes, decompressed.
pub(crate) fn is_binary(body: &[u8]) -> bool {
    let mut head = [0u8; binary::MAGIC.len()];
    io::Read::read_exact(&mut flate2::read::GzDecoder::new(body), &mut head).is_ok()
        && binary::is_binary(&head)
}

/// A spooled body as gzipped JSON, for a collector that does not read
/// the binary encoding.
pub(crate) fn as_json(body: &[u8]) -> io::Result<Vec<u8>> {
    let batch = decode(body)?;
    gzip(&serde_json::to_vec(&batch).map_err(io::Error::other)?)
}

fn file_name(seq: u64, results: u64) -> String {
    format!("{seq:020}-{results}.batch")
}

fn parse_name(name: &str) -> Option<Entry> {
    let (seq, rest) = name.strip_suffix(".batch")?.split_once('-')?;
    Some(Entry {
        seq: seq.parse().ok()?,
        results: rest.parse().ok()?,
        bytes: 0,
    })
}

/// Writes `data` to `path` so that a crash leaves the old file or the new
/// one, never a torn one: temporary file, fsync, rename, fsync the directory.
pub(crate) fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn identity() -> Identity {
        Identity {
            src_region: "r".into(),
            zone: None,
            probe_id: "p".into(),
        }
    }

    fn rounds(n: usize) -> Vec<RoundResult> {
        (0..n)
            .map(|i| RoundResult {
                target: format!("t{i}").into(),
                host: "127.0.0.1".into(),
                port: 80,
                labels: Arc::default(),
                started_at: Timestamp::now(),
                dns: None,
                attempts: Vec::new(),
            })
            .collect()
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vantage-spool-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn batches_survive_a_reopen_in_order_with_the_same_stream() {
        let dir = scratch("reopen");
        let mut s = Spool::open(&dir, 1 << 20).unwrap();
        let stream = s.stream().to_string();
        for n in [3, 5, 7] {
            s.seal(&identity(), rounds(n), false).unwrap();
        }
        s.remove(1).unwrap();
        drop(s);
        // A write cut short by a crash leaves only a temporary file.
        fs::write(dir.join("00000000000000000009-1.tmp"), b"torn").unwrap();
        let mut s = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!(s.stream(), stream);
        assert_eq!(s.oldest().unwrap().seq, 2);
        assert_eq!(s.results(), 12);
        s.seal(&identity(), rounds(1), false).unwrap();
        assert_eq!(
            s.entries.back().unwrap().seq,
            4,
            "sequence numbers are never reused"
        );
        let body = s.body(&s.oldest().unwrap()).unwrap();
        assert!(is_binary(&body));
        let mut json = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&as_json(&body).unwrap()[..]),
            &mut json,
        )
        .unwrap();
        let b: Batch = serde_json::from_slice(&json).unwrap();
        assert_eq!(b, decode(&body).unwrap());
        assert_eq!(
            (b.seq, b.results.len(), b.stream.as_str()),
            (2, 5, stream.as_str())
        );
        s.remove(2).unwrap();
        s.remove(3).unwrap();
        s.remove(4).unwrap();
        drop(s);
        let s = Spool::open(&dir, 1 << 20).unwrap();
        assert!(s.is_empty());
        assert_eq!(s.last_seq, 4, "an empty spool still remembers where it was");
        fs::remove_dir_all(dir).unwrap();
    }

    fn read_back(s: &Spool, e: &Entry) -> Batch {
        decode(&s.body(e).unwrap()).unwrap()
    }

    #[test]
    fn a_restream_keeps_every_waiting_batch_under_a_new_stream_for_good() {
        let dir = scratch("restream");
        let mut s = Spool::open(&dir, 1 << 20).unwrap();
        let old = s.stream().to_string();
        for n in [3, 5, 7] {
            s.seal(&identity(), rounds(n), false).unwrap();
        }
        s.remove(1).unwrap();
        let before: Vec<Batch> = s.entries.iter().map(|e| read_back(&s, e)).collect();
        // A file that no longer reads as a batch is set aside, not sent.
        s.seal(&identity(), rounds(1), true).unwrap();
        fs::write(dir.join(file_name(4, 1)), b"torn").unwrap();

        let r = s.restream().unwrap();
        assert_eq!(
            (r.old.as_str(), r.batches, r.unreadable),
            (old.as_str(), 2, 1)
        );
        assert_ne!(r.new, old);
        assert_eq!(s.stream(), r.new);
        assert!(dir.join("rejected").join(file_name(4, 1)).exists());
        let after: Vec<Batch> = s.entries.iter().map(|e| read_back(&s, e)).collect();
        assert_eq!(after.len(), 2, "every readable waiting batch is kept");
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(a.stream, r.new);
            assert_eq!(
                Batch {
                    stream: old.clone(),
                    ..a.clone()
                },
                *b,
                "only the stream changed"
            );
        }
        let bytes: u64 = s
            .entries
            .iter()
            .map(|e| {
                fs::metadata(dir.join(file_name(e.seq, e.results)))
                    .unwrap()
                    .len()
            })
            .sum();
        assert_eq!(s.bytes(), bytes, "the size on disk is kept up to date");
        s.seal(&identity(), rounds(2), false).unwrap();
        drop(s);

        // A reopen keeps the new stream, its batches and its place.
        let s = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!(s.stream(), r.new);
        let seqs: Vec<u64> = s.entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [2, 3, 5], "sequence numbers are never reused");
        for e in &s.entries {
            assert_eq!(read_back(&s, e).stream, r.new);
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_json_batch_spooled_by_an_older_probe_is_read_and_sent_as_it_is() {
        let dir = scratch("older");
        let mut s = Spool::open(&dir, 1 << 20).unwrap();
        s.seal(&identity(), rounds(3), false).unwrap();
        let batch = decode(&s.body(&s.oldest().unwrap()).unwrap()).unwrap();
        drop(s);
        // What an older probe left: the same batch, as gzipped JSON.
        let json = gzip(&serde_json::to_vec(&batch).unwrap()).unwrap();
        fs::write(dir.join(file_name(1, 3)), &json).unwrap();
        let mut s = Spool::open(&dir, 1 << 20).unwrap();
        let body = s.body(&s.oldest().unwrap()).unwrap();
        assert!(!is_binary(&body));
        assert_eq!(decode(&body).unwrap(), batch);
        assert_eq!(as_json(&body).unwrap(), json, "sent as it was spooled");
        // Rewritten by a restream, it is kept in the binary encoding.
        s.restream().unwrap();
        let body = s.body(&s.oldest().unwrap()).unwrap();
        assert!(is_binary(&body));
        assert_eq!(decode(&body).unwrap().results, batch.results);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn overflow_drops_the_oldest_and_says_so() {
        let dir = scratch("overflow");
        let mut s = Spool::open(&dir, 3_000).unwrap();
        let mut dropped = Dropped::default();
        for _ in 0..20 {
            let d = s.seal(&identity(), rounds(20), false).unwrap();
            dropped.batches += d.batches;
            dropped.results += d.results;
        }
        assert!(s.bytes() <= 3_000 || s.len() == 1);
        assert!(dropped.batches > 0);
        assert_eq!(dropped.results, dropped.batches * 20);
        assert_eq!(
            s.len() as u64 + dropped.batches,
            20,
            "every batch is kept or counted"
        );
        assert_eq!(
            s.oldest().unwrap().seq,
            dropped.batches + 1,
            "the oldest went first"
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
