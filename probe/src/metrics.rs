//! The probe's metrics: names and help texts of every series, and the
//! probe's own gauges and counters in a prometheus `Registry`. The
//! `/metrics` text is written by [`crate::exposition`].
//!
//! Labels: `src_region` on every series, `target` and `family` on per-target
//! series, `reason`/`outcome` from the bounded enums, then the target's own
//! configured labels. Never an address, never an error string.

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::result::Identity;

/// A per-target metric's name after its prefix (`vantage_probe_` on a probe,
/// `vantage_` on the collector) and its help text.
pub(crate) type MetricDef = (&'static str, &'static str);

/// The prefix of the probe's own series.
pub(crate) const PROBE_PREFIX: &str = "vantage_probe_";

/// Connect attempts per target and family.
pub(crate) const CONNECT_ATTEMPTS: MetricDef = (
    "connect_attempts_total",
    "TCP connect attempts, one per resolved address per round.",
);
/// Failed connect attempts by reason.
pub(crate) const CONNECT_FAILURES: MetricDef = (
    "connect_failures_total",
    "Failed TCP connect attempts by reason (bounded taxonomy; local_* blame the probe's host).",
);
/// Kernel SYN -> SYN-ACK round trip.
pub(crate) const CONNECT_RTT: MetricDef = (
    "connect_rtt_seconds",
    "SYN to SYN-ACK round trip of successful connects, as measured by the kernel (tcpi_rtt).",
);
/// Wall-clock connect duration.
pub(crate) const CONNECT_DURATION: MetricDef = (
    "connect_duration_seconds",
    "Wall-clock duration of successful connects; one lost SYN adds about 1 s.",
);
/// SYN retransmits.
pub(crate) const SYN_RETRANSMITS: MetricDef = (
    "syn_retransmits_total",
    "SYNs sent again because the previous one got no answer.",
);
/// DNS lookups by outcome.
pub(crate) const DNS_LOOKUPS: MetricDef = (
    "dns_lookups_total",
    "DNS lookups of target hosts by outcome.",
);
/// DNS lookup duration.
pub(crate) const DNS_DURATION: MetricDef = (
    "dns_lookup_seconds",
    "Duration of DNS lookups of target hosts (A and AAAA in parallel), whatever the outcome.",
);

/// The probe's own metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Registry of the non-per-target metrics.
    pub registry: Registry,
    /// Lateness of rounds against their scheduled time.
    pub scheduler_lag: Histogram,
    /// Rounds run.
    pub rounds: IntCounter,
    /// Rounds skipped because the previous round of the target overran.
    pub rounds_skipped: IntCounter,
    /// Seconds spent waiting for a global cap, by cap.
    pub limit_wait: prometheus::CounterVec,
    /// Config reloads by result.
    pub reloads: IntCounterVec,
    /// 1 when the last reload succeeded (or none was tried).
    pub reload_ok: IntGauge,
    /// Configured targets.
    pub targets: IntGauge,
    /// Rounds lost because the queue to the pusher was full.
    pub results_dropped: IntCounter,
    /// Batches sent to the collector, by result.
    pub push_batches: IntCounterVec,
    /// When the collector last acknowledged a batch (Unix time).
    pub push_last_success: prometheus::Gauge,
    /// Batches waiting in the spool.
    pub spool_batches: IntGauge,
    /// Bytes waiting in the spool.
    pub spool_bytes: IntGauge,
    /// Results waiting in the spool.
    pub spool_results: IntGauge,
    /// Results dropped unsent because the spool was full (or unwritable).
    pub spool_dropped: IntCounter,
    /// Fleet inventory fetches by result.
    pub inventory_fetches: IntCounterVec,
    /// Targets that came from the fleet inventory.
    pub inventory_targets: IntGauge,
}

impl Metrics {
    /// Creates and registers the probe's own metrics.
    pub fn new(identity: &Identity) -> Metrics {
        let registry = Registry::new_custom(
            None,
            Some([("src_region".to_string(), identity.src_region.clone())].into()),
        )
        .expect("constant labels are valid");
        let build = IntGauge::with_opts(
            Opts::new(
                "vantage_probe_build_info",
                "Build of the running probe; always 1.",
            )
            .const_label("version", env!("CARGO_PKG_VERSION")),
        )
        .unwrap();
        build.set(1);
        let ident = IntGauge::with_opts(
            Opts::new(
                "vantage_probe_identity_info",
                "The probe's configured identity; always 1.",
            )
            .const_label("probe_id", &identity.probe_id)
            .const_label("zone", identity.zone.as_deref().unwrap_or("")),
        )
        .unwrap();
        ident.set(1);
        let m = Metrics {
            scheduler_lag: Histogram::with_opts(
                HistogramOpts::new(
                    "vantage_probe_scheduler_lag_seconds",
                    "How late rounds start against their scheduled time.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ]),
            )
            .unwrap(),
            rounds: IntCounter::new(
                "vantage_probe_rounds_total",
                "Rounds run (one target, once).",
            )
            .unwrap(),
            rounds_skipped: IntCounter::new(
                "vantage_probe_rounds_skipped_total",
                "Rounds not run because the target's previous round overran its slot.",
            )
            .unwrap(),
            limit_wait: prometheus::CounterVec::new(
                Opts::new(
                    "vantage_probe_limit_wait_seconds_total",
                    "Time operations waited for a global cap (in_flight, connects, dns).",
                ),
                &["limit"],
            )
            .unwrap(),
            reloads: IntCounterVec::new(
                Opts::new(
                    "vantage_probe_config_reloads_total",
                    "Config reloads by result.",
                ),
                &["result"],
            )
            .unwrap(),
            reload_ok: IntGauge::new(
                "vantage_probe_config_last_reload_successful",
                "1 if the last config reload succeeded or none was tried, else 0.",
            )
            .unwrap(),
            targets: IntGauge::new("vantage_probe_targets", "Targets in the running config.")
                .unwrap(),
            results_dropped: IntCounter::new(
                "vantage_probe_results_dropped_total",
                "Rounds lost because the queue to the pusher was full.",
            )
            .unwrap(),
            push_batches: IntCounterVec::new(
                Opts::new(
                    "vantage_probe_push_batches_total",
                    "Batches sent to the collector, by result (stored, duplicate, rejected, failed).",
                ),
                &["result"],
            )
            .unwrap(),
            push_last_success: prometheus::Gauge::new(
                "vantage_probe_push_last_success_timestamp_seconds",
                "When the collector last acknowledged a batch (Unix time).",
            )
            .unwrap(),
            spool_batches: IntGauge::new(
                "vantage_probe_spool_batches",
                "Batches waiting in the spool for the collector.",
            )
            .unwrap(),
            spool_bytes: IntGauge::new("vantage_probe_spool_bytes", "Bytes waiting in the spool.")
                .unwrap(),
            spool_results: IntGauge::new(
                "vantage_probe_spool_results",
                "Results waiting in the spool.",
            )
            .unwrap(),
            spool_dropped: IntCounter::new(
                "vantage_probe_spool_dropped_results_total",
                "Results dropped unsent because the spool was full or could not be written.",
            )
            .unwrap(),
            inventory_fetches: IntCounterVec::new(
                Opts::new(
                    "vantage_probe_inventory_fetches_total",
                    "Fleet inventory fetches from the collector, by result (updated, unchanged, invalid, failed).",
                ),
                &["result"],
            )
            .unwrap(),
            inventory_targets: IntGauge::new(
                "vantage_probe_inventory_targets",
                "Targets in the running config that came from the fleet inventory.",
            )
            .unwrap(),
            registry,
        };
        m.reload_ok.set(1);
        let collectors: [Box<dyn Collector>; 18] = [
            Box::new(build),
            Box::new(ident),
            Box::new(m.scheduler_lag.clone()),
            Box::new(m.rounds.clone()),
            Box::new(m.rounds_skipped.clone()),
            Box::new(m.limit_wait.clone()),
            Box::new(m.reloads.clone()),
            Box::new(m.reload_ok.clone()),
            Box::new(m.targets.clone()),
            Box::new(m.results_dropped.clone()),
            Box::new(m.push_batches.clone()),
            Box::new(m.push_last_success.clone()),
            Box::new(m.spool_batches.clone()),
            Box::new(m.spool_bytes.clone()),
            Box::new(m.spool_results.clone()),
            Box::new(m.spool_dropped.clone()),
            Box::new(m.inventory_fetches.clone()),
            Box::new(m.inventory_targets.clone()),
        ];
        for c in collectors {
            m.registry.register(c).expect("metric names are unique");
        }
        m
    }
}
