//! Checks a decoded batch before anything of it is stored. The first problem
//! found refuses the whole batch, with a message that names the field and
//! the value, so the probe's operator can find the bug.

use std::time::SystemTime;

use vantage_probe::result::{ConnectAttempt, RoundResult, Timestamp};
use vantage_probe::wire::{Batch, MAX_ATTEMPTS_PER_ROUND, SCHEMA_VERSION};

use crate::config::IngestLimits;
use vantage_probe::result::{MAX_NAME_LEN, MAX_PROBE_ID_LEN, check_label, ident_rule, valid_ident};

/// A batch refused before anything of it is stored: which check failed,
/// and a message naming the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// Which check failed.
    pub problem: Problem,
    /// What was wrong, for the probe's operator.
    pub message: String,
}

/// The checks a batch can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// A schema version this collector does not read.
    UnknownSchema,
    /// A field out of its range or form.
    InvalidValue,
    /// More results than `limits.max_results_per_batch`.
    TooManyResults,
    /// A time outside the accepted window.
    BadTimestamp,
}

/// Longest plausible connect or lookup: anything longer is a bug.
const MAX_DURATION_US: u64 = 3_600_000_000;
/// Longest plausible kernel RTT.
const MAX_RTT_US: u32 = 60_000_000;
/// The longest host: a DNS name (253) or an IP literal.
const MAX_HOST_LEN: usize = 253;
/// The longest target name.
const MAX_TARGET_LEN: usize = 128;
/// Most labels one target may carry.
const MAX_LABELS: usize = 16;
/// Most SYN retransmits one attempt can have.
const MAX_SYN_RETRANSMITS: u32 = 64;

impl Invalid {
    fn new(problem: Problem, message: impl Into<String>) -> Invalid {
        Invalid {
            problem,
            message: message.into(),
        }
    }
}

/// Checks everything about `batch` that does not need the fleet's state.
pub(crate) fn check(
    batch: &Batch,
    limits: &IngestLimits,
    received: SystemTime,
) -> Result<(), Invalid> {
    let invalid = |msg: String| Invalid::new(Problem::InvalidValue, msg);
    if batch.schema != SCHEMA_VERSION {
        return Err(Invalid::new(
            Problem::UnknownSchema,
            format!(
                "schema = {}: this collector reads schema {SCHEMA_VERSION}",
                batch.schema
            ),
        ));
    }
    for (field, v, max) in [
        (
            "probe.src_region",
            batch.probe.src_region.as_str(),
            MAX_NAME_LEN,
        ),
        (
            "probe.probe_id",
            batch.probe.probe_id.as_str(),
            MAX_PROBE_ID_LEN,
        ),
        ("stream", batch.stream.as_str(), MAX_NAME_LEN),
    ] {
        if !valid_ident(v, max) {
            return Err(invalid(format!("{field} = {v:?}: {}", ident_rule(max))));
        }
    }
    if let Some(zone) = &batch.probe.zone
        && !valid_ident(zone, MAX_NAME_LEN)
    {
        return Err(invalid(format!(
            "probe.zone = {zone:?}: {}",
            ident_rule(MAX_NAME_LEN)
        )));
    }
    if batch.results.len() > limits.max_results_per_batch {
        return Err(Invalid::new(
            Problem::TooManyResults,
            format!(
                "results: {} in one batch, at most {}",
                batch.results.len(),
                limits.max_results_per_batch
            ),
        ));
    }
    let earliest = received - limits.max_result_age;
    let latest = received + limits.max_future;
    let in_window = |t: Timestamp| t.system_time() >= earliest && t.system_time() <= latest;
    if !in_window(batch.sent_at) {
        return Err(Invalid::new(
            Problem::BadTimestamp,
            format!(
                "sent_at = {}: {}",
                batch.sent_at,
                window_text(received, limits)
            ),
        ));
    }
    for (i, r) in batch.results.iter().enumerate() {
        round(i, r, &in_window, received, limits)?;
    }
    Ok(())
}

/// Checks the probe's clock as a header gave it (`name`): a clock that far
/// off would be recorded as the probe's offset.
pub(crate) fn probe_clock(
    name: &str,
    at: SystemTime,
    limits: &IngestLimits,
    received: SystemTime,
) -> Result<(), Invalid> {
    let earliest = received - limits.max_result_age;
    let latest = received + limits.max_future;
    if at < earliest || at > latest {
        return Err(Invalid::new(
            Problem::BadTimestamp,
            format!(
                "{name} = {}: {}",
                Timestamp::from(at),
                window_text(received, limits)
            ),
        ));
    }
    Ok(())
}

fn window_text(received: SystemTime, limits: &IngestLimits) -> String {
    format!(
        "outside the accepted window ({} before to {} after the collector's clock, {})",
        humantime::format_duration(limits.max_result_age),
        humantime::format_duration(limits.max_future),
        Timestamp::from(received)
    )
}

fn round(
    i: usize,
    r: &RoundResult,
    in_window: &dyn Fn(Timestamp) -> bool,
    received: SystemTime,
    limits: &IngestLimits,
) -> Result<(), Invalid> {
    let invalid = |msg: String| Err(Invalid::new(Problem::InvalidValue, msg));
    let at = format!("results[{i}]");
    if r.target.is_empty()
        || r.target.len() > MAX_TARGET_LEN
        || r.target.chars().any(char::is_control)
    {
        return invalid(format!(
            "{at}.target = {:?}: must be 1-{MAX_TARGET_LEN} printable characters",
            r.target
        ));
    }
    if r.host.is_empty() || r.host.len() > MAX_HOST_LEN || r.host.chars().any(char::is_control) {
        return invalid(format!(
            "{at}.host = {:?}: must be 1-{MAX_HOST_LEN} printable characters",
            r.host
        ));
    }
    if r.port == 0 {
        return invalid(format!("{at}.port = 0: must be 1-65535"));
    }
    if r.labels.len() > MAX_LABELS {
        return invalid(format!(
            "{at}.labels: {} labels, at most {MAX_LABELS}",
            r.labels.len()
        ));
    }
    for (k, v) in r.labels.iter() {
        if let Err(problem) = check_label(k, v) {
            return invalid(format!("{at}.labels.{k} = {v:?}: {}", problem.rule(k)));
        }
    }
    if !in_window(r.started_at) {
        return Err(Invalid::new(
            Problem::BadTimestamp,
            format!(
                "{at}.started_at = {}: {}",
                r.started_at,
                window_text(received, limits)
            ),
        ));
    }
    if let Some(d) = &r.dns {
        if d.duration_us > MAX_DURATION_US {
            return invalid(format!(
                "{at}.dns.duration_us = {}: above 1 h",
                d.duration_us
            ));
        }
        if d.addresses > 1024 {
            return invalid(format!(
                "{at}.dns.addresses = {}: at most 1024",
                d.addresses
            ));
        }
    }
    if r.attempts.len() > MAX_ATTEMPTS_PER_ROUND {
        return invalid(format!(
            "{at}.attempts: {} in one round, at most {MAX_ATTEMPTS_PER_ROUND}",
            r.attempts.len()
        ));
    }
    for (j, a) in r.attempts.iter().enumerate() {
        attempt(
            &format!("{at}.attempts[{j}]"),
            a,
            r.port,
            in_window,
            received,
            limits,
        )?;
    }
    Ok(())
}

/// One connect attempt of a round on `port`, named `at` in messages.
fn attempt(
    at: &str,
    a: &ConnectAttempt,
    port: u16,
    in_window: &dyn Fn(Timestamp) -> bool,
    received: SystemTime,
    limits: &IngestLimits,
) -> Result<(), Invalid> {
    let invalid = |msg: String| Err(Invalid::new(Problem::InvalidValue, msg));
    if a.duration_us > MAX_DURATION_US {
        return invalid(format!("{at}.duration_us = {}: above 1 h", a.duration_us));
    }
    if let Some(rtt) = a.rtt_us
        && (rtt > MAX_RTT_US || u64::from(rtt) > a.duration_us.saturating_add(1_000_000))
    {
        return invalid(format!(
            "{at}.rtt_us = {rtt}: above 60 s or far above the connect's duration ({} us)",
            a.duration_us
        ));
    }
    if a.syn_retransmits > MAX_SYN_RETRANSMITS {
        return invalid(format!(
            "{at}.syn_retransmits = {}: at most {MAX_SYN_RETRANSMITS}",
            a.syn_retransmits
        ));
    }
    if !in_window(a.started_at) {
        return Err(Invalid::new(
            Problem::BadTimestamp,
            format!(
                "{at}.started_at = {}: {}",
                a.started_at,
                window_text(received, limits)
            ),
        ));
    }
    if a.address.port() != port {
        return invalid(format!(
            "{at}.address = {}: not the round's port {}",
            a.address, port
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use vantage_probe::outcome::{ConnectOutcome, DnsOutcome};
    use vantage_probe::result::{
        ConnectAttempt, DnsObservation, Identity, MAX_LABEL_NAME_LEN, MAX_LABEL_VALUE_LEN,
        MAX_NAME_LEN, MAX_PROBE_ID_LEN, RoundResult, Timestamp,
    };
    use vantage_probe::wire::{Batch, MAX_ATTEMPTS_PER_ROUND, SCHEMA_VERSION};

    use super::*;
    use crate::config::default::{BATCH_ENVELOPE_BYTES, MAX_RESULT_JSON_BYTES};

    /// The widest of `values` as serde names it.
    fn longest<T: serde::Serialize + Copy>(values: &[T]) -> T {
        *values
            .iter()
            .max_by_key(|v| serde_json::to_string(v).unwrap().len())
            .unwrap()
    }

    /// A result at every limit `check` holds it to, each string made of
    /// characters JSON escapes (`"` takes two bytes).
    fn widest_result(now: Timestamp) -> RoundResult {
        let wide = Ipv6Addr::from([0xffff; 8]);
        let address = SocketAddr::V6(SocketAddrV6::new(wide, 65535, 0, u32::MAX));
        let labels = (0..MAX_LABELS)
            .map(|i| {
                let name = format!("{:a<width$}", format!("l{i:x}"), width = MAX_LABEL_NAME_LEN);
                (name, "\"".repeat(MAX_LABEL_VALUE_LEN))
            })
            .collect::<BTreeMap<_, _>>();
        let attempt = ConnectAttempt {
            address,
            local: Some(address),
            started_at: now,
            outcome: longest(&ConnectOutcome::ALL),
            duration_us: MAX_DURATION_US,
            rtt_us: Some(MAX_RTT_US),
            syn_retransmits: MAX_SYN_RETRANSMITS,
            errno: Some(i32::MIN),
            icmp_from: Some(wide.into()),
        };
        RoundResult {
            target: "\"".repeat(MAX_TARGET_LEN).into(),
            host: "\"".repeat(MAX_HOST_LEN).into(),
            port: 65535,
            labels: Arc::new(labels),
            started_at: now,
            dns: Some(DnsObservation {
                outcome: longest(&DnsOutcome::ALL),
                duration_us: MAX_DURATION_US,
                addresses: 1024,
            }),
            attempts: vec![attempt; MAX_ATTEMPTS_PER_ROUND],
        }
    }

    fn limits() -> IngestLimits {
        IngestLimits {
            max_body_bytes: 1 << 20,
            max_decompressed_bytes: 1 << 20,
            max_results_per_batch: 10,
            max_concurrent_decodes: 1,
            max_targets_per_probe: 10,
            max_series_per_region: 10_000,
            max_series: 10_000,
            max_batches_per_second: 10,
            max_result_age: Duration::from_secs(3600),
            max_future: Duration::from_secs(300),
        }
    }

    /// The decompressed cap is derived from these two figures: a batch of
    /// `max_results_per_batch` valid results always fits under it.
    #[test]
    fn the_widest_valid_result_fits_the_decompressed_cap() {
        let received = SystemTime::now();
        let now = Timestamp::from(received);
        let batch = Batch {
            schema: SCHEMA_VERSION,
            probe: Identity {
                src_region: "r".repeat(MAX_NAME_LEN),
                zone: Some("z".repeat(MAX_NAME_LEN)),
                probe_id: "p".repeat(MAX_PROBE_ID_LEN),
            },
            stream: "s".repeat(MAX_NAME_LEN),
            seq: u64::MAX,
            sent_at: now,
            results: vec![widest_result(now)],
            last: true,
        };
        check(&batch, &limits(), received).expect("the widest result is valid");
        let one = serde_json::to_vec(&batch).unwrap().len();
        let envelope = serde_json::to_vec(&Batch {
            results: Vec::new(),
            ..batch.clone()
        })
        .unwrap()
        .len();
        let result = one - envelope;
        assert!(
            result <= MAX_RESULT_JSON_BYTES,
            "the widest valid result takes {result} bytes, over {MAX_RESULT_JSON_BYTES}"
        );
        assert!(
            result > MAX_RESULT_JSON_BYTES * 3 / 4,
            "{result} bytes: MAX_RESULT_JSON_BYTES ({MAX_RESULT_JSON_BYTES}) is loose"
        );
        assert!(
            envelope <= BATCH_ENVELOPE_BYTES,
            "the envelope takes {envelope} bytes"
        );
        // And one field past its limit is refused: the figure covers
        // everything `check` lets through.
        for wider in [
            |r: &mut RoundResult| r.host = "h".repeat(MAX_HOST_LEN + 1).into(),
            |r: &mut RoundResult| r.target = "t".repeat(MAX_TARGET_LEN + 1).into(),
            |r: &mut RoundResult| {
                let a = r.attempts[0].clone();
                r.attempts.push(a);
            },
            |r: &mut RoundResult| {
                Arc::make_mut(&mut r.labels).insert("extra".into(), "v".into());
            },
            |r: &mut RoundResult| {
                Arc::make_mut(&mut r.labels).insert("a".repeat(MAX_LABEL_NAME_LEN + 1), "v".into());
            },
        ] {
            let mut b = batch.clone();
            wider(&mut b.results[0]);
            assert!(check(&b, &limits(), received).is_err());
        }
    }
}
