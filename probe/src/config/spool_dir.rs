//! `collector.spool_dir`, checked as `run` will use it: a directory the
//! probe can write, or one it can create (with its parents, like
//! `create_dir_all`) in a directory it can write, and not in a kernel
//! filesystem, where nothing written stays a file.
//!
//! Writing is tried, not inferred from mode bits: a read-only mount, an
//! ACL or a root probe's capabilities all decide it the way they will at
//! start. The try leaves nothing behind: a file the spool's own start
//! removes (`.tmp`), or an empty directory removed at once.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Kernel filesystems, where a directory can exist but a spool cannot.
const KERNEL_FILESYSTEMS: [&str; 2] = ["/proc", "/sys"];

/// Why `dir` cannot be the spool, if it cannot.
pub(super) fn check(dir: &Path) -> Result<(), String> {
    let (existing, meta) = nearest_existing(dir)?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", existing.display()));
    }
    let real = fs::canonicalize(&existing)
        .map_err(|e| format!("cannot resolve {}: {e}", existing.display()))?;
    if let Some(fs) = KERNEL_FILESYSTEMS.iter().find(|fs| real.starts_with(fs)) {
        return Err(format!(
            "{fs} is a kernel filesystem, not a place for the spool"
        ));
    }
    let trial = existing.join(format!(
        ".vantage-check-{}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    if existing == dir {
        let trial = trial.with_extension("tmp");
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&trial)
            .map_err(|e| format!("cannot write in {}: {e}", existing.display()))?;
        let _ = fs::remove_file(&trial);
    } else {
        fs::create_dir(&trial).map_err(|e| {
            format!(
                "cannot create {} in {}: {e}",
                dir.display(),
                existing.display()
            )
        })?;
        let _ = fs::remove_dir(&trial);
    }
    Ok(())
}

/// `dir` or its nearest ancestor that exists, with its metadata.
fn nearest_existing(dir: &Path) -> Result<(PathBuf, fs::Metadata), String> {
    for a in dir.ancestors() {
        // A relative path's last ancestor is "": the current directory.
        let a = if a.as_os_str().is_empty() {
            Path::new(".")
        } else {
            a
        };
        match fs::metadata(a) {
            Ok(m) => return Ok((a.to_path_buf(), m)),
            // Missing, or under a file: the nearer ancestor says which.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                continue;
            }
            Err(e) => return Err(format!("cannot look at {}: {e}", a.display())),
        }
    }
    Err(format!("no part of {} exists", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_place_passes_and_is_left_as_it_was() {
        let base = std::env::temp_dir().join(format!("vantage-spool-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base).unwrap();
        // Created later, with its parents.
        assert_eq!(check(&base.join("a/b/spool")), Ok(()));
        // Already there.
        fs::create_dir(base.join("spool")).unwrap();
        assert_eq!(check(&base.join("spool")), Ok(()));
        let left: Vec<_> = fs::read_dir(&base)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["spool"], "the tries leave nothing behind");
        assert_eq!(fs::read_dir(base.join("spool")).unwrap().count(), 0);

        // A file where the spool or a parent would be.
        fs::write(base.join("file"), "").unwrap();
        assert_eq!(
            check(&base.join("file/spool")),
            Err(format!(
                "{} is not a directory",
                base.join("file").display()
            ))
        );
        assert_eq!(
            check(Path::new("/dev/null/spool")),
            Err("/dev/null is not a directory".to_string())
        );
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_kernel_filesystem_is_refused() {
        for (dir, fs) in [
            ("/proc/spool", "/proc"),
            ("/proc/self/spool", "/proc"),
            ("/sys/spool", "/sys"),
            ("/sys/fs/cgroup/spool", "/sys"),
        ] {
            assert_eq!(
                check(Path::new(dir)),
                Err(format!(
                    "{fs} is a kernel filesystem, not a place for the spool"
                )),
                "{dir}"
            );
        }
    }
}
