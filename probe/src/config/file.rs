//! Reading a file a config names (or the config itself): only a regular
//! file, only up to a size that fits what it holds, only UTF-8.
//!
//! Everything the probe and the collector read as configuration goes
//! through [`read_text`], at start, in `validate` and on every reload, so a
//! token file that is `/dev/zero` cannot fill memory, a FIFO cannot block
//! a load forever, and a stray byte is named by its line.
//!
//! A FIFO, a device, a directory or a socket is refused by its metadata
//! before it is opened; the file is then opened without blocking and looked
//! at again, so one swapped in between is refused too.

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read as _};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// What a file holds, which sets how large it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A probe or collector config. 32 MiB: a probe's 100,000 targets
    /// (its ceiling), each with a few labels, take about 15 MiB of TOML.
    Config,
    /// A Prometheus file_sd target list (a probe's `[[file_sd]]`, the
    /// collector's fleet inventory, the probe's cached copy of it). 32 MiB,
    /// like a config: it can hold the same targets.
    FileSd,
    /// A bearer token. 64 KiB: a token is tens of bytes; this leaves room
    /// for comments and a generous secret, and nothing more.
    Token,
    /// A PEM file: a CA bundle, or a certificate chain or its key. 4 MiB:
    /// the system's whole CA bundle is about 200 KiB.
    Pem,
}

impl Kind {
    /// The most bytes a file of this kind may hold.
    pub const fn max_bytes(self) -> u64 {
        match self {
            Kind::Config | Kind::FileSd => 32 << 20,
            Kind::Token => 64 << 10,
            Kind::Pem => 4 << 20,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Config => "config file",
            Kind::FileSd => "file_sd list",
            Kind::Token => "token file",
            Kind::Pem => "PEM file",
        }
    }
}

/// Why a file could not be read; each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// It could not be opened or read.
    #[error("cannot read {path}: {err}")]
    Io {
        /// The file, as named.
        path: String,
        /// Why (not a `source`: the message already says it, once).
        err: io::Error,
    },
    /// It is not a regular file.
    #[error("{path} is a {what}, not a regular file")]
    NotRegular {
        /// The file, as named.
        path: String,
        /// What it is instead: `FIFO`, `directory`, `character device`, ...
        what: &'static str,
    },
    /// It is larger than its kind may be.
    #[error("{path} is larger than {}, the most a {} may hold", Size(kind.max_bytes()), kind.what())]
    TooLarge {
        /// The file, as named.
        path: String,
        /// What it holds.
        kind: Kind,
    },
    /// It is not UTF-8.
    #[error("{path}:{line}: not UTF-8 (an invalid byte at byte offset {offset})")]
    NotUtf8 {
        /// The file, as named.
        path: String,
        /// 1-based line of the first invalid byte.
        line: usize,
        /// 0-based offset of that byte in the file.
        offset: usize,
    },
}

/// Reads `path`, a file of `kind`, as text: a regular file of at most
/// `kind.max_bytes()`, in UTF-8.
pub fn read_text(path: &Path, kind: Kind) -> Result<String, ReadError> {
    read_capped(path, kind, kind.max_bytes())
}

fn read_capped(path: &Path, kind: Kind, max: u64) -> Result<String, ReadError> {
    let shown = || path.display().to_string();
    let io = |err| ReadError::Io { path: shown(), err };
    // Followed through symlinks: Kubernetes mounts Secrets as links.
    regular(&std::fs::metadata(path).map_err(io)?, path)?;
    // Not blocking on open: a FIFO swapped in since the look above opens
    // at once (and is then refused) instead of waiting for a writer.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    regular(&meta, path)?;
    let too_large = || ReadError::TooLarge {
        path: shown(),
        kind,
    };
    if meta.len() > max {
        return Err(too_large());
    }
    let bytes = read_at_most(file, max, meta.len()).map_err(io)?;
    if bytes.len() as u64 > max {
        // It grew since the look, or says it is smaller than it is.
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        ReadError::NotUtf8 {
            path: shown(),
            line: 1 + bytes[..offset].iter().filter(|&&b| b == b'\n').count(),
            offset,
        }
    })
}

/// Up to `max + 1` bytes of `file`, so that one too many is seen.
fn read_at_most(file: File, max: u64, expected: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(expected.min(max) as usize + 1);
    file.take(max + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn regular(meta: &Metadata, path: &Path) -> Result<(), ReadError> {
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    };
    Err(ReadError::NotRegular {
        path: path.display().to_string(),
        what,
    })
}

/// A size in the largest binary unit it is a whole number of.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            n if n >= 1 << 20 && n % (1 << 20) == 0 => write!(f, "{} MiB", n >> 20),
            n if n >= 1 << 10 && n % (1 << 10) == 0 => write!(f, "{} KiB", n >> 10),
            n => write!(f, "{n} bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory for one test.
    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vantage-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_regular_file_is_read_whole() {
        let dir = scratch("ok");
        let p = dir.join("t");
        std::fs::write(&p, "secret\n").unwrap();
        assert_eq!(read_text(&p, Kind::Token).unwrap(), "secret\n");
        // Exactly at the limit is fine; one byte over is not.
        std::fs::write(&p, "a".repeat(64 << 10)).unwrap();
        assert_eq!(read_text(&p, Kind::Token).unwrap().len(), 64 << 10);
        std::fs::write(&p, "a".repeat((64 << 10) + 1)).unwrap();
        assert_eq!(
            read_text(&p, Kind::Token).unwrap_err().to_string(),
            format!(
                "{} is larger than 64 KiB, the most a token file may hold",
                p.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_device_a_directory_and_a_fifo_are_refused_unopened() {
        let err = read_text(Path::new("/dev/zero"), Kind::Token).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/dev/zero is a character device, not a regular file"
        );
        let dir = scratch("special");
        let err = read_text(&dir, Kind::Config).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{} is a directory, not a regular file", dir.display())
        );
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Without a writer, opening this for reading would block forever.
        let err = read_text(&fifo, Kind::FileSd).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{} is a FIFO, not a regular file", fifo.display())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_that_says_it_is_empty_is_still_bounded() {
        // procfs files report a size of 0 and hold more: the read itself
        // stops one byte past the limit.
        let maps = Path::new("/proc/self/maps");
        assert_eq!(std::fs::metadata(maps).unwrap().len(), 0);
        assert!(read_text(maps, Kind::Config).unwrap().len() > 16);
        let err = read_capped(maps, Kind::Token, 16);
        assert!(matches!(err, Err(ReadError::TooLarge { .. })), "{err:?}");
    }

    #[test]
    fn invalid_utf8_is_named_by_line_and_offset() {
        let dir = scratch("utf8");
        let p = dir.join("c.toml");
        std::fs::write(&p, b"a = 1\nb = \"\xc3\x28\"\n").unwrap();
        assert_eq!(
            read_text(&p, Kind::Config).unwrap_err().to_string(),
            format!(
                "{}:2: not UTF-8 (an invalid byte at byte offset 11)",
                p.display()
            )
        );
        let missing = dir.join("missing");
        assert_eq!(
            read_text(&missing, Kind::Config).unwrap_err().to_string(),
            format!(
                "cannot read {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sizes_read_in_their_unit() {
        assert_eq!(Size(32 << 20).to_string(), "32 MiB");
        assert_eq!(Size(64 << 10).to_string(), "64 KiB");
        assert_eq!(Size(1000).to_string(), "1000 bytes");
    }
}
