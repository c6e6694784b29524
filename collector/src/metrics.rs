//! The collector's `/metrics`: its own ingest counters (a prometheus
//! registry), every probe's liveness and clock, and per (src_region, target)
//! connect and DNS series in the probe's layout with the `vantage_` prefix.

use std::fmt::Write as _;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::config::SERIES_PER_PROBE;
use crate::fleet::{Fleet, Liveness};

/// Prefix of the fleet's per-target series.
pub(crate) const FLEET_PREFIX: &str = "vantage_";

/// The collector's own metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Registry of the collector's own series.
    pub registry: Registry,
    /// Batches acknowledged, by result (`stored`, `duplicate`).
    pub batches: IntCounterVec,
    /// Results stored.
    pub results: IntCounter,
    /// Bodies decoded into batches, by format (`json`, `binary`): which
    /// probes still send JSON.
    pub bodies: IntCounterVec,
    /// Requests refused, by reason.
    pub refused: IntCounterVec,
    /// Time from receipt to acknowledgement of a stored batch.
    pub ingest_seconds: Histogram,
    /// Store failures (answered 503).
    pub store_errors: IntCounter,
    /// Age of a stored batch's oldest result on arrival: how far behind a
    /// backfill after an outage is.
    pub result_delay: Histogram,
    /// Fleet inventory requests, by result (`served`, `not_modified`, `refused`).
    pub inventory_requests: IntCounterVec,
    /// 1 while the inventory files on disk are what is served.
    pub inventory_healthy: IntGauge,
    /// Config reloads on SIGHUP, by result.
    pub config_reloads: IntCounterVec,
    /// 0 after a SIGHUP whose config was refused.
    pub config_last_reload_successful: IntGauge,
    /// Evidence evaluations, by result.
    pub evaluations: IntCounterVec,
    /// Of those, the ones stored batches asked for before their tick.
    pub early_evaluations: IntCounter,
    /// How long the last evaluation took.
    pub evidence_seconds: prometheus::Gauge,
    /// Incidents opened, by scope.
    pub incidents_opened: IntCounterVec,
    /// Incidents resolved, by scope.
    pub incidents_resolved: IntCounterVec,
    /// Connections the collector closed on a client that was too slow or
    /// one too many, by [`Closed`] reason.
    pub connections_closed: IntCounterVec,
    /// Connections open now (TLS handshakes under way included).
    pub connections_open: IntGauge,
}

/// Why the collector closed a connection on its client: the `reason` label
/// of `vantage_collector_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Sent nothing: a new connection within `server.header_read_timeout`,
    /// a kept-alive one within `server.idle_timeout`.
    Idle,
    /// Began a request head and did not finish it within
    /// `server.header_read_timeout`.
    HeaderTimeout,
    /// Did not send the whole body within `server.body_read_timeout`.
    BodyTimeout,
    /// Did not finish its TLS handshake within
    /// `server.tls_handshake_timeout`.
    HandshakeTimeout,
    /// Arrived with `server.max_connections` already open.
    OverCap,
}

impl Closed {
    /// Every reason, so that each series exists from the start.
    pub const ALL: [Closed; 5] = [
        Closed::Idle,
        Closed::HeaderTimeout,
        Closed::BodyTimeout,
        Closed::HandshakeTimeout,
        Closed::OverCap,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Closed::Idle => "idle",
            Closed::HeaderTimeout => "header_timeout",
            Closed::BodyTimeout => "body_timeout",
            Closed::HandshakeTimeout => "handshake_timeout",
            Closed::OverCap => "over_cap",
        }
    }
}

impl Metrics {
    /// Creates and registers the collector's metrics.
    pub fn new() -> Metrics {
        let r = Registry::new();
        let build = IntGauge::with_opts(
            Opts::new(
                "vantage_collector_build_info",
                "Build of the running collector; always 1.",
            )
            .const_label("version", env!("CARGO_PKG_VERSION")),
        )
        .unwrap();
        build.set(1);
        register(&r, build);
        let m = Metrics {
            batches: counters(
                &r,
                "vantage_collector_batches_total",
                "Batches acknowledged, by result (stored or duplicate).",
                "result",
            ),
            results: counter(&r, "vantage_collector_results_total", "Results stored."),
            bodies: counters(
                &r,
                "vantage_collector_bodies_decoded_total",
                "Results bodies decoded into batches, by format (json or binary).",
                "format",
            ),
            refused: counters(
                &r,
                "vantage_collector_refused_total",
                "Requests refused, by reason; nothing of them was stored.",
                "reason",
            ),
            ingest_seconds: histogram(
                &r,
                "vantage_collector_ingest_seconds",
                "Time from a batch's arrival to its durable acknowledgement.",
                &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0],
            ),
            store_errors: counter(
                &r,
                "vantage_collector_store_errors_total",
                "Batches the store failed to keep (answered 503, to be retried).",
            ),
            result_delay: histogram(
                &r,
                "vantage_collector_result_delay_seconds",
                "Age of each stored batch's oldest result when it arrived; large during a backfill.",
                &[
                    1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
                ],
            ),
            inventory_requests: counters(
                &r,
                "vantage_collector_inventory_requests_total",
                "Fleet inventory requests from probes, by result (served, not_modified, refused).",
                "result",
            ),
            inventory_healthy: gauge(
                &r,
                "vantage_collector_inventory_healthy",
                "1 while the fleet inventory files on disk are what is served; 0 after a change that could not be read.",
            ),
            config_reloads: counters(
                &r,
                "vantage_collector_config_reloads_total",
                "Config reloads on SIGHUP (tokens), by result (success, failure).",
                "result",
            ),
            config_last_reload_successful: gauge(
                &r,
                "vantage_collector_config_last_reload_successful",
                "1 unless the last SIGHUP's config was refused (the running tokens stay).",
            ),
            evaluations: counters(
                &r,
                "vantage_evidence_evaluations_total",
                "Evaluations of the region x target matrix, by result (ok, error).",
                "result",
            ),
            early_evaluations: counter(
                &r,
                "vantage_evidence_early_evaluations_total",
                "Evaluations run before the period's tick: a stored batch made a cell fail, or confirmed a fault whose incident was waiting.",
            ),
            evidence_seconds: register(
                &r,
                prometheus::Gauge::new(
                    "vantage_evidence_last_evaluation_seconds",
                    "How long the last evaluation of the matrix took.",
                )
                .unwrap(),
            ),
            incidents_opened: counters(
                &r,
                "vantage_incidents_opened_total",
                "Incidents opened, by scope.",
                "scope",
            ),
            incidents_resolved: counters(
                &r,
                "vantage_incidents_resolved_total",
                "Incidents resolved, by scope.",
                "scope",
            ),
            connections_closed: counters(
                &r,
                "vantage_collector_connections_closed_total",
                "Connections the collector closed on its client, by reason (idle, header_timeout, body_timeout, handshake_timeout, over_cap).",
                "reason",
            ),
            connections_open: gauge(
                &r,
                "vantage_collector_connections_open",
                "Client connections open now, TLS handshakes under way included; at most server.max_connections.",
            ),
            registry: r,
        };
        m.config_last_reload_successful.set(1);
        for reason in Closed::ALL {
            m.connections_closed.with_label_values(&[reason.as_str()]);
        }
        for result in ["success", "failure"] {
            m.config_reloads.with_label_values(&[result]);
        }
        m
    }

    /// The collector's own series, every probe's state and the open incidents.
    pub fn encode_head(
        &self,
        fleet: &Fleet,
        incidents: &[crate::evidence::incidents::Incident],
        now: SystemTime,
    ) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .map_err(io::Error::other)?;
        let mut out = String::new();
        let probes: Vec<_> = fleet
            .probes(now)
            .into_iter()
            .filter(|(_, _, l)| *l != Liveness::Forgotten)
            .collect();
        type Value = fn(&Fleet, &crate::fleet::ProbeState, Liveness, SystemTime) -> String;
        let families: [(&str, &str, &str, Value); SERIES_PER_PROBE] = [
            (
                "vantage_fleet_probe_last_report_timestamp_seconds",
                "gauge",
                "When the probe's last batch was stored (Unix time).",
                |_, p, _, _| secs(p.last_seen).to_string(),
            ),
            (
                "vantage_fleet_probe_silent",
                "gauge",
                "1 if the probe has not reported for five of its longest recent gaps between batches (at least 30 s, at most probes.silent_after); silent is not down.",
                |_, _, l, _| u8::from(l == Liveness::Silent).to_string(),
            ),
            (
                "vantage_fleet_probe_stopped",
                "gauge",
                "1 if the probe's last batch said it was stopping and it has not reported since (a rollout, a removed host); not silent.",
                |_, _, l, _| u8::from(l == Liveness::Stopped).to_string(),
            ),
            (
                "vantage_fleet_probe_clock_offset_seconds",
                "gauge",
                "The probe's clock minus the collector's, estimated at its last batch.",
                |_, p, _, _| (p.clock_offset_us as f64 / 1e6).to_string(),
            ),
            (
                "vantage_fleet_probe_clock_flagged",
                "gauge",
                "1 if the probe's clock is off by more than probes.max_clock_offset: its timeline is suspect.",
                |f, p, _, _| u8::from(f.clock_flagged(p)).to_string(),
            ),
        ];
        for (name, kind, help, value) in families {
            if probes.is_empty() {
                break;
            }
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (id, p, l) in &probes {
                let _ = writeln!(
                    out,
                    "{name}{{src_region=\"{}\",probe_id=\"{}\",zone=\"{}\"}} {}",
                    p.src_region,
                    id,
                    p.zone.as_deref().unwrap_or(""),
                    value(fleet, p, *l, now)
                );
            }
        }
        encode_incidents(incidents, &mut out);
        buf.extend_from_slice(out.as_bytes());
        Ok(buf)
    }
}

impl Metrics {
    /// Counts a connection closed for `reason`.
    pub fn closed(&self, reason: Closed) {
        self.connections_closed
            .with_label_values(&[reason.as_str()])
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// `vantage_incident_active` (one series per incident and affected region,
/// for alert routing and dashboards) and `vantage_incident_onset_timestamp_seconds`.
fn encode_incidents(incidents: &[crate::evidence::incidents::Incident], out: &mut String) {
    if incidents.is_empty() {
        return;
    }
    let esc = |v: &str| {
        let mut s = String::with_capacity(v.len());
        vantage_probe::escape_label_value(&mut s, v);
        s
    };
    let _ = writeln!(
        out,
        "# HELP vantage_incident_active An open incident, per affected region: scope (target, source, path, address, dns, global, inconclusive, probe, silent), target group and targets.\n# TYPE vantage_incident_active gauge"
    );
    for i in incidents {
        let f = &i.finding;
        let targets = if f.targets.len() > 5 {
            format!("{},+{}", f.targets[..5].join(","), f.targets.len() - 5)
        } else {
            f.targets.join(",")
        };
        for r in &f.src_regions {
            let _ = writeln!(
                out,
                "vantage_incident_active{{incident_id=\"{}\",scope=\"{}\",src_region=\"{}\",target_group=\"{}\",target=\"{}\"}} 1",
                i.id,
                f.scope.as_str(),
                esc(r),
                esc(f.target_group.as_deref().unwrap_or("")),
                esc(&targets)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP vantage_incident_onset_timestamp_seconds When an open incident's first failure happened (Unix time).\n# TYPE vantage_incident_onset_timestamp_seconds gauge"
    );
    for i in incidents {
        let _ = writeln!(
            out,
            "vantage_incident_onset_timestamp_seconds{{incident_id=\"{}\",scope=\"{}\"}} {}",
            i.id,
            i.finding.scope.as_str(),
            i.finding.since_us as f64 / 1e6
        );
    }
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Registers `metric` with `r` and hands it back.
fn register<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, metric: M) -> M {
    r.register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

/// A registered counter.
fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    register(r, IntCounter::new(name, help).unwrap())
}

/// A registered gauge.
fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    register(r, IntGauge::new(name, help).unwrap())
}

/// A registered counter with one label.
fn counters(r: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    register(
        r,
        IntCounterVec::new(Opts::new(name, help), &[label]).unwrap(),
    )
}

/// A registered histogram with `buckets` (seconds).
fn histogram(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    register(
        r,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())).unwrap(),
    )
}
