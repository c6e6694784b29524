//! Per-minute rollups and their compact encoding.
//!
//! One row per minute per series: a connect series is (src_region, probe,
//! target, address), and a DNS series is the same with no address. The row
//! holds counts by outcome and the two latency histograms (kernel RTT and
//! connect duration) in the probe's bucket layout, as LEB128 varints, so a
//! minute of one-second probing (60 results) takes a few dozen bytes.

use vantage_probe::outcome::{ConnectOutcome, DnsOutcome};
use vantage_probe::stats::{CONNECT_BUCKETS_US, DNS_BUCKETS_US};

/// A histogram in a fixed bucket layout: counts per bucket (the last slot
/// is above every bound) and the sum in microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hist {
    /// Non-cumulative counts; `bounds.len() + 1` slots.
    pub counts: Vec<u64>,
    /// Sum of the observations, microseconds.
    pub sum_us: u64,
}

/// One minute of connect attempts to one address from one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectMinute {
    /// Attempts by outcome, indexed by [`ConnectOutcome::index`].
    pub outcomes: [u64; ConnectOutcome::ALL.len()],
    /// SYN retransmits over the minute.
    pub syn_retransmits: u64,
    /// Kernel RTT of successful attempts.
    pub rtt: Hist,
    /// Wall-clock duration of successful attempts.
    pub duration: Hist,
}

/// One minute of DNS lookups of one target from one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsMinute {
    /// Lookups by outcome, indexed by [`DnsOutcome::index`].
    pub outcomes: [u64; DnsOutcome::ALL.len()],
    /// Lookup duration, whatever the outcome.
    pub duration: Hist,
}

/// A row's first byte: which kind of minute it holds, and the layout version.
const CONNECT_V1: u8 = 1;
const DNS_V1: u8 = 2;

/// A stored row that could not be decoded (a bug or a damaged file).
#[derive(Debug, thiserror::Error)]
#[error("malformed rollup row: {0}")]
pub struct Malformed(pub(crate) &'static str);

impl Hist {
    /// An empty histogram over `bounds`.
    pub fn new(bounds: &[u64]) -> Hist {
        Hist {
            counts: vec![0; bounds.len() + 1],
            sum_us: 0,
        }
    }

    /// Adds one observation.
    pub fn observe(&mut self, bounds: &[u64], us: u64) {
        let i = bounds.iter().position(|&b| us <= b).unwrap_or(bounds.len());
        self.counts[i] += 1;
        self.sum_us += us;
    }

    /// Adds another histogram of the same layout.
    pub fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_us += other.sum_us;
    }

    /// Observations in total.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn encode(&self, out: &mut Vec<u8>) {
        for &c in &self.counts {
            put(out, c);
        }
        put(out, self.sum_us);
    }

    fn decode(input: &mut &[u8], slots: usize) -> Result<Hist, Malformed> {
        let counts = (0..slots).map(|_| get(input)).collect::<Result<_, _>>()?;
        Ok(Hist {
            counts,
            sum_us: get(input)?,
        })
    }
}

impl Default for ConnectMinute {
    fn default() -> Self {
        ConnectMinute {
            outcomes: [0; ConnectOutcome::ALL.len()],
            syn_retransmits: 0,
            rtt: Hist::new(&CONNECT_BUCKETS_US),
            duration: Hist::new(&CONNECT_BUCKETS_US),
        }
    }
}

impl ConnectMinute {
    /// Attempts in the minute.
    pub fn attempts(&self) -> u64 {
        self.outcomes.iter().sum()
    }

    /// Attempts whose outcome `blame` puts on `who`.
    pub fn blamed(&self, who: vantage_probe::outcome::Blame) -> u64 {
        ConnectOutcome::ALL
            .iter()
            .filter(|o| o.blame() == who)
            .map(|o| self.outcomes[o.index()])
            .sum()
    }

    /// Adds another minute of the same series.
    pub fn merge(&mut self, o: &ConnectMinute) {
        for (a, b) in self.outcomes.iter_mut().zip(&o.outcomes) {
            *a += b;
        }
        self.syn_retransmits += o.syn_retransmits;
        self.rtt.merge(&o.rtt);
        self.duration.merge(&o.duration);
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![CONNECT_V1];
        for &c in &self.outcomes {
            put(&mut out, c);
        }
        put(&mut out, self.syn_retransmits);
        self.rtt.encode(&mut out);
        self.duration.encode(&mut out);
        out
    }

    /// Reads the stored form.
    pub fn decode(mut b: &[u8]) -> Result<ConnectMinute, Malformed> {
        if b.first() != Some(&CONNECT_V1) {
            return Err(Malformed("not a connect minute"));
        }
        b = &b[1..];
        let mut m = ConnectMinute::default();
        for o in &mut m.outcomes {
            *o = get(&mut b)?;
        }
        m.syn_retransmits = get(&mut b)?;
        m.rtt = Hist::decode(&mut b, CONNECT_BUCKETS_US.len() + 1)?;
        m.duration = Hist::decode(&mut b, CONNECT_BUCKETS_US.len() + 1)?;
        done(b)?;
        Ok(m)
    }
}

impl Default for DnsMinute {
    fn default() -> Self {
        DnsMinute {
            outcomes: [0; DnsOutcome::ALL.len()],
            duration: Hist::new(&DNS_BUCKETS_US),
        }
    }
}

impl DnsMinute {
    /// Adds another minute of the same series.
    pub fn merge(&mut self, o: &DnsMinute) {
        for (a, b) in self.outcomes.iter_mut().zip(&o.outcomes) {
            *a += b;
        }
        self.duration.merge(&o.duration);
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![DNS_V1];
        for &c in &self.outcomes {
            put(&mut out, c);
        }
        self.duration.encode(&mut out);
        out
    }

    /// Reads the stored form.
    pub fn decode(mut b: &[u8]) -> Result<DnsMinute, Malformed> {
        if b.first() != Some(&DNS_V1) {
            return Err(Malformed("not a dns minute"));
        }
        b = &b[1..];
        let mut m = DnsMinute::default();
        for o in &mut m.outcomes {
            *o = get(&mut b)?;
        }
        m.duration = Hist::decode(&mut b, DNS_BUCKETS_US.len() + 1)?;
        done(b)?;
        Ok(m)
    }
}

/// Appends `v` as a LEB128 varint.
pub(crate) fn put(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads a LEB128 varint off the front of `input`.
pub(crate) fn get(input: &mut &[u8]) -> Result<u64, Malformed> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first().ok_or(Malformed("truncated"))?;
        *input = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Malformed("varint too long"))
}

fn done(b: &[u8]) -> Result<(), Malformed> {
    if b.is_empty() {
        Ok(())
    } else {
        Err(Malformed("trailing bytes"))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn connect_minutes_round_trip(
            outcomes in proptest::array::uniform11(0u64..u64::MAX / 4),
            retrans in any::<u64>(),
            rtts in proptest::collection::vec(0u64..10_000_000, 0..50),
        ) {
            let mut m = ConnectMinute { outcomes, syn_retransmits: retrans, ..ConnectMinute::default() };
            for r in &rtts {
                m.rtt.observe(&CONNECT_BUCKETS_US, *r);
                m.duration.observe(&CONNECT_BUCKETS_US, r * 2);
            }
            prop_assert_eq!(ConnectMinute::decode(&m.encode()).unwrap(), m);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ConnectMinute::decode(&bytes);
            let _ = DnsMinute::decode(&bytes);
        }
    }

    #[test]
    fn a_quiet_minute_is_small() {
        let mut m = ConnectMinute::default();
        for _ in 0..60 {
            m.outcomes[ConnectOutcome::Ok.index()] += 1;
            m.rtt.observe(&CONNECT_BUCKETS_US, 800);
            m.duration.observe(&CONNECT_BUCKETS_US, 950);
        }
        let len = m.encode().len();
        assert!(len <= 60, "{len} bytes for a minute of 60 results");
    }

    #[test]
    fn merge_adds() {
        let mut a = DnsMinute::default();
        a.outcomes[DnsOutcome::Ok.index()] = 2;
        a.duration.observe(&DNS_BUCKETS_US, 700);
        let mut b = a.clone();
        b.merge(&a);
        assert_eq!(b.outcomes[DnsOutcome::Ok.index()], 4);
        assert_eq!(b.duration.count(), 2);
        assert_eq!(b.duration.sum_us, 1400);
    }
}
