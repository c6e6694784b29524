//! A consistent read of the store: what was committed when it began, for
//! as many queries as the reader runs (the typed queries are `impl
//! Snapshot` blocks, one file per concern).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::StoreError;

/// A read transaction on the store.
pub struct Snapshot<'a> {
    pub(super) conn: &'a Connection,
    path: &'a Path,
}

impl<'a> Snapshot<'a> {
    /// Runs `f` in a read transaction on `conn`.
    pub(super) fn run<T, E: From<StoreError>>(
        conn: &'a Connection,
        path: &'a Path,
        f: impl FnOnce(&Snapshot<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = conn
            .unchecked_transaction()
            .map_err(|e| E::from(err(path, e)))?;
        let out = f(&Snapshot { conn: &tx, path })?;
        drop(tx);
        Ok(out)
    }

    /// A SQLite error, naming the database.
    pub(super) fn err(&self, source: rusqlite::Error) -> StoreError {
        err(self.path, source)
    }
}

impl std::fmt::Debug for Snapshot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn err(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

/// A data directory opened read-only: what `vantage-collector report
/// --data-dir` reads, while the collector that owns it may be running.
#[derive(Debug)]
pub(crate) struct ReadOnly {
    conn: Connection,
    path: PathBuf,
}

impl ReadOnly {
    /// Opens the store in `dir` for reading; it must exist.
    pub(crate) fn open(dir: &Path) -> Result<ReadOnly, StoreError> {
        let path = dir.join("vantage.db");
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| err(&path, e))?;
        Ok(ReadOnly { conn, path })
    }

    /// Runs `f` on a consistent snapshot; its error may be any that a
    /// store error converts into.
    pub(crate) fn read<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Snapshot<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        Snapshot::run(&self.conn, &self.path, f)
    }
}
