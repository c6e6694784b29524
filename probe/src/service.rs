//! The probe's main job: load the config, serve the admin endpoints, run the
//! scheduler, reload on request, drain on shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::config::{Config, Host, Overrides};
use crate::dns::Resolver;
use crate::engine::Engine;
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::push::Pusher;
use crate::round::Prober;
use crate::shutdown::Control;
use crate::stats::StatsRegistry;

/// How long rounds in flight may take to finish on shutdown.
pub(crate) const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// A loaded probe with its admin port bound, ready to run.
#[derive(Debug)]
pub struct Service {
    path: PathBuf,
    overrides: Overrides,
    config: Config,
    listener: TcpListener,
    state: Arc<AdminState>,
}

impl Service {
    /// Loads the config at `path` and binds the admin listener.
    pub async fn bind(path: PathBuf, overrides: Overrides) -> anyhow::Result<Service> {
        let config = Config::load(&path, &overrides)?;
        Service::with_config(path, overrides, config).await
    }

    /// Like [`Service::bind`] with an already validated config; `path` is
    /// re-read on reload.
    pub async fn with_config(
        path: PathBuf,
        overrides: Overrides,
        config: Config,
    ) -> anyhow::Result<Service> {
        let listener = TcpListener::bind(config.admin_listen)
            .await
            .with_context(|| format!("binding admin.listen {}", config.admin_listen))?;
        let state = Arc::new(AdminState {
            metrics: Metrics::new(&config.identity),
            stats: Arc::new(StatsRegistry::default()),
            src_region: config.identity.src_region.clone(),
            ready: false.into(),
        });
        Ok(Service {
            path,
            overrides,
            config,
            listener,
            state,
        })
    }

    /// The probe's own metrics (shared with the running service).
    pub fn metrics(&self) -> Metrics {
        self.state.metrics.clone()
    }

    /// Per-target totals (shared with the running service).
    pub fn stats(&self) -> Arc<StatsRegistry> {
        self.state.stats.clone()
    }

    /// Where `/metrics` is served.
    pub fn admin_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Runs until `control` says [`Control::Shutdown`] or closes.
    pub async fn run(self, mut control: mpsc::Receiver<Control>) -> anyhow::Result<()> {
        let Service {
            path,
            overrides,
            config,
            listener,
            state,
        } = self;
        let admin_addr = listener.local_addr().context("admin listener address")?;
        let stop_admin = CancellationToken::new();
        let admin = tokio::spawn(admin::serve(listener, state.clone(), stop_admin.clone()));

        let (mut running, pusher) = Running::start(path, overrides, config, state, admin_addr)?;
        let stop_inventory = CancellationToken::new();
        let (inventory_tx, mut inventory_rx) = mpsc::channel(1);
        let inventory = running.spawn_inventory(inventory_tx, stop_inventory.clone())?;
        loop {
            let event = tokio::select! {
                event = control.recv() => event.unwrap_or(Control::Shutdown),
                Some(()) = inventory_rx.recv() => Control::Reload,
            };
            match event {
                Control::Shutdown => break,
                Control::Reload => running.reload(),
            }
        }
        stop_inventory.cancel();
        if let Some(task) = inventory {
            let _ = task.await;
        }

        running.drain(pusher).await;
        stop_admin.cancel();
        admin
            .await
            .context("admin server task")?
            .context("admin server")?;
        Ok(())
    }
}

/// The probe between start and drain: the config it runs and what a
/// reload replaces.
struct Running {
    path: PathBuf,
    overrides: Overrides,
    config: Config,
    state: Arc<AdminState>,
    prober: Arc<Prober>,
    engine: Engine<Prober>,
}

impl Running {
    /// Starts the pusher (when there is a collector) and every target's
    /// rounds, then marks the probe ready.
    fn start(
        path: PathBuf,
        overrides: Overrides,
        config: Config,
        state: Arc<AdminState>,
        admin_addr: SocketAddr,
    ) -> anyhow::Result<(Running, Option<Pusher>)> {
        open_files(&config.limits);
        let prober = Arc::new(build_prober(&config, &state.metrics)?);
        let (pusher, results) = match &config.push {
            Some(settings) => {
                let (p, tx) = Pusher::start(
                    settings.clone(),
                    config.identity.clone(),
                    state.metrics.clone(),
                )
                .with_context(|| {
                    format!("opening the spool in {}", settings.spool_dir.display())
                })?;
                tracing::info!(collector = %settings.url, spool = %settings.spool_dir.display(), "pushing results");
                (Some(p), Some(tx))
            }
            None => (None, None),
        };
        let mut engine = Engine::new(
            &config.identity.probe_id,
            state.metrics.clone(),
            state.stats.clone(),
            results,
        );
        engine.apply(&config.targets, &prober);
        crate::memory::release_free_heap();
        state.ready.store(true, Ordering::Release);
        tracing::info!(
            src_region = %config.identity.src_region,
            probe_id = %config.identity.probe_id,
            targets = config.targets.len(),
            admin = %admin_addr,
            "probe running"
        );
        let running = Running {
            path,
            overrides,
            config,
            state,
            prober,
            engine,
        };
        Ok((running, pusher))
    }

    /// Starts the fleet inventory fetcher when the config asks for one; it
    /// says on `changed` when a fetched inventory calls for a reload.
    fn spawn_inventory(
        &self,
        changed: mpsc::Sender<()>,
        stop: CancellationToken,
    ) -> anyhow::Result<Option<JoinHandle<()>>> {
        let (config, metrics) = (&self.config, &self.state.metrics);
        let inventory = match &config.push {
            Some(settings) if settings.inventory_refresh.is_some() => {
                Some(crate::push::inventory::spawn(
                    settings.clone(),
                    config.identity.src_region.clone(),
                    self.path.clone(),
                    self.overrides.clone(),
                    metrics.clone(),
                    changed,
                    stop,
                )?)
            }
            _ => None,
        };
        metrics
            .inventory_targets
            .set(config.inventory_targets as i64);
        Ok(inventory)
    }

    /// Loads the config again and applies it; a config that fails to load
    /// or validate changes nothing.
    fn reload(&mut self) {
        let metrics = &self.state.metrics;
        let current = &self.config;
        let reloaded = reload(&self.path, &self.overrides, current).and_then(|new| {
            let rebuild = new.limits != current.limits
                || new.dns != current.dns
                || needs_dns(&new) != needs_dns(current);
            let next = if rebuild {
                open_files(&new.limits);
                Arc::new(build_prober(&new, metrics)?)
            } else {
                self.prober.clone()
            };
            Ok((new, next))
        });
        match reloaded {
            Ok((new, next)) => {
                self.prober = next;
                self.engine.apply(&new.targets, &self.prober);
                crate::memory::release_free_heap();
                metrics.reloads.with_label_values(&["success"]).inc();
                metrics.reload_ok.set(1);
                metrics.inventory_targets.set(new.inventory_targets as i64);
                tracing::info!(
                    targets = new.targets.len(),
                    from_inventory = new.inventory_targets,
                    "config reloaded"
                );
                self.config = new;
            }
            Err(err) => {
                metrics.reloads.with_label_values(&["failure"]).inc();
                metrics.reload_ok.set(0);
                tracing::error!("config reload failed, still running the previous config: {err:#}");
            }
        }
    }

    /// Not ready any more; the rounds in flight get [`DRAIN_GRACE`] to end,
    /// then the pusher as long again to flush what they measured.
    async fn drain(self, pusher: Option<Pusher>) {
        self.state.ready.store(false, Ordering::Release);
        tracing::info!("draining rounds in flight");
        if !self.engine.shutdown(DRAIN_GRACE).await {
            tracing::warn!(grace = ?DRAIN_GRACE, "rounds still in flight after the grace period");
        }
        if let Some(p) = pusher {
            tracing::info!("flushing results to the collector");
            p.finish(DRAIN_GRACE).await;
        }
    }
}

fn needs_dns(config: &Config) -> bool {
    config
        .targets
        .iter()
        .any(|t| matches!(t.host, Host::Name(_)))
}

/// Raises the open-files limit to what the caps can hold, and says what it
/// did: a probe that runs out of descriptors measures itself, not the
/// network.
fn open_files(limits: &crate::config::Limits) {
    use crate::open_files::{Adjustment, ensure, shortfall};
    match ensure(limits) {
        Ok(Adjustment::Enough { .. }) => {}
        Ok(Adjustment::Raised { needed, from, to }) => {
            tracing::info!(from, to, needed, "raised the open-files soft limit");
        }
        Ok(Adjustment::Short { needed, hard }) => tracing::warn!("{}", shortfall(needed, hard)),
        Err(e) => tracing::warn!("reading or raising the open-files limit: {e}"),
    }
}

fn build_prober(config: &Config, metrics: &Metrics) -> anyhow::Result<Prober> {
    let resolver = if needs_dns(config) {
        Some(Resolver::new(&config.dns).context("dns")?)
    } else {
        None
    };
    let limiter = Arc::new(Limiter::new(&config.limits, Some(metrics.clone())));
    Ok(Prober::new(resolver, limiter))
}

/// Loads the new config; what cannot change without a restart is refused.
fn reload(
    path: &std::path::Path,
    overrides: &Overrides,
    current: &Config,
) -> anyhow::Result<Config> {
    let new = Config::load(path, overrides)?;
    if new.identity != current.identity {
        anyhow::bail!(
            "{}: the probe's identity ([probe]) cannot change on reload; restart the probe",
            path.display()
        );
    }
    if new.push != current.push {
        anyhow::bail!(
            "{}: the [collector] section cannot change on reload; restart the probe",
            path.display()
        );
    }
    if new.admin_listen != current.admin_listen {
        anyhow::bail!(
            "{}: admin.listen cannot change on reload; restart the probe",
            path.display()
        );
    }
    Ok(new)
}
