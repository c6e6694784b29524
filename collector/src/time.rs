//! Time as the store keeps it (microseconds since the epoch, minutes for
//! rollups) and as people read it (`HH:MM UTC` in sentences, `YYYY-MM-DD
//! HH:MM:SS` in reports). Every time shown is UTC.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vantage_probe::result::Timestamp;

/// A minute in microseconds: rollups are kept per minute.
pub(crate) const MINUTE_US: i64 = 60_000_000;

/// Microseconds since the epoch (negative before it).
pub(crate) fn us(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// The time `v` microseconds after the epoch.
pub(crate) fn from_us(v: i64) -> SystemTime {
    if v >= 0 {
        UNIX_EPOCH + Duration::from_micros(v as u64)
    } else {
        UNIX_EPOCH - Duration::from_micros(v.unsigned_abs())
    }
}

/// Minutes since the epoch.
pub(crate) fn minute(t: SystemTime) -> i64 {
    us(t).div_euclid(MINUTE_US)
}

/// A time as people and tools write it: RFC 3339 with `Z` or an offset
/// (`+02:00`), or without one, read as UTC (`2026-12-01T23:00:00`,
/// `2026-12-01 23:00:00`).
pub(crate) fn parse(s: &str) -> Result<SystemTime, String> {
    vantage_probe::result::parse_rfc3339(s)
        .or_else(|zoned| humantime::parse_rfc3339_weak(s).map_err(|_| zoned))
}

/// `HH:MM UTC` of a time in microseconds since the epoch, for sentences.
pub(crate) fn hhmm(at_us: i64) -> String {
    let s = humantime::format_rfc3339_seconds(from_us(at_us)).to_string();
    format!("{} UTC", &s[11..16])
}

/// `YYYY-MM-DD HH:MM:SS` (UTC).
pub(crate) fn clock(t: Timestamp) -> String {
    let s = humantime::format_rfc3339_seconds(t.system_time()).to_string();
    s.trim_end_matches('Z').replace('T', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microseconds_round_trip_on_both_sides_of_the_epoch() {
        for v in [-90 * MINUTE_US - 7, -1, 0, 1, 1_700_000_000_123_456] {
            assert_eq!(us(from_us(v)), v);
        }
        assert_eq!(
            minute(from_us(-1)),
            -1,
            "minutes round down, before the epoch too"
        );
    }

    #[test]
    fn a_time_with_an_offset_or_none_is_read() {
        let utc = parse("2026-12-01T23:00:00Z").unwrap();
        assert_eq!(parse("2026-12-02T00:00:00+01:00").unwrap(), utc);
        assert_eq!(parse("2026-12-01T23:00:00").unwrap(), utc);
        assert_eq!(parse("2026-12-01 23:00:00").unwrap(), utc);
        assert!(parse("2026-12-01T23:00:00+25:00").is_err());
    }

    #[test]
    fn times_read_as_utc() {
        let t = from_us(1_700_000_000_000_000);
        assert_eq!(hhmm(us(t)), "22:13 UTC");
        assert_eq!(clock(t.into()), "2023-11-14 22:13:20");
    }
}
