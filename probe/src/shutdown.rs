//! Process signals as control events: SIGTERM and SIGINT drain and stop,
//! SIGHUP reloads the config.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// What the running probe is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Re-read the config; keep the old one if the new one is bad.
    Reload,
    /// Drain (finish rounds in flight within the grace period) and exit.
    Shutdown,
}

/// Forwards SIGHUP as [`Control::Reload`] and the first SIGTERM or SIGINT as
/// [`Control::Shutdown`]. A second SIGTERM/SIGINT exits at once, for the
/// operator who does not want to wait for the drain.
pub(crate) fn forward_signals(tx: mpsc::Sender<Control>) -> std::io::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let mut stopping = false;
        loop {
            let event = tokio::select! {
                Some(()) = hup.recv() => Control::Reload,
                Some(()) = term.recv() => Control::Shutdown,
                Some(()) = int.recv() => Control::Shutdown,
                else => return,
            };
            if event == Control::Shutdown {
                if stopping {
                    tracing::warn!("second stop signal: exiting without draining");
                    std::process::exit(130);
                }
                stopping = true;
            }
            if tx.send(event).await.is_err() {
                return;
            }
        }
    });
    Ok(())
}
