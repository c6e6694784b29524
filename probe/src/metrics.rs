//! The `/metrics` exposition: the probe's own gauges and counters through a
//! prometheus `Registry`, and the per-target series generated at scrape time
//! from [`StatsRegistry`], one metric family at a time so that a scrape of
//! 10k targets never holds more than one family in memory.
//!
//! Labels: `src_region` on every series, `target` and `family` on per-target
//! series, `reason`/`outcome` from the bounded enums, then the target's own
//! configured labels. Never an address, never an error string.

use std::io;
use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::proto::{Bucket, Counter, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::outcome::{ConnectOutcome, DnsOutcome};
use crate::result::Identity;
use crate::stats::{
    CONNECT_BUCKETS_US, DNS_BUCKETS_US, Family, FamilyStats, HistogramSnapshot, StatsRegistry,
    TargetStats,
};

/// A metric's name and help text.
pub type MetricDef = (&'static str, &'static str);

/// Connect attempts per target and family.
pub const CONNECT_ATTEMPTS: MetricDef = (
    "vantage_probe_connect_attempts_total",
    "TCP connect attempts, one per resolved address per round.",
);
/// Failed connect attempts by reason.
pub const CONNECT_FAILURES: MetricDef = (
    "vantage_probe_connect_failures_total",
    "Failed TCP connect attempts by reason (bounded taxonomy; local_* blame the probe's host).",
);
/// Kernel SYN -> SYN-ACK round trip.
pub const CONNECT_RTT: MetricDef = (
    "vantage_probe_connect_rtt_seconds",
    "SYN to SYN-ACK round trip of successful connects, as measured by the kernel (tcpi_rtt).",
);
/// Wall-clock connect duration.
pub const CONNECT_DURATION: MetricDef = (
    "vantage_probe_connect_duration_seconds",
    "Wall-clock duration of successful connects; one lost SYN adds about 1 s.",
);
/// SYN retransmits.
pub const SYN_RETRANSMITS: MetricDef = (
    "vantage_probe_syn_retransmits_total",
    "SYNs sent again because the previous one got no answer.",
);
/// DNS lookups by outcome.
pub const DNS_LOOKUPS: MetricDef = (
    "vantage_probe_dns_lookups_total",
    "DNS lookups of target hosts by outcome.",
);
/// DNS lookup duration.
pub const DNS_DURATION: MetricDef = (
    "vantage_probe_dns_lookup_seconds",
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
            registry,
        };
        m.reload_ok.set(1);
        let collectors: [Box<dyn Collector>; 9] = [
            Box::new(build),
            Box::new(ident),
            Box::new(m.scheduler_lag.clone()),
            Box::new(m.rounds.clone()),
            Box::new(m.rounds_skipped.clone()),
            Box::new(m.limit_wait.clone()),
            Box::new(m.reloads.clone()),
            Box::new(m.reload_ok.clone()),
            Box::new(m.targets.clone()),
        ];
        for c in collectors {
            m.registry.register(c).expect("metric names are unique");
        }
        m
    }
}

/// Writes the whole exposition: the registry, then every per-target family.
pub fn encode(
    metrics: &Metrics,
    stats: &StatsRegistry,
    src_region: &str,
    w: &mut impl io::Write,
) -> io::Result<()> {
    let enc = TextEncoder::new();
    enc.encode(&metrics.registry.gather(), w)
        .map_err(io::Error::other)?;
    encode_targets(&stats.all(), src_region, w)
}

/// Writes the per-target families for `targets`.
pub fn encode_targets(
    targets: &[Arc<TargetStats>],
    src_region: &str,
    w: &mut impl io::Write,
) -> io::Result<()> {
    let enc = TextEncoder::new();
    let mut emit = |def: MetricDef, kind: MetricType, metrics: Vec<Metric>| -> io::Result<()> {
        if metrics.is_empty() {
            return Ok(());
        }
        let mut mf = MetricFamily::default();
        mf.set_name(def.0.into());
        mf.set_help(def.1.into());
        mf.set_field_type(kind);
        mf.set_metric(metrics);
        enc.encode(&[mf], w).map_err(io::Error::other)
    };

    let per_family = |f: &FamilyFn<'_>| family_metrics(targets, src_region, f);

    emit(
        CONNECT_ATTEMPTS,
        MetricType::COUNTER,
        per_family(&|s, l, out| out.push(counter(l, s.attempts()))),
    )?;
    emit(
        CONNECT_FAILURES,
        MetricType::COUNTER,
        per_family(&|s, l, out| {
            for o in ConnectOutcome::ALL {
                let n = s.count(o);
                if o != ConnectOutcome::Ok && n > 0 {
                    let mut l = l.clone();
                    l.insert(3, pair("reason", o.as_str()));
                    out.push(counter(l, n));
                }
            }
        }),
    )?;
    emit(
        SYN_RETRANSMITS,
        MetricType::COUNTER,
        per_family(&|s, l, out| {
            out.push(counter(
                l,
                s.syn_retransmits.load(std::sync::atomic::Ordering::Relaxed),
            ))
        }),
    )?;
    emit(
        CONNECT_RTT,
        MetricType::HISTOGRAM,
        per_family(&|s, l, out| out.push(histogram(l, &CONNECT_BUCKETS_US, s.rtt.snapshot()))),
    )?;
    emit(
        CONNECT_DURATION,
        MetricType::HISTOGRAM,
        per_family(&|s, l, out| out.push(histogram(l, &CONNECT_BUCKETS_US, s.duration.snapshot()))),
    )?;

    let mut lookups = Vec::new();
    let mut durations = Vec::new();
    for t in targets {
        if let Some(d) = t.dns() {
            for o in DnsOutcome::ALL {
                let n = d.outcomes[o.index()].load(std::sync::atomic::Ordering::Relaxed);
                if n > 0 || o == DnsOutcome::Ok {
                    lookups.push(counter(
                        labels(src_region, t, None, Some(("outcome", o.as_str()))),
                        n,
                    ));
                }
            }
            durations.push(histogram(
                labels(src_region, t, None, None),
                &DNS_BUCKETS_US,
                d.duration.snapshot(),
            ));
        }
    }
    emit(DNS_LOOKUPS, MetricType::COUNTER, lookups)?;
    emit(DNS_DURATION, MetricType::HISTOGRAM, durations)
}

/// Builds the metrics of one family stats slot.
type FamilyFn<'a> = dyn Fn(&FamilyStats, Vec<LabelPair>, &mut Vec<Metric>) + 'a;

/// One metric per target and family the target has connected over.
fn family_metrics(targets: &[Arc<TargetStats>], src_region: &str, f: &FamilyFn<'_>) -> Vec<Metric> {
    let mut out = Vec::new();
    for t in targets {
        for fam in Family::ALL {
            if let Some(s) = t.family(fam) {
                f(s, labels(src_region, t, Some(fam.as_str()), None), &mut out);
            }
        }
    }
    out
}

fn pair(name: &str, value: &str) -> LabelPair {
    let mut p = LabelPair::default();
    p.set_name(name.into());
    p.set_value(value.into());
    p
}

/// `src_region`, `target`, then `family` or one enum label, then user labels.
fn labels(
    src_region: &str,
    t: &TargetStats,
    family: Option<&str>,
    extra: Option<(&str, &str)>,
) -> Vec<LabelPair> {
    let mut l = Vec::with_capacity(4 + t.labels.len());
    l.push(pair("src_region", src_region));
    l.push(pair("target", &t.name));
    if let Some(f) = family {
        l.push(pair("family", f));
    }
    if let Some((k, v)) = extra {
        l.push(pair(k, v));
    }
    for (k, v) in t.labels.iter() {
        l.push(pair(k, v));
    }
    l
}

fn counter(labels: Vec<LabelPair>, value: u64) -> Metric {
    let mut c = Counter::default();
    c.set_value(value as f64);
    let mut m = Metric::from_label(labels);
    m.set_counter(c);
    m
}

fn histogram(labels: Vec<LabelPair>, bounds_us: &[u64], s: HistogramSnapshot) -> Metric {
    let mut h = prometheus::proto::Histogram::default();
    h.set_sample_count(s.count);
    h.set_sample_sum(s.sum_us as f64 / 1e6);
    h.set_bucket(
        bounds_us
            .iter()
            .zip(s.cumulative)
            .map(|(&b, c)| {
                let mut bucket = Bucket::default();
                bucket.set_upper_bound(b as f64 / 1e6);
                bucket.set_cumulative_count(c);
                bucket
            })
            .collect(),
    );
    let mut m = Metric::from_label(labels);
    m.set_histogram(h);
    m
}
