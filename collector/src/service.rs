//! The running collector: open the store, rebuild the fleet from it, serve.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::Tokens;
use crate::config::Config;
use crate::fleet::Fleet;
use crate::ingest::RateLimits;
use crate::metrics::Metrics;
use crate::server::{self, AppState};
use crate::store::Store;

/// A collector with its store open and its listener bound.
pub struct Collector {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<AppState>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("listener", &self.listener)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Collector {
    /// Opens the store in `config.data_dir` and binds `config.listen`.
    pub async fn bind(config: Config) -> anyhow::Result<Collector> {
        let fleet_cell: Arc<std::sync::OnceLock<Arc<Fleet>>> = Arc::default();
        let on_stored = {
            let cell = fleet_cell.clone();
            Arc::new(move |b: &vantage_probe::wire::Batch, at, clock| {
                if let Some(f) = cell.get() {
                    f.record(b, at, clock);
                }
            })
        };
        let certs = match &config.tls {
            Some((cert, key)) => Some(Arc::new(
                crate::tls::Certs::load(cert, key).context("server TLS")?,
            )),
            None => None,
        };
        let tls = match &certs {
            Some(c) => Some(crate::tls::acceptor(c.clone()).context("server TLS")?),
            None => None,
        };
        let store = Store::open(&config.data_dir, config.retention, on_stored)?;
        let fleet = Arc::new(Fleet::new(
            config.probes,
            config.limits.max_targets_per_probe,
            store.probes()?,
            store.probe_targets()?,
        ));
        let _ = fleet_cell.set(fleet.clone());
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding server.listen {}", config.listen))?;
        let metrics = Metrics::new();
        let inventory = crate::inventory::Inventory::load(
            config.inventory.clone(),
            metrics.inventory_healthy.clone(),
        )
        .map_err(anyhow::Error::msg)
        .context("fleet inventory")?;
        let fleet_name = config.fleet.clone();
        store
            .write(move |c| {
                c.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('fleet', ?1)",
                    [fleet_name],
                )
                .map(|_| ())
            })
            .await
            .context("recording the fleet name")?;
        let (open, last_id) = store
            .read(crate::evidence::incidents::load_open)
            .context("reading open incidents")?;
        let incidents = std::sync::Mutex::new(crate::evidence::incidents::Tracker::new(
            open,
            last_id,
            config.evidence.resolve_after,
        ));
        let state = Arc::new(AppState {
            tokens: Tokens::new(config.tokens.clone()),
            certs,
            incidents,
            inventory,
            config,
            store,
            fleet,
            metrics,
            rates: RateLimits::default(),
            ready: false.into(),
        });
        Ok(Collector {
            listener,
            tls,
            state,
        })
    }

    /// The state its handlers share (tokens, metrics, store).
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `stop` is cancelled; requests in flight finish.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        self.state.ready.store(true, Ordering::Release);
        let evidence = tokio::spawn(crate::evidence::runner::run(
            self.state.clone(),
            stop.clone(),
        ));
        tracing::info!(
            listen = %self.addr(),
            tls = self.tls.is_some(),
            data_dir = %self.state.config.data_dir.display(),
            "collector running"
        );
        match self.tls {
            Some(acceptor) => {
                let listener = crate::tls::TlsListener::new(self.listener, acceptor)?;
                server::serve(listener, self.state, stop).await?;
            }
            None => server::serve(self.listener, self.state, stop).await?,
        }
        let _ = evidence.await;
        Ok(())
    }
}
