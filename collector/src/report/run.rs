//! `vantage-collector report`: load, render, repeat.

use std::io::Write as _;
use std::process::ExitCode;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use super::fetch::{Source, load};
use super::{Report, Request};

/// What `vantage-collector report` was asked for, checked.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Where the data comes from.
    pub source: Source,
    /// What to report on.
    pub request: Request,
    /// How to write it.
    pub format: Format,
    /// Also write an SVG chart here.
    pub svg: Option<PathBuf>,
    /// Print a fresh report this often until the incident is resolved.
    pub every: Option<Duration>,
}

/// How the report is written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// For postmortems and bugs.
    Markdown,
    /// For chat.
    Text,
    /// The model itself (schema [`super::SCHEMA`]).
    Json,
}

/// Runs the `report` command.
pub(crate) async fn run(args: Options) -> anyhow::Result<ExitCode> {
    let (source, req) = (&args.source, &args.request);
    loop {
        let report = load(source, req).await?;
        emit(&args, &report)?;
        let resolved = report
            .incident
            .as_ref()
            .is_none_or(|i| i.resolved.is_some());
        match args.every {
            Some(every) if !resolved => {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = tokio::signal::ctrl_c() => break,
                }
                println!();
            }
            _ => break,
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn emit(args: &Options, report: &Report) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Text => super::text::render(report, &mut out)?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, report)?;
            writeln!(out)?;
        }
        Format::Markdown => super::markdown::render(report, &mut out)?,
    }
    out.flush()?;
    if let Some(path) = &args.svg {
        let mut f =
            std::fs::File::create(path).with_context(|| format!("--svg {}", path.display()))?;
        super::svg::render(report, &mut f)?;
    }
    Ok(())
}
