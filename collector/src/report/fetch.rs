//! Where a report's data comes from: a data directory read directly
//! (read-only; the collector may be running), or a running collector's
//! `GET /api/v1/report`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use super::{Report, Request, build};
use crate::store::ReadOnly;

/// The most of a collector's answer `report --collector` reads: a report
/// is tens of kilobytes; anything near this is not one.
const MAX_REPORT_BYTES: usize = 64 << 20;

/// A report's data source.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A collector's data directory.
    DataDir(PathBuf),
    /// A running collector.
    Collector {
        /// Its base URL.
        url: String,
        /// A bearer token it knows.
        token: String,
        /// Trust only this CA (PEM) for https.
        ca_file: Option<PathBuf>,
    },
}

/// Builds (or fetches) the report for `req`.
pub(crate) async fn load(source: &Source, req: &Request) -> anyhow::Result<Report> {
    match source {
        Source::DataDir(dir) => {
            let (dir, req) = (dir.clone(), req.clone());
            tokio::task::spawn_blocking(move || {
                let shown = dir.display().to_string();
                let store = ReadOnly::open(&dir)
                    .with_context(|| format!("opening {}", dir.join("vantage.db").display()))?;
                Ok(store.read(|snap| build(snap, &req, &shown))?)
            })
            .await?
        }
        Source::Collector {
            url,
            token,
            ca_file,
        } => {
            let client = vantage_probe::http_client(
                Duration::from_secs(30),
                ca_file.as_deref(),
                url.starts_with("https://"),
            )
            .context("the HTTP client")?;
            let mut params: Vec<(&str, String)> = Vec::new();
            if let Some(i) = req.incident {
                params.push(("incident", i.to_string()));
            }
            if let Some(f) = req.from {
                params.push(("from", f.to_string()));
            }
            if let Some(t) = req.to {
                params.push(("to", t.to_string()));
            }
            if let Some(t) = &req.target {
                params.push(("target", t.clone()));
            }
            if let Some(r) = &req.src_region {
                params.push(("src_region", r.clone()));
            }
            let base = format!("{}/api/v1/report", url.trim_end_matches('/'));
            let endpoint = reqwest::Url::parse_with_params(&base, &params)
                .with_context(|| format!("--collector {url}"))?;
            let response = client
                .get(endpoint)
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await
                .with_context(|| format!("asking {base}"))?;
            let status = response.status();
            let body = vantage_probe::text_capped(response, MAX_REPORT_BYTES)
                .await
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("reading the answer of {base}"))?;
            if !status.is_success() {
                let message = serde_json::from_str::<vantage_probe::wire::Refusal>(&body)
                    .map_or(body.trim().to_string(), |r| {
                        format!("{}: {}", r.reason, r.message)
                    });
                anyhow::bail!("{base}: {status}: {message}");
            }
            let mut report: Report =
                serde_json::from_str(&body).with_context(|| format!("{base}: not a report"))?;
            report.source = url.clone();
            Ok(report)
        }
    }
}
