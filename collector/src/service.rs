//! The running collector: its shared state built, its listener bound, then
//! the HTTP server and the evaluation loop until told to stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::Config;

/// A collector with its store open and its listener bound.
pub struct Collector {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Arc<App>,
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
        let listen = config.listen;
        let app = App::build(config).await?;
        let tls = match &app.certs {
            Some(c) => Some(crate::tls::acceptor(c.clone()).context("server TLS")?),
            None => None,
        };
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding server.listen {listen}"))?;
        Ok(Collector {
            listener,
            tls,
            app: Arc::new(app),
        })
    }

    /// The state it shares (tokens, metrics, store), for the reload.
    pub fn app(&self) -> Arc<App> {
        self.app.clone()
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `stop` is cancelled; requests in flight finish.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        self.app.ready.store(true, Ordering::Release);
        let evidence = tokio::spawn(crate::app::evaluate::run(self.app.clone(), stop.clone()));
        tracing::info!(
            listen = %self.addr(),
            tls = self.tls.is_some(),
            data_dir = %self.app.config.data_dir.display(),
            "collector running"
        );
        crate::http::serve(self.listener, self.tls, self.app, stop).await;
        let _ = evidence.await;
        Ok(())
    }
}
