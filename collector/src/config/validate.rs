//! The raw file to a validated [`Config`]: every value checked, every
//! problem collected, in the order found.

use std::path::Path;
use std::time::Duration;

use vantage_probe::config::file::{Kind, read_text};
use vantage_probe::config::span::{Checker, Loc, Problem};
use vantage_probe::result::{MAX_NAME_LEN, MAX_PROBE_ID_LEN, ident_rule};
use vantage_probe::stats::MAX_SERIES_PER_TARGET;

use super::raw::{Raw, RawEvidence, RawLimits, RawProbes, RawServer, RawToken, S};
use super::{
    Config, ConnectionLimits, EvidencePolicy, IngestLimits, ProbePolicy, Retention,
    SERIES_PER_PROBE, TokenBinding, ceiling, default, file_sd, valid_ident,
};

/// Checks `raw`, deserialized from `text`; paths are relative to `base`.
pub(super) fn validate(raw: &Raw, text: &str, base: &Path) -> Result<Config, Vec<Problem>> {
    let mut c = Checker::new(text);
    let server = server(&mut c, &raw.server, base);
    let (tokens, token_files) = tokens(&mut c, &raw.tokens, base);
    let watch_every = duration_or(
        &mut c,
        &raw.server.watch_every,
        "server.watch_every",
        default::WATCH_EVERY,
    )
    .unwrap_or_default();
    let connections = connections(&mut c, &raw.server);
    let retention = retention(&mut c, raw);
    let limits = limits(&mut c, &raw.limits);
    let probes = probes(&mut c, &raw.probes);
    let evidence = evidence(&mut c, &raw.evidence);
    let mut inventory = Vec::new();
    for (i, f) in raw.inventory.file_sd.iter().enumerate() {
        let path = base.join(f.get_ref());
        match file_sd::read(&path) {
            Ok(_) => inventory.push(path),
            Err(e) => c.bad_debug(f, &format!("inventory.file_sd[{i}]"), &e),
        }
    }
    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    let (Some(fleet), Some(listen), Some(data_dir), Some(retention)) =
        (server.fleet, server.listen, server.data_dir, retention)
    else {
        unreachable!("a missing value always records a problem");
    };
    Ok(Config {
        fleet,
        listen,
        data_dir,
        tls: server.tls,
        watch_every,
        connections,
        tokens,
        token_files,
        retention,
        limits,
        probes,
        inventory,
        evidence,
    })
}

/// The `[server]` section, each part `None` when it has a problem.
struct Server {
    fleet: Option<String>,
    listen: Option<std::net::SocketAddr>,
    data_dir: Option<std::path::PathBuf>,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

fn server(c: &mut Checker, s: &RawServer, base: &Path) -> Server {
    let listen = match &s.listen {
        Some(v) => c.parse_with(
            v,
            "server.listen",
            "must be an IP:port like \"0.0.0.0:9640\"",
        ),
        None => Some(default::LISTEN),
    };
    let fleet = match &s.fleet {
        Some(v) if valid_ident(v.get_ref()) => Some(v.get_ref().clone()),
        Some(v) => {
            c.bad_debug(v, "server.fleet", &ident_rule(MAX_NAME_LEN));
            None
        }
        None => Some(default::FLEET.to_string()),
    };
    let data_dir = match &s.data_dir {
        Some(v) if v.get_ref().is_empty() => {
            c.bad_debug(v, "server.data_dir", "must not be empty");
            None
        }
        Some(v) => Some(base.join(v.get_ref())),
        None => {
            missing(c, "server.data_dir", "where the store keeps its data");
            None
        }
    };
    let tls = match (&s.tls_cert_file, &s.tls_key_file) {
        (None, None) => None,
        (Some(cert), Some(k)) => Some((base.join(cert.get_ref()), base.join(k.get_ref()))),
        (Some(v), None) | (None, Some(v)) => {
            c.bad_debug(
                v,
                "server.tls_cert_file / tls_key_file",
                "set both, or neither for plain HTTP",
            );
            None
        }
    };
    Server {
        fleet,
        listen,
        data_dir,
        tls,
    }
}

/// The connection limits of `[server]`.
fn connections(c: &mut Checker, s: &RawServer) -> ConnectionLimits {
    let mut timeout = |v: &Option<S<String>>, name: &str, default: Duration| {
        timeout_or(c, v, &format!("server.{name}"), default).unwrap_or(default)
    };
    let header_read_timeout = timeout(
        &s.header_read_timeout,
        "header_read_timeout",
        default::HEADER_READ_TIMEOUT,
    );
    let body_read_timeout = timeout(
        &s.body_read_timeout,
        "body_read_timeout",
        default::BODY_READ_TIMEOUT,
    );
    let idle_timeout = timeout(&s.idle_timeout, "idle_timeout", default::IDLE_TIMEOUT);
    let tls_handshake_timeout = timeout(
        &s.tls_handshake_timeout,
        "tls_handshake_timeout",
        default::TLS_HANDSHAKE_TIMEOUT,
    );
    ConnectionLimits {
        header_read_timeout,
        body_read_timeout,
        idle_timeout,
        tls_handshake_timeout,
        max_connections: count_or(
            c,
            &s.max_connections,
            "server.max_connections",
            ceiling::MAX_CONNECTIONS,
            default::MAX_CONNECTIONS,
        )
        .unwrap_or(0),
    }
}

/// The bindings, and the files tokens were read from.
fn tokens(
    c: &mut Checker,
    raw: &[S<RawToken>],
    base: &Path,
) -> (Vec<TokenBinding>, Vec<std::path::PathBuf>) {
    let token_files = raw
        .iter()
        .filter_map(|t| t.get_ref().token_file.as_ref())
        .map(|f| base.join(f.get_ref()))
        .collect();
    let mut tokens: Vec<(usize, TokenBinding)> = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let Some(b) = token(c, i, t, base) else {
            continue;
        };
        // Put on the second binding, at its line; the secret is never shown.
        if let Some((first, _)) = tokens.iter().find(|(_, a)| a.token == b.token) {
            let loc = c.loc(t);
            c.push(
                &loc,
                format!("tokens[{i}]"),
                None,
                format!(
                    "the same token as tokens[{first}] (line {}); a token names exactly one region",
                    c.loc(&raw[*first]).line.unwrap_or_default()
                ),
            );
        }
        tokens.push((i, b));
    }
    (tokens.into_iter().map(|(_, b)| b).collect(), token_files)
}

fn token(c: &mut Checker, i: usize, t: &S<RawToken>, base: &Path) -> Option<TokenBinding> {
    let r = t.get_ref();
    let field = format!("tokens[{i}]");
    let loc = c.loc(t);
    let token = match (&r.token, &r.token_file) {
        (Some(v), None) => Some(v.get_ref().trim().to_string()),
        (None, Some(f)) => {
            let path = base.join(f.get_ref());
            match read_text(&path, Kind::Token) {
                Ok(s) => Some(s.trim().to_string()),
                Err(e) => {
                    c.bad_debug(f, &format!("{field}.token_file"), &e.to_string());
                    None
                }
            }
        }
        _ => {
            c.push(
                &loc,
                field.clone(),
                None,
                "set exactly one of token and token_file",
            );
            None
        }
    };
    // Never echo a secret into an error message.
    if let Some(tok) = &token
        && tok.len() < vantage_probe::wire::MIN_TOKEN_LEN
    {
        c.push(
            &loc,
            field.clone(),
            None,
            format!(
                "the token is {} characters long; use at least {} (e.g. `openssl rand -hex 32`)",
                tok.len(),
                vantage_probe::wire::MIN_TOKEN_LEN
            ),
        );
    }
    let src_region = match &r.src_region {
        Some(v) if valid_ident(v.get_ref()) => Some(v.get_ref().clone()),
        Some(v) => {
            c.bad_debug(v, &format!("{field}.src_region"), &ident_rule(MAX_NAME_LEN));
            None
        }
        None => {
            c.push(
                &loc,
                format!("{field}.src_region"),
                None,
                "required (the one region this token may report for)",
            );
            None
        }
    };
    let probe_ids = r.probe_ids.as_ref().map(|ids| {
        ids.iter()
            .filter_map(|v| {
                if vantage_probe::result::valid_ident(v.get_ref(), MAX_PROBE_ID_LEN) {
                    Some(v.get_ref().clone())
                } else {
                    let field = format!("{field}.probe_ids");
                    c.bad_debug(v, &field, &ident_rule(MAX_PROBE_ID_LEN));
                    None
                }
            })
            .collect()
    });
    Some(TokenBinding {
        token: token?,
        src_region: src_region?,
        probe_ids,
    })
}

fn retention(c: &mut Checker, raw: &Raw) -> Option<Retention> {
    let r = &raw.retention;
    let rollups = duration_or(c, &r.rollups, "retention.rollups", default::ROLLUPS);
    let failures = duration_or(c, &r.failures, "retention.failures", default::FAILURES);
    let receipts = duration_or(c, &r.receipts, "retention.receipts", default::RECEIPTS);
    Some(Retention {
        rollups: rollups?,
        failures: failures?,
        receipts: receipts?,
    })
}

pub(super) fn limits(c: &mut Checker, l: &RawLimits) -> IngestLimits {
    let max_body_bytes = count_or(
        c,
        &l.max_body_bytes,
        "limits.max_body_bytes",
        ceiling::MAX_BODY_BYTES,
        default::MAX_BODY_BYTES,
    );
    let (max_series_per_region, max_series) = series(c, l);
    let max_results_per_batch = count_or(
        c,
        &l.max_results_per_batch,
        "limits.max_results_per_batch",
        ceiling::MAX_RESULTS_PER_BATCH,
        default::MAX_RESULTS_PER_BATCH,
    )
    .unwrap_or(0);
    IngestLimits {
        max_body_bytes: max_body_bytes.unwrap_or(0),
        max_decompressed_bytes: max_decompressed_bytes(
            max_body_bytes.unwrap_or(0),
            max_results_per_batch,
        ),
        max_results_per_batch,
        max_targets_per_probe: count_or(
            c,
            &l.max_targets_per_probe,
            "limits.max_targets_per_probe",
            ceiling::MAX_TARGETS_PER_PROBE,
            default::MAX_TARGETS_PER_PROBE,
        )
        .unwrap_or(0),
        max_series_per_region,
        max_series,
        max_batches_per_second: count_or(
            c,
            &l.max_batches_per_second,
            "limits.max_batches_per_second",
            ceiling::MAX_BATCHES_PER_SECOND,
            default::MAX_BATCHES_PER_SECOND,
        )
        .unwrap_or(0) as u32,
        max_result_age: duration_or(
            c,
            &l.max_result_age,
            "limits.max_result_age",
            default::MAX_RESULT_AGE,
        )
        .unwrap_or_default(),
        max_future: duration_or(c, &l.max_future, "limits.max_future", default::MAX_FUTURE)
            .unwrap_or_default(),
        max_concurrent_decodes: count_or(
            c,
            &l.max_concurrent_decodes,
            "limits.max_concurrent_decodes",
            ceiling::MAX_CONCURRENT_DECODES,
            default::max_concurrent_decodes(),
        )
        .unwrap_or(0),
    }
}

/// `limits.max_series_per_region` and `limits.max_series`: each at least
/// one probe with one target, and a region's bound no more than the
/// fleet's.
fn series(c: &mut Checker, l: &RawLimits) -> (usize, usize) {
    let least = SERIES_PER_PROBE + MAX_SERIES_PER_TARGET;
    let mut one = |v: &Option<S<i64>>, field: &str, default: usize| {
        let n = count_or(c, v, field, ceiling::MAX_SERIES, default)?;
        match v {
            Some(v) if n < least => {
                let reason = format!(
                    "must be at least {least}: one probe ({SERIES_PER_PROBE} series) with one target (at most {MAX_SERIES_PER_TARGET})"
                );
                c.bad_debug(v, field, &reason);
                None
            }
            _ => Some(n),
        }
    };
    let region = one(
        &l.max_series_per_region,
        "limits.max_series_per_region",
        default::MAX_SERIES_PER_REGION,
    );
    let total = one(&l.max_series, "limits.max_series", default::MAX_SERIES);
    if let (Some(r), Some(t)) = (region, total)
        && r > t
    {
        // Put on the one the file set (the region's when both are).
        let problem = match (&l.max_series_per_region, &l.max_series) {
            (Some(v), _) => Some((
                v,
                "limits.max_series_per_region",
                "at most limits.max_series",
                t,
            )),
            (None, Some(v)) => Some((
                v,
                "limits.max_series",
                "at least limits.max_series_per_region",
                r,
            )),
            (None, None) => None,
        };
        if let Some((v, field, relation, value)) = problem {
            c.bad_debug(v, field, &format!("must be {relation} ({value})"));
        }
    }
    (region.unwrap_or(0), total.unwrap_or(0))
}

/// The most a body may decompress to: what `max_results` results and their
/// batch can take as JSON, never more than the compressed cap allows at
/// [`default::DECOMPRESSION_RATIO`] nor above the ceiling.
pub(super) fn max_decompressed_bytes(max_body_bytes: usize, max_results: usize) -> usize {
    max_results
        .saturating_mul(default::MAX_RESULT_JSON_BYTES)
        .saturating_add(default::BATCH_ENVELOPE_BYTES)
        .min(max_body_bytes.saturating_mul(default::DECOMPRESSION_RATIO))
        .min(ceiling::MAX_DECOMPRESSED_BYTES)
}

fn probes(c: &mut Checker, p: &RawProbes) -> ProbePolicy {
    let silent_after = duration_or(
        c,
        &p.silent_after,
        "probes.silent_after",
        default::SILENT_AFTER,
    );
    let forget_after = duration_or(
        c,
        &p.forget_after,
        "probes.forget_after",
        default::FORGET_AFTER,
    );
    let max_clock_offset = duration_or(
        c,
        &p.max_clock_offset,
        "probes.max_clock_offset",
        default::MAX_CLOCK_OFFSET,
    );
    if let (Some(silent), Some(forget)) = (silent_after, forget_after)
        && forget <= silent
    {
        rule(
            c,
            Pair {
                name: "probes.forget_after",
                value: forget,
                raw: &p.forget_after,
            },
            "must be longer than",
            Pair {
                name: "probes.silent_after",
                value: silent,
                raw: &p.silent_after,
            },
        );
    }
    ProbePolicy {
        silent_after: silent_after.unwrap_or_default(),
        forget_after: forget_after.unwrap_or_default(),
        max_clock_offset: max_clock_offset.unwrap_or_default(),
    }
}

fn evidence(c: &mut Checker, e: &RawEvidence) -> EvidencePolicy {
    let field = |name: &str| format!("evidence.{name}");
    let evaluate_every = duration_or(
        c,
        &e.evaluate_every,
        &field("evaluate_every"),
        default::EVALUATE_EVERY,
    );
    let recent = duration_or(c, &e.recent, &field("recent"), default::RECENT);
    let baseline = duration_or(c, &e.baseline, &field("baseline"), default::BASELINE);
    let resolve_after = duration_or(
        c,
        &e.resolve_after,
        &field("resolve_after"),
        default::RESOLVE_AFTER,
    );
    if let (Some(every), Some(after)) = (evaluate_every, resolve_after)
        && after < every
    {
        rule(
            c,
            Pair {
                name: "evidence.resolve_after",
                value: after,
                raw: &e.resolve_after,
            },
            "must be at least",
            Pair {
                name: "evidence.evaluate_every",
                value: every,
                raw: &e.evaluate_every,
            },
        );
    }
    EvidencePolicy {
        evaluate_every: evaluate_every.unwrap_or_default(),
        recent: recent.unwrap_or_default(),
        baseline: baseline.unwrap_or_default(),
        resolve_after: resolve_after.unwrap_or_default(),
    }
}

/// One side of a rule across two duration fields.
struct Pair<'a> {
    name: &'a str,
    value: Duration,
    raw: &'a Option<S<String>>,
}

/// `a` `relation` `b` does not hold. The problem is put on `a`, the field
/// the rule is written for, at its line; when `a` was left to its default
/// it is put on `b`, the one the file set.
fn rule(c: &mut Checker, a: Pair<'_>, relation: &str, b: Pair<'_>) {
    let shown = |p: &Pair<'_>| match p.raw {
        Some(v) => format!("{:?}", v.get_ref()),
        None => format!("{} (the default)", humantime::format_duration(p.value)),
    };
    let (blamed, other) = if a.raw.is_some() || b.raw.is_none() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    let reason = if blamed.name == a.name {
        format!(
            "{relation} {} ({})",
            b.name,
            humantime::format_duration(b.value)
        )
    } else {
        format!(
            "{} ({}, the default) {relation} it",
            other.name,
            humantime::format_duration(other.value)
        )
    };
    let loc = match blamed.raw {
        Some(v) => c.loc(v),
        None => Loc::default(),
    };
    c.push(&loc, blamed.name, Some(shown(blamed)), reason);
}

/// A required setting that is not there.
fn missing(c: &mut Checker, field: &str, what: &str) {
    c.push(&Loc::default(), field, None, format!("required ({what})"));
}

/// A duration longer than zero, `default` when unset.
fn duration_or(
    c: &mut Checker,
    v: &Option<S<String>>,
    field: &str,
    default: Duration,
) -> Option<Duration> {
    let Some(v) = v else {
        return Some(default);
    };
    match humantime::parse_duration(v.get_ref()) {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            c.bad_debug(v, field, "must be longer than zero");
            None
        }
        Err(e) => {
            let reason = format!("not a duration ({e}); write it like \"60s\" or \"30d\"");
            c.bad_debug(v, field, &reason);
            None
        }
    }
}

/// A duration longer than zero and at most [`ceiling::TIMEOUT`], `default`
/// when unset.
fn timeout_or(
    c: &mut Checker,
    v: &Option<S<String>>,
    field: &str,
    default: Duration,
) -> Option<Duration> {
    let d = duration_or(c, v, field, default)?;
    match v {
        Some(v) if d > ceiling::TIMEOUT => {
            let reason = format!(
                "must be at most {}; a longer timeout is none",
                humantime::format_duration(ceiling::TIMEOUT)
            );
            c.bad_debug(v, field, &reason);
            None
        }
        _ => Some(d),
    }
}

/// A count between 1 and `max`, `default` when unset.
fn count_or(
    c: &mut Checker,
    v: &Option<S<i64>>,
    field: &str,
    max: i64,
    default: usize,
) -> Option<usize> {
    match v {
        None => Some(default),
        Some(v) => c.count(v, field, max).map(|n| n as usize),
    }
}
