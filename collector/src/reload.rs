//! What changes under a running collector: its tokens (rotation) and its
//! TLS certificate (renewal). Both are read again on SIGHUP, and when any
//! file they come from changes: Kubernetes updates mounted Secrets and
//! ConfigMaps in place, and nothing there sends a signal.
//!
//! A config or key pair that does not load changes nothing: the error is
//! logged and `vantage_collector_config_last_reload_successful` drops to 0.
//! Other settings take effect at the next start.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use tokio::signal::unix::Signal;

use crate::app::App;
use crate::config::Config;

/// What a file looked like. A rewrite changes the time or the size; a
/// replacement (rename over it, a symlink swapped the way Kubernetes
/// swaps a volume's `..data`) changes the inode.
type Stamp = Option<(SystemTime, u64, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.dev(), m.ino()))
}

/// The files one look covers, and what they looked like.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    files: Vec<PathBuf>,
    stamps: Vec<Stamp>,
}

impl Seen {
    fn look(files: Vec<PathBuf>) -> Seen {
        let stamps = files.iter().map(|f| stamp(f)).collect();
        Seen { files, stamps }
    }
}

/// The files a reload reads: the config, its token files, the certificate
/// and key.
fn watched(path: &Path, config: &Config) -> Vec<PathBuf> {
    let mut files = vec![path.to_path_buf()];
    files.extend(config.token_files.iter().cloned());
    if let Some((cert, key)) = &config.tls {
        files.extend([cert.clone(), key.clone()]);
    }
    files
}

/// Reads the config and the certificate again and swaps in the new tokens.
/// Blocking. Returns what the files looked like when they were read, and
/// how the reload went.
fn reload(path: &Path, state: &App, before: Seen) -> (Seen, anyhow::Result<usize>) {
    // Looked at before reading: a write during the reload is a change
    // the next look sees.
    let before = Seen::look(before.files);
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return (before, Err(e.into())),
    };
    let files = watched(path, &config);
    let seen = if files == before.files {
        before
    } else {
        Seen::look(files)
    };
    // The certificate comes before the tokens: a pair that does not load
    // refuses the whole reload.
    if let Some(certs) = &state.certs
        && let Err(e) = certs.reload().context("TLS certificate")
    {
        return (seen, Err(e));
    }
    let tokens = config.tokens.len();
    state.tokens.replace(config.tokens);
    (seen, Ok(tokens))
}

/// Runs until the signal stream ends: reloads on SIGHUP, and when a file
/// it reads has changed since it last read them.
pub(crate) async fn run(mut hangup: Signal, path: PathBuf, state: Arc<App>) {
    let mut seen = Seen::look(watched(&path, &state.config));
    let mut tick = tokio::time::interval(state.config.watch_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let trigger = tokio::select! {
            s = hangup.recv() => match s {
                Some(()) => "SIGHUP",
                None => return,
            },
            _ = tick.tick() => {
                let files = seen.files.clone();
                let Ok(now) = tokio::task::spawn_blocking(move || Seen::look(files)).await else {
                    continue;
                };
                if now == seen {
                    continue;
                }
                "a changed file"
            }
        };
        let job = {
            let (path, state, before) = (path.clone(), state.clone(), seen.clone());
            move || reload(&path, &state, before)
        };
        let outcome = match tokio::task::spawn_blocking(job).await {
            Ok((now, outcome)) => {
                // A refused change is not retried until the files change
                // again: the log and the gauge already say it.
                seen = now;
                outcome
            }
            Err(e) => Err(e.into()),
        };
        let metrics = &state.metrics;
        match outcome {
            Ok(tokens) => {
                metrics.config_reloads.with_label_values(&["success"]).inc();
                metrics.config_last_reload_successful.set(1);
                tracing::info!(
                    config = %path.display(),
                    tokens,
                    tls = state.certs.is_some(),
                    "{trigger}: tokens and TLS certificate reloaded; other settings take effect at the next start"
                );
            }
            Err(e) => {
                metrics.config_reloads.with_label_values(&["failure"]).inc();
                metrics.config_last_reload_successful.set(0);
                tracing::error!(
                    error = format!("{e:#}"),
                    "{trigger}: reload refused; nothing changed"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_a_replacement_and_a_removal_are_changes() {
        let dir = std::env::temp_dir().join(format!("vantage-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("token");
        std::fs::write(&f, "aaaaaaaaaaaaaaaa").unwrap();
        let first = Seen::look(vec![f.clone()]);
        assert_eq!(Seen::look(vec![f.clone()]), first);

        // Same size, same second: the rename still shows as a new inode.
        let tmp = dir.join("token.new");
        std::fs::write(&tmp, "bbbbbbbbbbbbbbbb").unwrap();
        std::fs::rename(&tmp, &f).unwrap();
        let second = Seen::look(vec![f.clone()]);
        assert_ne!(second, first);

        std::fs::write(&f, "cccccccccccccccccccc").unwrap();
        let third = Seen::look(vec![f.clone()]);
        assert_ne!(third, second);

        std::fs::remove_file(&f).unwrap();
        assert_eq!(Seen::look(vec![f.clone()]).stamps, vec![None]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
