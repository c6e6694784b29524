//! The collector's shared state, built once at start: the store opened,
//! the fleet rebuilt from it, the open incidents loaded, and the pieces the
//! HTTP handlers, the evaluation loop and the reload share.
//!
//! - [`evaluate`]: every `evaluate_every`, judge the matrix and update the
//!   incidents, written before they are shown.

pub(crate) mod evaluate;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;

use crate::auth::Tokens;
use crate::config::Config;
use crate::evidence::book::Book;
use crate::evidence::incidents::{self, Tracker};
use crate::evidence::{Judge, Params};
use crate::fleet::{Fleet, SeriesLimits};
use crate::ingest::Ingest;
use crate::inventory::Inventory;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tls::Certs;
use std::time::SystemTime;

/// Everything the running collector shares.
#[derive(Debug)]
pub struct App {
    /// The validated config it started with.
    pub config: Config,
    /// Who may push and read (replaced on reload).
    pub tokens: Arc<Tokens>,
    /// Its TLS certificate and key, when it serves TLS (reloaded).
    pub certs: Option<Arc<Certs>>,
    pub store: Store,
    /// The live fleet.
    pub fleet: Arc<Fleet>,
    /// The collector's own metrics.
    pub metrics: Metrics,
    /// Batches in.
    pub ingest: Arc<Ingest>,
    /// The evidence: the store judged with the fleet's probes.
    pub judge: Judge,
    /// The open incidents.
    pub incidents: Arc<Mutex<Tracker>>,
    /// The fleet inventory.
    pub inventory: Arc<Inventory>,
    /// Set once it serves: the readiness latch.
    pub ready: Arc<AtomicBool>,
    /// Notified once the evidence has loaded its recent window from the
    /// store (`Judge::loaded` says whether it has).
    pub(crate) evidence_loaded: Arc<tokio::sync::Notify>,
}

impl App {
    /// Opens the store in `config.data_dir`, rebuilds the fleet from it and
    /// loads the open incidents and the inventory.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let certs = match &config.tls {
            Some((cert, key)) => Some(Arc::new(
                Certs::load(cert, key).context("server.tls_cert_file / tls_key_file")?,
            )),
            None => None,
        };
        let store = Store::open(&config.data_dir, config.retention)?;
        let fleet = Arc::new(Fleet::new(
            config.probes,
            SeriesLimits {
                targets_per_probe: config.limits.max_targets_per_probe,
                per_region: config.limits.max_series_per_region,
                total: config.limits.max_series,
                forget_after: config.probes.forget_after,
            },
            store.probes()?,
            store.probe_targets()?,
        ));
        let metrics = Metrics::new();
        let inventory =
            Inventory::load(config.inventory.clone(), metrics.inventory_healthy.clone())
                .map_err(anyhow::Error::msg)
                .context("fleet inventory")?;
        store
            .set_fleet_name(config.fleet.clone())
            .await
            .context("recording the fleet name")?;
        let (open, last_id) = store
            .read(incidents::load_open)
            .context("reading open incidents")?;
        let tracker = Tracker::new(open, last_id, config.evidence.resolve_after);
        // The cells the evidence judges: kept up to date by every commit
        // from now on, and loaded from the store on a thread of their own
        // while the collector already serves (see `Book::loading`).
        let params = Params::from_policy(&config.evidence);
        let book = Arc::new(Book::loading(params));
        let sink = book.clone();
        store.on_commit(Box::new(move |c| sink.apply(c)));
        Book::follow(&book).context("starting the evidence's book")?;
        let evidence_loaded = Arc::new(tokio::sync::Notify::new());
        load_book(book.clone(), store.clone(), evidence_loaded.clone())
            .context("starting the evidence's load")?;
        let judge = Judge::new(store.clone(), book, fleet.clone(), params);
        // The incidents open at start hold their cells, as they did before.
        judge.hold(tracker.held());
        let tokens = Arc::new(Tokens::new(config.tokens.clone()));
        Ok(App {
            tokens: tokens.clone(),
            certs,
            ingest: Arc::new(Ingest::new(
                config.limits,
                tokens,
                fleet.clone(),
                store.clone(),
                metrics.clone(),
            )),
            judge,
            incidents: Arc::new(Mutex::new(tracker)),
            inventory: Arc::new(inventory),
            config,
            store,
            fleet,
            metrics,
            ready: Arc::default(),
            evidence_loaded,
        })
    }
}

/// Loads `book` from `store` on a thread of its own, again every 5 s
/// while the store cannot answer, and then notifies `loaded`: until then
/// readers are told the evidence is loading and the evaluation loop waits.
fn load_book(
    book: Arc<Book>,
    store: Store,
    loaded: Arc<tokio::sync::Notify>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("vantage-book-load".into())
        .spawn(move || {
            let started = std::time::Instant::now();
            loop {
                match book.load_from(&store, SystemTime::now()) {
                    Ok(()) => {
                        let (series, bytes) = book.size();
                        tracing::info!(
                            series,
                            bytes,
                            "evidence: the recent window loaded from the store in {:.1} s",
                            started.elapsed().as_secs_f64()
                        );
                        loaded.notify_one();
                        return;
                    }
                    Err(e) => {
                        tracing::error!(
                            "evidence: loading the recent window from the store: {e}; again in 5 s"
                        );
                        std::thread::sleep(std::time::Duration::from_secs(5));
                    }
                }
            }
        })
        .map(drop)
}
