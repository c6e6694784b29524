//! The probe's metrics: names and help texts of every series, and the
//! probe's own gauges and counters in a prometheus `Registry`. The
//! `/metrics` text is written by [`crate::exposition`].
//!
//! Labels: `src_region` on every series, `target` and `family` on per-target
//! series, `reason`/`outcome` from the bounded enums, then the target's own
//! configured labels. Never an address, never an error string.

use prometheus::core::Collector;
use prometheus::{
    CounterVec, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry,
};

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
/// SYNs sent.
pub(crate) const SYNS_SENT: MetricDef = (
    "syns_sent_total",
    "SYNs sent, first and retransmitted (a local failure sends none): syn_retransmits_total over this is the share of SYNs that got no answer in time.",
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

/// The probe's own series, in one registry whose every series carries
/// `src_region`. The per-target series are not here: `/metrics` writes
/// them straight from the [`stats`](crate::stats).
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Registry of the non-per-target metrics.
    pub registry: Registry,
    /// Lateness of rounds against their scheduled time.
    pub scheduler_lag: Histogram,
    /// Rounds run, one per target per slot.
    pub rounds: IntCounter,
    /// Rounds skipped because the previous round of the target overran.
    pub rounds_skipped: IntCounter,
    /// Seconds spent waiting for a global cap, by cap.
    pub limit_wait: CounterVec,
    /// Config reloads by result.
    pub reloads: IntCounterVec,
    /// 1 when the last reload succeeded (or none was tried).
    pub reload_ok: IntGauge,
    /// Targets in the running config, from the file and the inventory.
    pub targets: IntGauge,
    /// Rounds lost because the queue to the pusher was full.
    pub results_dropped: IntCounter,
    /// Batches sent to the collector, by result.
    pub push_batches: IntCounterVec,
    /// Batches the collector asked to be sent later, by reason.
    pub push_deferred: IntCounterVec,
    /// Batches the collector refused for good, by reason.
    pub push_rejected: IntCounterVec,
    /// New batch streams started because the collector had a seq stored
    /// with other content.
    pub push_restreamed: IntCounter,
    /// When the collector last acknowledged a batch (Unix time).
    pub push_last_success: Gauge,
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
        let r = Register(&registry);
        r.info(opts(BUILD_INFO).const_label("version", env!("CARGO_PKG_VERSION")));
        r.info(
            opts(IDENTITY_INFO)
                .const_label("probe_id", &identity.probe_id)
                .const_label("zone", identity.zone.as_deref().unwrap_or("")),
        );
        let m = Metrics {
            scheduler_lag: r.histogram(SCHEDULER_LAG, SCHEDULER_LAG_BUCKETS),
            rounds: r.counter(ROUNDS),
            rounds_skipped: r.counter(ROUNDS_SKIPPED),
            limit_wait: r.seconds_vec(LIMIT_WAIT, "limit"),
            reloads: r.counter_vec(RELOADS, "result"),
            reload_ok: r.gauge(RELOAD_OK),
            targets: r.gauge(TARGETS),
            results_dropped: r.counter(RESULTS_DROPPED),
            push_batches: r.counter_vec(PUSH_BATCHES, "result"),
            push_deferred: r.counter_vec(PUSH_DEFERRED, "reason"),
            push_rejected: r.counter_vec(PUSH_REJECTED, "reason"),
            push_restreamed: r.counter(PUSH_RESTREAMED),
            push_last_success: r.timestamp(PUSH_LAST_SUCCESS),
            spool_batches: r.gauge(SPOOL_BATCHES),
            spool_bytes: r.gauge(SPOOL_BYTES),
            spool_results: r.gauge(SPOOL_RESULTS),
            spool_dropped: r.counter(SPOOL_DROPPED),
            inventory_fetches: r.counter_vec(INVENTORY_FETCHES, "result"),
            inventory_targets: r.gauge(INVENTORY_TARGETS),
            registry: registry.clone(),
        };
        m.reload_ok.set(1);
        m
    }
}

// The probe's own series (after `vantage_probe_`), by concern. Each help
// text says what the series counts.

const BUILD_INFO: MetricDef = ("build_info", "Build of the running probe; always 1.");
const IDENTITY_INFO: MetricDef = (
    "identity_info",
    "The probe's configured identity; always 1.",
);

// Scheduling and the global caps.
const SCHEDULER_LAG: MetricDef = (
    "scheduler_lag_seconds",
    "How late rounds start against their scheduled time.",
);
const SCHEDULER_LAG_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
const ROUNDS: MetricDef = ("rounds_total", "Rounds run (one target, once).");
const ROUNDS_SKIPPED: MetricDef = (
    "rounds_skipped_total",
    "Rounds not run because the target's previous round overran its slot.",
);
const LIMIT_WAIT: MetricDef = (
    "limit_wait_seconds_total",
    "Time operations waited for a global cap (in_flight, connects, dns).",
);

// The config and its reloads.
const RELOADS: MetricDef = ("config_reloads_total", "Config reloads by result.");
const RELOAD_OK: MetricDef = (
    "config_last_reload_successful",
    "1 if the last config reload succeeded or none was tried, else 0.",
);
const TARGETS: MetricDef = ("targets", "Targets in the running config.");

// Results on their way to the collector.
const RESULTS_DROPPED: MetricDef = (
    "results_dropped_total",
    "Rounds lost because the queue to the pusher was full.",
);
const PUSH_BATCHES: MetricDef = (
    "push_batches_total",
    "Batches sent to the collector, by result (stored, duplicate, rejected, failed).",
);
const PUSH_DEFERRED: MetricDef = (
    "push_deferred_total",
    "Batches the collector asked to be sent later (429 or 503: a rate limit, a series cap, its store), by its reason; they stay in the spool and are sent again after its Retry-After.",
);
const PUSH_REJECTED: MetricDef = (
    "push_rejected_total",
    "Batches the collector refused for good, by its reason (unreadable: the spooled file could not be read); each is kept in the spool's rejected/ directory.",
);
const PUSH_RESTREAMED: MetricDef = (
    "push_restreamed_total",
    "New batch streams started because the collector had a batch's seq stored with other content (a seq file restored from an older copy); the waiting batches are sent again under the new stream.",
);
const PUSH_LAST_SUCCESS: MetricDef = (
    "push_last_success_timestamp_seconds",
    "When the collector last acknowledged a batch (Unix time).",
);
const SPOOL_BATCHES: MetricDef = (
    "spool_batches",
    "Batches waiting in the spool for the collector.",
);
const SPOOL_BYTES: MetricDef = ("spool_bytes", "Bytes waiting in the spool.");
const SPOOL_RESULTS: MetricDef = ("spool_results", "Results waiting in the spool.");
const SPOOL_DROPPED: MetricDef = (
    "spool_dropped_results_total",
    "Results dropped unsent because the spool was full or could not be written.",
);

// The fleet inventory.
const INVENTORY_FETCHES: MetricDef = (
    "inventory_fetches_total",
    "Fleet inventory fetches from the collector, by result (updated, unchanged, invalid, failed).",
);
const INVENTORY_TARGETS: MetricDef = (
    "inventory_targets",
    "Targets in the running config that came from the fleet inventory.",
);

/// A probe series' options: its full name and help text.
fn opts((name, help): MetricDef) -> Opts {
    Opts::new(format!("{PROBE_PREFIX}{name}"), help)
}

/// Creates metrics and registers each in the probe's registry.
struct Register<'a>(&'a Registry);

impl Register<'_> {
    fn add<C: Collector + Clone + 'static>(&self, c: C) -> C {
        self.0
            .register(Box::new(c.clone()))
            .expect("metric names are unique");
        c
    }

    /// An `_info` gauge: its labels say what it is, its value is always 1.
    fn info(&self, opts: Opts) {
        self.add(IntGauge::with_opts(opts).unwrap()).set(1);
    }

    fn counter(&self, def: MetricDef) -> IntCounter {
        self.add(IntCounter::with_opts(opts(def)).unwrap())
    }

    fn counter_vec(&self, def: MetricDef, label: &str) -> IntCounterVec {
        self.add(IntCounterVec::new(opts(def), &[label]).unwrap())
    }

    /// A counter of seconds (a float), by `label`.
    fn seconds_vec(&self, def: MetricDef, label: &str) -> CounterVec {
        self.add(CounterVec::new(opts(def), &[label]).unwrap())
    }

    fn gauge(&self, def: MetricDef) -> IntGauge {
        self.add(IntGauge::with_opts(opts(def)).unwrap())
    }

    /// A gauge of Unix time in seconds (a float).
    fn timestamp(&self, def: MetricDef) -> Gauge {
        self.add(Gauge::with_opts(opts(def)).unwrap())
    }

    fn histogram(&self, def: MetricDef, buckets: &[f64]) -> Histogram {
        let opts = HistogramOpts::from(opts(def)).buckets(buckets.to_vec());
        self.add(Histogram::with_opts(opts).unwrap())
    }
}
