//! `/metrics` as text: the probe's own registry, then the per-target part
//! written straight from [`TargetStats`], a chunk of targets at a time.
//!
//! A scrape of 10k targets is tens of megabytes of text. Building it as
//! generic metric objects first would cost several times that in short-lived
//! allocations; writing it directly into one reused buffer, and handing it
//! out chunk by chunk as the client reads, keeps the probe's memory flat and
//! lets rounds run between chunks. `promtool check metrics` validates the
//! result in the tests.

use std::fmt::Write as _;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use prometheus::{Encoder, TextEncoder};

use crate::metrics::{
    CONNECT_ATTEMPTS, CONNECT_DURATION, CONNECT_FAILURES, CONNECT_RTT, DNS_DURATION, DNS_LOOKUPS,
    MetricDef, Metrics, SYN_RETRANSMITS, SYNS_SENT,
};
use crate::outcome::{ConnectOutcome, DnsOutcome};
use crate::stats::{
    CONNECT_BUCKETS_US, DNS_BUCKETS_US, Family, FamilyStats, HistogramSnapshot, StatsRegistry,
    TargetStats,
};

/// Every target's stats paired with the one region of this probe.
pub(crate) fn for_region(
    stats: &StatsRegistry,
    src_region: &str,
) -> Vec<(Arc<str>, Arc<TargetStats>)> {
    let region: Arc<str> = src_region.into();
    stats
        .all()
        .into_iter()
        .map(|t| (region.clone(), t))
        .collect()
}

/// The probe's own (non-per-target) series.
pub(crate) fn encode_registry(metrics: &Metrics) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&metrics.registry.gather(), &mut buf)
        .map_err(io::Error::other)?;
    Ok(buf)
}

/// Targets per chunk: a histogram chunk is then a few hundred kilobytes.
const CHUNK_TARGETS: usize = 256;

/// The per-target families as a sequence of text chunks, produced on demand.
/// Each family's `# HELP`/`# TYPE` header appears once, before its first series.
#[derive(Debug)]
pub struct TargetChunks {
    targets: Vec<(Arc<str>, Arc<TargetStats>)>,
    prefix: &'static str,
    family: usize,
    offset: usize,
    header_written: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Histogram,
}

/// The per-target families in exposition order.
const FAMILIES: [(MetricDef, Kind); 8] = [
    (CONNECT_ATTEMPTS, Kind::Counter),
    (CONNECT_FAILURES, Kind::Counter),
    (SYN_RETRANSMITS, Kind::Counter),
    (SYNS_SENT, Kind::Counter),
    (CONNECT_RTT, Kind::Histogram),
    (CONNECT_DURATION, Kind::Histogram),
    (DNS_LOOKUPS, Kind::Counter),
    (DNS_DURATION, Kind::Histogram),
];

impl TargetChunks {
    /// Chunks for `targets`, each with the `src_region` that measured it,
    /// metric names starting with `prefix`.
    pub fn new(targets: Vec<(Arc<str>, Arc<TargetStats>)>, prefix: &'static str) -> TargetChunks {
        TargetChunks {
            targets,
            prefix,
            family: 0,
            offset: 0,
            header_written: false,
        }
    }

    /// The next chunk of text, or `None` when every family is written.
    pub fn next_chunk(&mut self) -> Option<io::Result<Vec<u8>>> {
        let mut out = String::with_capacity(64 * 1024);
        loop {
            let (def, kind) = *FAMILIES.get(self.family)?;
            if self.offset >= self.targets.len() {
                self.family += 1;
                self.offset = 0;
                self.header_written = false;
                continue;
            }
            let end = (self.offset + CHUNK_TARGETS).min(self.targets.len());
            let mut w = Writer {
                out: &mut out,
                prefix: self.prefix,
                def,
                kind,
                region: "",
                header_written: self.header_written,
            };
            for (region, t) in &self.targets[self.offset..end] {
                w.region = region;
                write_target(&mut w, self.family, t);
            }
            self.header_written = w.header_written;
            self.offset = end;
            if !out.is_empty() {
                return Some(Ok(out.into_bytes()));
            }
        }
    }
}

/// Writes one family's series of one target.
fn write_target(w: &mut Writer<'_>, family: usize, t: &TargetStats) {
    let per_family = |w: &mut Writer<'_>, f: &dyn Fn(&mut Writer<'_>, &str, &FamilyStats)| {
        for fam in Family::ALL {
            if let Some(s) = t.family(fam) {
                f(w, fam.as_str(), s);
            }
        }
    };
    match family {
        0 => per_family(w, &|w, fam, s| {
            w.sample("", t, Some(("family", fam)), None, None, s.attempts());
        }),
        1 => per_family(w, &|w, fam, s| {
            for o in ConnectOutcome::ALL {
                let n = s.count(o);
                if o != ConnectOutcome::Ok && n > 0 {
                    w.sample(
                        "",
                        t,
                        Some(("family", fam)),
                        Some(("reason", o.as_str())),
                        None,
                        n,
                    );
                }
            }
        }),
        2 => per_family(w, &|w, fam, s| {
            let n = s.syn_retransmits.load(Relaxed);
            w.sample("", t, Some(("family", fam)), None, None, n);
        }),
        3 => per_family(w, &|w, fam, s| {
            let n = s.syns_sent.load(Relaxed);
            w.sample("", t, Some(("family", fam)), None, None, n);
        }),
        4 => per_family(w, &|w, fam, s| {
            w.histogram(
                t,
                Some(("family", fam)),
                &CONNECT_BUCKETS_US,
                &s.rtt.snapshot(),
            );
        }),
        5 => per_family(w, &|w, fam, s| {
            w.histogram(
                t,
                Some(("family", fam)),
                &CONNECT_BUCKETS_US,
                &s.duration.snapshot(),
            );
        }),
        6 => {
            if let Some(d) = t.dns() {
                for o in DnsOutcome::ALL {
                    let n = d.outcomes[o.index()].load(Relaxed);
                    if n > 0 || o == DnsOutcome::Ok {
                        w.sample("", t, Some(("outcome", o.as_str())), None, None, n);
                    }
                }
            }
        }
        _ => {
            if let Some(d) = t.dns() {
                w.histogram(t, None, &DNS_BUCKETS_US, &d.duration.snapshot());
            }
        }
    }
}

struct Writer<'a> {
    out: &'a mut String,
    prefix: &'static str,
    def: MetricDef,
    kind: Kind,
    region: &'a str,
    header_written: bool,
}

impl Writer<'_> {
    fn header(&mut self) {
        if !self.header_written {
            let kind = match self.kind {
                Kind::Counter => "counter",
                Kind::Histogram => "histogram",
            };
            let (name, help) = self.def;
            let p = self.prefix;
            let _ = writeln!(self.out, "# HELP {p}{name} {help}\n# TYPE {p}{name} {kind}");
            self.header_written = true;
        }
    }

    /// `name{suffix}{labels} value`, labels in the documented order:
    /// `src_region`, `target`, the enum labels, `le`, then user labels.
    fn sample(
        &mut self,
        suffix: &str,
        t: &TargetStats,
        first: Option<(&str, &str)>,
        second: Option<(&str, &str)>,
        le: Option<&str>,
        value: impl std::fmt::Display,
    ) {
        self.header();
        let out = &mut *self.out;
        out.push_str(self.prefix);
        out.push_str(self.def.0);
        out.push_str(suffix);
        out.push_str("{src_region=\"");
        escape(out, self.region);
        out.push_str("\",target=\"");
        escape(out, &t.name);
        out.push('"');
        for (k, v) in first.into_iter().chain(second) {
            let _ = write!(out, ",{k}=\"{v}\"");
        }
        if let Some(le) = le {
            let _ = write!(out, ",le=\"{le}\"");
        }
        for (k, v) in t.labels.iter() {
            let _ = write!(out, ",{k}=\"");
            escape(out, v);
            out.push('"');
        }
        let _ = writeln!(out, "}} {value}");
    }

    fn histogram(
        &mut self,
        t: &TargetStats,
        first: Option<(&str, &str)>,
        bounds_us: &[u64],
        s: &HistogramSnapshot,
    ) {
        for (b, c) in bounds_us.iter().zip(&s.cumulative) {
            let le = *b as f64 / 1e6;
            self.sample("_bucket", t, first, None, Some(&le.to_string()), c);
        }
        self.sample("_bucket", t, first, None, Some("+Inf"), s.count);
        self.sample("_sum", t, first, None, None, s.sum_us as f64 / 1e6);
        self.sample("_count", t, first, None, None, s.count);
    }
}

/// Label value escaping of the text format: backslash, quote, newline.
pub fn escape(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::result::{ConnectAttempt, RoundResult, Timestamp};

    fn text(targets: Vec<Arc<TargetStats>>) -> String {
        let region: Arc<str> = "us-east-2".into();
        let entries = targets.into_iter().map(|t| (region.clone(), t)).collect();
        let mut chunks = TargetChunks::new(entries, "vantage_probe_");
        let mut out = String::new();
        while let Some(c) = chunks.next_chunk() {
            out.push_str(&String::from_utf8(c.unwrap()).unwrap());
        }
        out
    }

    fn stats(name: &str, labels: &[(&str, &str)]) -> Arc<TargetStats> {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let t = Arc::new(TargetStats::new(name.into(), Arc::new(labels)));
        let attempt = |outcome, rtt| ConnectAttempt {
            address: "127.0.0.1:80".parse().unwrap(),
            local: None,
            started_at: Timestamp::from_unix_micros(0),
            outcome,
            duration_us: 1_200,
            rtt_us: rtt,
            syn_retransmits: 0,
            errno: None,
            icmp_from: None,
        };
        t.record(&RoundResult {
            target: name.into(),
            host: "127.0.0.1".into(),
            port: 80,
            labels: Arc::default(),
            started_at: Timestamp::from_unix_micros(0),
            dns: None,
            attempts: vec![
                attempt(ConnectOutcome::Ok, Some(250)),
                attempt(ConnectOutcome::Timeout, None),
            ],
        });
        t
    }

    #[test]
    fn writes_each_header_once_and_escapes_label_values() {
        let targets: Vec<_> = (0..CHUNK_TARGETS + 3)
            .map(|i| stats(&format!("t{i:04}"), &[("service", "a \"b\" \\ c")]))
            .collect();
        let text = text(targets);
        assert_eq!(
            text.matches("# TYPE vantage_probe_connect_attempts_total counter")
                .count(),
            1
        );
        assert_eq!(
            text.matches("# TYPE vantage_probe_connect_rtt_seconds histogram")
                .count(),
            1
        );
        assert!(text.contains(
            "vantage_probe_connect_failures_total{src_region=\"us-east-2\",target=\"t0000\",\
             family=\"ipv4\",reason=\"timeout\",service=\"a \\\"b\\\" \\\\ c\"} 1\n"
        ));
        assert!(text.contains(
            "vantage_probe_connect_rtt_seconds_bucket{src_region=\"us-east-2\",target=\"t0258\",\
             family=\"ipv4\",le=\"0.00025\",service=\"a \\\"b\\\" \\\\ c\"} 1\n"
        ));
        assert!(
            !text.contains("vantage_probe_dns"),
            "no DNS series without lookups"
        );
    }

    #[test]
    fn histogram_lines_are_cumulative_and_end_with_inf_sum_count() {
        let text = text(vec![stats("t", &[])]);
        let rtt: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("vantage_probe_connect_rtt_seconds"))
            .collect();
        assert_eq!(rtt.len(), CONNECT_BUCKETS_US.len() + 3);
        assert!(rtt[0].ends_with("le=\"0.0001\"} 0"));
        assert!(rtt[1].ends_with("le=\"0.00025\"} 1"));
        assert!(rtt[rtt.len() - 3].ends_with("le=\"+Inf\"} 1"));
        assert!(rtt[rtt.len() - 2].ends_with("} 0.00025"));
        assert!(rtt[rtt.len() - 1].ends_with("} 1"));
    }

    /// The budget's bound is the real most: a target that saw every
    /// outcome over both families and every DNS outcome writes exactly
    /// `MAX_SERIES_PER_TARGET` samples.
    #[test]
    fn a_target_writes_at_most_max_series_per_target_samples() {
        use crate::outcome::DnsOutcome;
        use crate::result::DnsObservation;
        use crate::stats::MAX_SERIES_PER_TARGET;

        let t = Arc::new(TargetStats::new("all".into(), Arc::default()));
        let attempt = |address: &str, outcome| ConnectAttempt {
            address: address.parse().unwrap(),
            local: None,
            started_at: Timestamp::from_unix_micros(0),
            outcome,
            duration_us: 1_200,
            rtt_us: Some(250),
            syn_retransmits: 1,
            errno: None,
            icmp_from: None,
        };
        for (i, dns) in DnsOutcome::ALL.into_iter().enumerate() {
            let attempts = if i == 0 {
                ConnectOutcome::ALL
                    .into_iter()
                    .flat_map(|o| [attempt("127.0.0.1:80", o), attempt("[::1]:80", o)])
                    .collect()
            } else {
                Vec::new()
            };
            t.record(&RoundResult {
                target: "all".into(),
                host: "localhost".into(),
                port: 80,
                labels: Arc::default(),
                started_at: Timestamp::from_unix_micros(0),
                dns: Some(DnsObservation {
                    outcome: dns,
                    duration_us: 900,
                    addresses: 2,
                }),
                attempts,
            });
        }
        let text = text(vec![t]);
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, MAX_SERIES_PER_TARGET, "{text}");
    }
}
