//! Command line of `vantage-collector`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use vantage_probe::config::file::{Kind, read_text};

use crate::config::{Config, ConfigError};
use crate::report::Request;
use crate::report::fetch::Source;
use crate::report::run::{Format, Options};
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
    /// Run the collector (SIGTERM or SIGINT stops it after requests in
    /// flight; SIGHUP, or a change to the config, token or TLS files, reloads
    /// the tokens and the certificate).
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
    /// Write the evidence of an incident (or a window of time) as Markdown
    /// for a postmortem, text for a status update, or JSON; optionally an
    /// SVG chart. The same stored data always gives the same output.
    Report(Box<ReportArgs>),
}

/// Arguments of `report`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["data_dir", "collector"])))]
#[command(group(clap::ArgGroup::new("what").required(true).args(["incident", "from"])))]
pub struct ReportArgs {
    /// Read a collector's data directory (read-only; it may be running).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Ask a running collector at this base URL (http:// or https://).
    #[arg(long, value_name = "URL")]
    pub collector: Option<String>,
    /// Its bearer token (any configured token may read).
    #[arg(long, env = "VANTAGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the token.
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// Trust only this CA (PEM) for an https collector.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// The incident to report on.
    #[arg(long, value_name = "ID")]
    pub incident: Option<u64>,
    /// Or a window: from (RFC 3339, e.g. 2026-12-01T23:00:00Z) ...
    #[arg(long, requires = "to", value_parser = parse_time)]
    pub from: Option<vantage_probe::result::Timestamp>,
    /// ... to.
    #[arg(long, requires = "from", value_parser = parse_time)]
    pub to: Option<vantage_probe::result::Timestamp>,
    /// Only this target.
    #[arg(long)]
    pub target: Option<String>,
    /// Only this region.
    #[arg(long)]
    pub src_region: Option<String>,
    /// markdown (postmortems, bugs), text (chat, IRC) or json.
    #[arg(long, default_value = "markdown", value_parser = ["markdown", "text", "json"])]
    pub format: String,
    /// Also write an SVG chart of failures and RTT per region to FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Print a fresh status this often until the incident is resolved
    /// (e.g. 30m); needs --incident.
    #[arg(long, value_name = "DURATION", requires = "incident", value_parser = humantime::parse_duration)]
    pub every: Option<std::time::Duration>,
}

fn parse_time(s: &str) -> Result<vantage_probe::result::Timestamp, String> {
    crate::time::parse(s)
        .map(Into::into)
        .map_err(|e| format!("not an RFC 3339 time ({e})"))
}

impl ReportArgs {
    /// The report's options: its source (with the token read), request
    /// and output.
    fn options(self) -> anyhow::Result<Options> {
        let source = match (self.data_dir, self.collector) {
            (Some(dir), _) => Source::DataDir(dir),
            (None, Some(url)) => {
                let token = match (self.token, &self.token_file) {
                    (Some(t), _) => t,
                    (None, Some(f)) => read_text(f, Kind::Token)
                        .context("--token-file")?
                        .trim()
                        .to_string(),
                    (None, None) => anyhow::bail!("--collector needs --token or --token-file"),
                };
                Source::Collector {
                    url,
                    token,
                    ca_file: self.ca_file,
                }
            }
            (None, None) => unreachable!("clap requires a source"),
        };
        Ok(Options {
            source,
            request: Request {
                incident: self.incident,
                from: self.from,
                to: self.to,
                target: self.target,
                src_region: self.src_region,
            },
            format: match self.format.as_str() {
                "text" => Format::Text,
                "json" => Format::Json,
                _ => Format::Markdown,
            },
            svg: self.svg,
            every: self.every,
        })
    }
}

/// Runs a parsed command line.
pub fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { config } => {
            let c = Config::load(&config)?;
            // The files the config names, loaded as `serve` will load them.
            if let Some((cert, key)) = &c.tls {
                crate::tls::Certs::load(cert, key).map_err(|e| ConfigError::Invalid {
                    path: config.display().to_string(),
                    problems: vec![format!("  server.tls_cert_file / tls_key_file: {e}")],
                })?;
            }
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
        Command::Report(args) => {
            let options = args.options()?;
            return runtime()?.block_on(crate::report::run::run(options));
        }
        Command::Serve { config: path } => {
            let config = Config::load(&path)?;
            runtime()?.block_on(async {
                // Listening before anything can send SIGHUP: its default
                // action would end the process.
                let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                    .context("listening for SIGHUP")?;
                let collector = Collector::bind(config).await?;
                tokio::spawn(crate::reload::run(hangup, path, collector.app()));
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
