//! Checks a decoded batch before anything of it is stored. The first problem
//! found refuses the whole batch, with a message that names the field and
//! the value, so the probe's operator can find the bug.

use std::time::SystemTime;

use vantage_probe::result::{ConnectAttempt, RoundResult, Timestamp};
use vantage_probe::wire::{Batch, SCHEMA_VERSION};

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
/// Most addresses one round may try.
const MAX_ATTEMPTS_PER_ROUND: usize = 64;
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
    if r.target.is_empty() || r.target.len() > 128 || r.target.chars().any(char::is_control) {
        return invalid(format!(
            "{at}.target = {:?}: must be 1-128 printable characters",
            r.target
        ));
    }
    if r.port == 0 {
        return invalid(format!("{at}.port = 0: must be 1-65535"));
    }
    if r.labels.len() > 16 {
        return invalid(format!(
            "{at}.labels: {} labels, at most 16",
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
