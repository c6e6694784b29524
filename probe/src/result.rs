//! The result record: what one probe round measured, as it travels to the
//! collector and into `check --json`.
//!
//! Durations are integer microseconds (`_us`), wall-clock instants are
//! RFC 3339 UTC strings. A round is one target at one scheduled time: the DNS
//! lookup (when the host is a name) and one connect attempt per address.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::outcome::{ConnectOutcome, DnsOutcome};

/// Who measured. Configured explicitly, never guessed: evidence from a probe
/// that guessed its region would lie about where a fault is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The region the probe runs in, e.g. `us-east-2`.
    pub src_region: String,
    /// The zone inside the region, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// This probe's id, unique in the fleet.
    pub probe_id: String,
}

/// The longest region, zone (or fleet) name: a DNS label.
pub const MAX_NAME_LEN: usize = 63;
/// The longest probe id: a Kubernetes object name, since probes take their
/// id from their pod's name.
pub const MAX_PROBE_ID_LEN: usize = 253;

/// Whether `s` is a valid identity value of at most `max` characters:
/// letters, digits, `-`, `_` and `.`. The probe checks its config and the
/// collector every batch by this one rule.
pub fn valid_ident(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The rule in words, for error messages.
pub fn ident_rule(max: usize) -> String {
    format!("must be 1-{max} characters of letters, digits, '-', '_' or '.'")
}

/// Label names the probe and the collector set on their series; a target's
/// own label may not shadow one (Prometheus refuses a whole scrape with a
/// duplicate label name).
pub const RESERVED_LABELS: [&str; 9] = [
    "target",
    "family",
    "reason",
    "outcome",
    "src_region",
    "le",
    "instance",
    "job",
    "name",
];

/// The longest label value.
pub const MAX_LABEL_VALUE_LEN: usize = 128;
/// The longest label name.
pub const MAX_LABEL_NAME_LEN: usize = 128;

/// Why a target's label cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelProblem {
    /// Not letters, digits and `_` starting with a letter or `_`, or it
    /// starts with `__` (reserved by Prometheus), or longer than
    /// [`MAX_LABEL_NAME_LEN`].
    BadName,
    /// One of [`RESERVED_LABELS`].
    Reserved,
    /// Empty, over [`MAX_LABEL_VALUE_LEN`], or with a control character.
    BadValue,
}

impl LabelProblem {
    /// The rule in words, for error messages; `name` is the label's name.
    pub fn rule(self, name: &str) -> String {
        match self {
            LabelProblem::BadName => {
                format!(
                    "label names are 1-{MAX_LABEL_NAME_LEN} lowercase letters, digits and '_' (snake_case, as Prometheus lints them), not starting with a digit or '__'"
                )
            }
            LabelProblem::Reserved => {
                format!("'{name}' is set by the probe itself; pick another label name")
            }
            LabelProblem::BadValue => {
                format!("must be 1-{MAX_LABEL_VALUE_LEN} printable characters")
            }
        }
    }
}

/// Checks a target's label: the probe checks its config and the collector
/// every batch by this one rule, so what is stored can always be exposed.
pub fn check_label(name: &str, value: &str) -> Result<(), LabelProblem> {
    let name_ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.starts_with("__")
        && name.len() <= MAX_LABEL_NAME_LEN;
    if !name_ok {
        Err(LabelProblem::BadName)
    } else if RESERVED_LABELS.contains(&name) {
        Err(LabelProblem::Reserved)
    } else if value.is_empty()
        || value.len() > MAX_LABEL_VALUE_LEN
        || value.chars().any(char::is_control)
    {
        Err(LabelProblem::BadValue)
    } else {
        Ok(())
    }
}

/// One target measured once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundResult {
    /// The target's configured name.
    pub target: Arc<str>,
    /// The host as configured: a name or an IP literal.
    pub host: Arc<str>,
    /// The TCP port every attempt of the round connects to.
    pub port: u16,
    /// The target's configured labels (`service`, `provider`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Arc<BTreeMap<String, String>>,
    /// When the round started (the DNS lookup, or the first connect).
    pub started_at: Timestamp,
    /// The DNS lookup; absent when the host is an IP literal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsObservation>,
    /// One attempt per resolved address; empty when DNS failed.
    pub attempts: Vec<ConnectAttempt>,
}

/// A timed DNS lookup of a target's host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsObservation {
    /// How the lookup ended.
    pub outcome: DnsOutcome,
    /// From the first query sent to the last answer (A and AAAA run in parallel).
    pub duration_us: u64,
    /// How many addresses came back.
    pub addresses: u32,
}

/// One TCP connect attempt to one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectAttempt {
    /// The address connected to.
    pub address: SocketAddr,
    /// The local address and port of the attempt: what finds it in a packet capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<SocketAddr>,
    /// When `connect(2)` was called.
    pub started_at: Timestamp,
    /// How the attempt ended.
    pub outcome: ConnectOutcome,
    /// Wall-clock time from `connect(2)` to its completion or to the timeout.
    pub duration_us: u64,
    /// The kernel's SYN -> SYN-ACK round trip (`tcpi_rtt`), on success of
    /// a handshake that was not retransmitted. Absent when the handshake
    /// was (`syn_retransmits` > 0): the kernel then has no true sample
    /// (Karn's rule leaves a placeholder, or the time since the first
    /// SYN), and the attempt is loss evidence, not a latency. See
    /// [`ConnectAttempt::rtt_sample`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<u32>,
    /// SYNs sent again because the first got no answer (`tcpi_total_retrans`).
    /// One lost SYN turns a 1 ms connect into a 1 s one.
    pub syn_retransmits: u32,
    /// The raw errno behind a failure, for the detailed record only (never a label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    /// Who answered the SYN with an ICMP unreachable: the router where the
    /// path broke, or the target host. For the detailed record only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_from: Option<IpAddr>,
}

/// A wall-clock instant, serialized as RFC 3339 UTC with microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(SystemTime);

impl ConnectAttempt {
    /// The attempt's round trip as a latency measurement: only from a
    /// successful handshake that no side retransmitted. A lost SYN, or a
    /// lost SYN-ACK (which the probe sees as its own SYN sent again),
    /// leaves the kernel without a sample: its figure is a placeholder
    /// (about 1 ms) or the retransmission timeout (about 1, 2, 3 s), and
    /// would read as delay. Older probes sent it; it is ignored here for
    /// every statistic.
    pub fn rtt_sample(&self) -> Option<u32> {
        self.rtt_us
            .filter(|_| self.outcome == ConnectOutcome::Ok && self.syn_retransmits == 0)
    }
    /// The SYNs this attempt sent and how many went unanswered: none
    /// sent when it failed before the wire (a local error); one more per
    /// retransmit, each following a lost one; and the last one lost too
    /// when the attempt timed out.
    pub fn syns(&self) -> (u64, u64) {
        if self.outcome.blame() == crate::outcome::Blame::Local {
            return (0, 0);
        }
        let retransmits = u64::from(self.syn_retransmits);
        let timed_out = u64::from(self.outcome == ConnectOutcome::Timeout);
        (1 + retransmits, retransmits + timed_out)
    }
}

impl RoundResult {
    /// Whether every attempt of the round connected (and DNS, if any, succeeded).
    pub fn is_ok(&self) -> bool {
        self.dns
            .as_ref()
            .is_none_or(|d| d.outcome == DnsOutcome::Ok)
            && !self.attempts.is_empty()
            && self
                .attempts
                .iter()
                .all(|a| a.outcome == ConnectOutcome::Ok)
    }
}

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        Timestamp(SystemTime::now())
    }

    /// A timestamp from microseconds since the Unix epoch.
    pub fn from_unix_micros(us: u64) -> Timestamp {
        Timestamp(UNIX_EPOCH + Duration::from_micros(us))
    }

    /// Microseconds since the Unix epoch (0 for instants before it).
    pub fn unix_micros(self) -> u64 {
        self.0
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0)
    }

    /// The instant as a `SystemTime`.
    pub fn system_time(self) -> SystemTime {
        self.0
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Timestamp {
        Timestamp(t)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_micros(self.0))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse_rfc3339(&s)
            .map(Timestamp)
            .map_err(|e| serde::de::Error::custom(format_args!("timestamp {s:?}: {e}")))
    }
}

/// An RFC 3339 date and time with its offset: `Z` (either case) or a
/// numeric one such as `+02:00`, seconds with up to nine decimals. What
/// the probe sends is always UTC (`Z`); what it reads may come from other
/// tools.
pub fn parse_rfc3339(s: &str) -> Result<SystemTime, String> {
    let (local, offset_s) = match s.len().checked_sub(6).map(|i| (i, &s.as_bytes()[i..])) {
        Some((i, [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]))
            if [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()) =>
        {
            let (h, m) = (
                i64::from((h1 - b'0') * 10 + (h2 - b'0')),
                i64::from((m1 - b'0') * 10 + (m2 - b'0')),
            );
            if h > 23 || m > 59 {
                return Err(format!("offset {} is not a time zone", &s[i..]));
            }
            let sign = if *sign == b'-' { -1 } else { 1 };
            (&s[..i], sign * (h * 3600 + m * 60))
        }
        _ => match s.strip_suffix(['Z', 'z']) {
            Some(local) => (local, 0),
            None => return Err("no time zone: end it with Z or an offset such as +02:00".into()),
        },
    };
    let utc_clock = humantime::parse_rfc3339(&format!("{local}Z")).map_err(|e| e.to_string())?;
    let offset = std::time::Duration::from_secs(offset_s.unsigned_abs());
    // Local time is UTC plus the offset.
    let t = if offset_s >= 0 {
        utc_clock.checked_sub(offset)
    } else {
        utc_clock.checked_add(offset)
    };
    t.ok_or_else(|| "out of range".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_is_the_same_instant_as_utc() {
        let utc = parse_rfc3339("2026-12-02T05:07:06.250Z").unwrap();
        assert_eq!(parse_rfc3339("2026-12-02T07:07:06.250+02:00").unwrap(), utc);
        assert_eq!(parse_rfc3339("2026-12-01T23:37:06.250-05:30").unwrap(), utc);
        assert_eq!(parse_rfc3339("2026-12-02T05:07:06.250z").unwrap(), utc);
        assert_eq!(parse_rfc3339("2026-12-02T05:07:06.250+00:00").unwrap(), utc);
        for bad in [
            "2026-12-02T05:07:06",
            "2026-12-02T05:07:06+24:00",
            "2026-12-02T05:07:06+0200",
            "yesterday",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    fn sample() -> RoundResult {
        RoundResult {
            target: "api".into(),
            host: "api.internal".into(),
            port: 443,
            labels: Arc::new(BTreeMap::from([("provider".into(), "gcp".into())])),
            started_at: Timestamp::from_unix_micros(1_775_433_600_123_456),
            dns: Some(DnsObservation {
                outcome: DnsOutcome::Ok,
                duration_us: 1_234,
                addresses: 1,
            }),
            attempts: vec![ConnectAttempt {
                address: "10.0.0.5:443".parse().unwrap(),
                local: Some("10.1.0.2:40123".parse().unwrap()),
                started_at: Timestamp::from_unix_micros(1_775_433_600_124_700),
                outcome: ConnectOutcome::Ok,
                duration_us: 1_001_234,
                rtt_us: Some(1_180),
                syn_retransmits: 1,
                errno: None,
                icmp_from: None,
            }],
        }
    }

    #[test]
    fn json_shape_is_stable() {
        insta::assert_snapshot!(serde_json::to_string_pretty(&sample()).unwrap());
    }

    #[test]
    fn round_trips_through_json() {
        let r = sample();
        let back: RoundResult = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn rejects_a_bad_timestamp() {
        let err = serde_json::from_str::<Timestamp>("\"yesterday\"").unwrap_err();
        assert!(err.to_string().contains("timestamp \"yesterday\""), "{err}");
    }
}
