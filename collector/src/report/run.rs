//! `vantage-collector report`: load, render, repeat.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;

use super::fetch::{Source, load};
use super::{Report, Request};
use crate::cli::ReportArgs;

/// Runs the `report` command.
pub async fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let source = match (&args.data_dir, &args.collector) {
        (Some(dir), _) => Source::DataDir(dir.clone()),
        (None, Some(url)) => {
            let token = match (&args.token, &args.token_file) {
                (Some(t), _) => t.clone(),
                (None, Some(f)) => std::fs::read_to_string(f)
                    .with_context(|| format!("--token-file {}", f.display()))?
                    .trim()
                    .to_string(),
                (None, None) => anyhow::bail!("--collector needs --token or --token-file"),
            };
            Source::Collector {
                url: url.clone(),
                token,
                ca_file: args.ca_file.clone(),
            }
        }
        (None, None) => unreachable!("clap requires a source"),
    };
    let req = Request {
        incident: args.incident,
        from: args.from,
        to: args.to,
        target: args.target.clone(),
        src_region: args.src_region.clone(),
    };
    loop {
        let report = load(&source, &req).await?;
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

fn emit(args: &ReportArgs, report: &Report) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match args.format.as_str() {
        "text" => super::text::render(report, &mut out)?,
        "json" => {
            serde_json::to_writer_pretty(&mut out, report)?;
            writeln!(out)?;
        }
        _ => super::markdown::render(report, &mut out)?,
    }
    out.flush()?;
    if let Some(path) = &args.svg {
        let mut f =
            std::fs::File::create(path).with_context(|| format!("--svg {}", path.display()))?;
        super::svg::render(report, &mut f)?;
    }
    Ok(())
}
