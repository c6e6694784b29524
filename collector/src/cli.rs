//! Command line of `vantage-collector`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::service::Collector;

/// vantage-collector: keeps every region's probe results, tells who is
/// alive, and is the fleet's one Prometheus scrape target.
#[derive(Debug, Parser)]
#[command(name = "vantage-collector", version, about, max_term_width = 100)]
pub struct Cli {
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, env = "VANTAGE_LOG", default_value = "info", global = true)]
    pub log_level: tracing::Level,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the collector (SIGTERM or SIGINT stops it after requests in flight).
    Serve {
        /// The config file (TOML).
        #[arg(short, long, env = "VANTAGE_COLLECTOR_CONFIG")]
        config: PathBuf,
    },
    /// The whole fleet on this machine: a collector and probes for three
    /// regions (each from its own loopback address) against local backends.
    Demo {
        /// Where the collector listens.
        #[arg(long, default_value = "127.0.0.1:9640")]
        listen: std::net::SocketAddr,
        /// Stop after this long (default: run until Ctrl-C).
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
    },
    /// Check a config without running it; exit 64 if it is invalid.
    Validate {
        /// The config file (TOML).
        config: PathBuf,
    },
}

/// Runs a parsed command line.
pub fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { config } => {
            let c = Config::load(&config)?;
            println!(
                "{}: ok: listen {}, data in {}, {} token{}",
                config.display(),
                c.listen,
                c.data_dir.display(),
                c.tokens.len(),
                if c.tokens.len() == 1 { "" } else { "s" }
            );
        }
        Command::Demo { listen, duration } => {
            runtime()?.block_on(async {
                let stop = CancellationToken::new();
                tokio::spawn(stop_on_signal(stop.clone()));
                if let Some(d) = duration {
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(d).await;
                        stop.cancel();
                    });
                }
                crate::demo::run(listen, stop).await
            })?;
        }
        Command::Serve { config } => {
            let config = Config::load(&config)?;
            runtime()?.block_on(async {
                let collector = Collector::bind(config).await?;
                let stop = CancellationToken::new();
                tokio::spawn(stop_on_signal(stop.clone()));
                collector.run(stop).await
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")
}

async fn stop_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping");
    stop.cancel();
}

/// 64 for a config error, else 1.
pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    let usage = err
        .chain()
        .any(|e| e.downcast_ref::<ConfigError>().is_some());
    ExitCode::from(if usage { 64 } else { 1 })
}
