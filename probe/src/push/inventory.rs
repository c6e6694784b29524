//! The fleet inventory: the target list the collector keeps for every
//! region, so that all regions probe the same targets and the cross-region
//! matrix has no holes.
//!
//! With `[collector] inventory = true` the probe fetches
//! `GET /api/v1/targets?src_region=R` every `inventory_refresh`. A fetched
//! list is checked by loading the probe's config with it; only a list that
//! passes replaces the cache (`inventory.json` in the spool directory,
//! written atomically), and then the probe reloads. The config loader reads
//! the cache, so a probe whose collector is away starts and runs on the
//! last list it had. Local targets of the same name win.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, ETAG, IF_NONE_MATCH};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::file::{Kind, read_text};
use crate::config::{Config, Overrides, PushSettings, inventory_cache_path};
use crate::metrics::Metrics;
use crate::wire::{TARGETS_PATH, TARGETS_REGION_PARAM};

/// What one fetch came to; the `result` label of
/// `vantage_probe_inventory_fetches_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fetched {
    /// A new list passed the check, was cached, and the probe reloads.
    Updated,
    /// The collector's list is the one already cached.
    Unchanged,
    /// The list did not pass the check; the cache is kept.
    Invalid,
    /// No list: the collector was unreachable or answered with an error.
    Failed,
}

impl Fetched {
    /// The bounded label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Fetched::Updated => "updated",
            Fetched::Unchanged => "unchanged",
            Fetched::Invalid => "invalid",
            Fetched::Failed => "failed",
        }
    }
}

/// Fetches the inventory now and then every `inventory_refresh` until
/// `stop`; each accepted change is announced on `changed`.
pub(crate) fn spawn(
    settings: PushSettings,
    src_region: String,
    config_path: PathBuf,
    overrides: Overrides,
    metrics: Metrics,
    changed: mpsc::Sender<()>,
    stop: CancellationToken,
) -> std::io::Result<JoinHandle<()>> {
    let client = super::client(&settings)?;
    let refresh = settings
        .inventory_refresh
        .unwrap_or(Duration::from_secs(60));
    let fetcher = Fetcher {
        client,
        settings,
        src_region,
        config_path,
        overrides,
        etag: None,
    };
    Ok(tokio::spawn(async move {
        let mut fetcher = fetcher;
        loop {
            let fetched = fetcher.fetch().await;
            metrics
                .inventory_fetches
                .with_label_values(&[fetched.label()])
                .inc();
            if fetched == Fetched::Updated {
                // A full queue already holds a pending reload.
                let _ = changed.try_send(());
            }
            tokio::select! {
                () = tokio::time::sleep(refresh) => {}
                () = stop.cancelled() => return,
            }
        }
    }))
}

struct Fetcher {
    client: reqwest::Client,
    settings: PushSettings,
    src_region: String,
    config_path: PathBuf,
    overrides: Overrides,
    /// The collector's tag for the list last cached.
    etag: Option<String>,
}

impl Fetcher {
    async fn fetch(&mut self) -> Fetched {
        let base = format!("{}{TARGETS_PATH}", self.settings.url.trim_end_matches('/'));
        let url = match reqwest::Url::parse_with_params(
            &base,
            [(TARGETS_REGION_PARAM, &self.src_region)],
        ) {
            Ok(u) => u,
            Err(err) => {
                tracing::error!(%base, "fleet inventory URL: {err}");
                return Fetched::Failed;
            }
        };
        let mut request = self
            .client
            .get(url.clone())
            .header(AUTHORIZATION, format!("Bearer {}", self.settings.token));
        if let Some(tag) = &self.etag {
            request = request.header(IF_NONE_MATCH, tag);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(err) => {
                tracing::warn!(%url, "fleet inventory not fetched: {err}");
                return Fetched::Failed;
            }
        };
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Fetched::Unchanged;
        }
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = match super::text_capped(response, Kind::FileSd.max_bytes() as usize).await {
            Ok(b) => b,
            Err(err) => {
                tracing::warn!(%url, "fleet inventory not fetched: {err}");
                return Fetched::Failed;
            }
        };
        if !status.is_success() {
            tracing::warn!(%url, %status, body = %body.trim(), "fleet inventory refused");
            // A rotated token: the next fetch uses the token file's new one.
            if status == StatusCode::UNAUTHORIZED
                && let Some(new) = super::rotated_token(&self.settings, &self.settings.token).await
            {
                self.settings.token = new;
            }
            return Fetched::Failed;
        }
        let cache = inventory_cache_path(&self.settings.spool_dir);
        if read_text(&cache, Kind::FileSd).is_ok_and(|cached| cached == body) {
            self.etag = etag;
            return Fetched::Unchanged;
        }
        let path = self.config_path.clone();
        let overrides = self.overrides.clone();
        let shown = url.to_string();
        let checked = tokio::task::spawn_blocking(move || {
            Config::load_with_inventory(&path, &overrides, &shown, &body)?;
            super::spool::write_atomically(&cache, body.as_bytes())
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", cache.display()))?;
            anyhow::Ok(())
        })
        .await;
        match checked {
            Ok(Ok(())) => {
                self.etag = etag;
                tracing::info!(%url, "fleet inventory changed");
                Fetched::Updated
            }
            Ok(Err(err)) => {
                tracing::error!("fleet inventory not used, the cached one stays: {err:#}");
                Fetched::Invalid
            }
            Err(err) => {
                tracing::error!("fleet inventory check failed: {err}");
                Fetched::Invalid
            }
        }
    }
}
