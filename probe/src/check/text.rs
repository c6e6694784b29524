//! Plain-text rendering of `check`: one line per DNS lookup and per connect
//! attempt as they happen, then the summary. Times are `HH:MM:SS.mmm UTC`.

use std::io::{self, Write};

use super::summary::{Spread, Summary};
use crate::outcome::{ConnectOutcome, DnsOutcome};
use crate::result::{RoundResult, Timestamp};

/// Writes one round: its lookup (if any) and every attempt.
pub(crate) fn round(w: &mut impl Write, r: &RoundResult) -> io::Result<()> {
    if let Some(dns) = &r.dns {
        write!(
            w,
            "{}  dns {:<16} {:<17} {} ms",
            clock(r.started_at),
            r.host,
            dns.outcome.as_str(),
            ms(dns.duration_us)
        )?;
        match dns.outcome {
            DnsOutcome::Ok => writeln!(
                w,
                ", {} address{}",
                dns.addresses,
                if dns.addresses == 1 { "" } else { "es" }
            )?,
            _ => writeln!(w, ", no connect attempted")?,
        }
    }
    for a in &r.attempts {
        write!(
            w,
            "{}  tcp {:<16} {:<17}",
            clock(a.started_at),
            a.address.to_string(),
            a.outcome.as_str()
        )?;
        match (a.outcome, a.rtt_sample()) {
            (ConnectOutcome::Ok, Some(rtt)) => write!(
                w,
                " rtt {} ms  connect {} ms",
                ms(u64::from(rtt)),
                ms(a.duration_us)
            )?,
            (ConnectOutcome::Ok, None) if a.syn_retransmits > 0 => write!(
                w,
                " rtt: none (handshake retransmitted)  connect {} ms",
                ms(a.duration_us)
            )?,
            _ => write!(w, " after {} ms", ms(a.duration_us))?,
        }
        if a.syn_retransmits > 0 {
            let n = a.syn_retransmits;
            write!(w, "  {n} SYN retransmit{}", if n == 1 { "" } else { "s" })?;
        }
        if let Some(from) = a.icmp_from {
            write!(w, "  icmp from {from}")?;
        }
        if let Some(local) = a.local {
            write!(w, "  local {local}")?;
        }
        if let Some(hint) = hint(a.outcome) {
            write!(w, "  ({hint})")?;
        }
        writeln!(w)?;
    }
    Ok(())
}

/// Writes the summary block.
pub(crate) fn summary(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    writeln!(
        w,
        "--- {}: {} round{} ---",
        s.target,
        s.rounds,
        plural(s.rounds)
    )?;
    write!(
        w,
        "connects: {} sent, {} ok, {} failed ({:.1}%)",
        s.connects, s.ok, s.failed, s.loss_percent
    )?;
    if !s.failures.is_empty() {
        let parts: Vec<String> = s.failures.iter().map(|(o, n)| format!("{o} {n}")).collect();
        write!(w, " ({})", parts.join(", "))?;
    }
    writeln!(w)?;
    if s.syns_sent > 0 {
        writeln!(
            w,
            "syns: {} sent, {} lost: {} (a SYN or its SYN-ACK lost on the path)",
            s.syns_sent,
            s.syns_lost,
            crate::loss::percent(s.syns_lost, s.syns_sent)
        )?;
    }
    if let Some(sp) = &s.rtt_ms {
        writeln!(w, "rtt (kernel, SYN to SYN-ACK): {}", spread(sp))?;
    }
    if let Some(sp) = &s.connect_ms {
        writeln!(w, "connect time (wall clock):    {}", spread(sp))?;
    }
    if s.syn_retransmits > 0 {
        write!(
            w,
            "syn retransmits: {} over {} attempt{}",
            s.syn_retransmits,
            s.attempts_with_retransmits,
            plural(s.attempts_with_retransmits)
        )?;
        match s.ok_after_retransmit {
            0 => writeln!(w, " (SYNs that got no answer)")?,
            n => writeln!(
                w,
                "; {n} connect{} succeeded only after a lost SYN (about 1 s each): \
                 that is packet loss, not a slow network",
                plural(n)
            )?,
        }
    }
    if let Some(d) = &s.dns {
        write!(
            w,
            "dns: {} lookup{}, {} ok",
            d.lookups,
            plural(d.lookups),
            d.ok
        )?;
        for (o, n) in &d.failures {
            write!(w, ", {o} {n}")?;
        }
        match &d.ms {
            Some(sp) => writeln!(w, "; {}", spread(sp))?,
            None => writeln!(w)?,
        }
    }
    if s.addresses.len() > 1 {
        for a in &s.addresses {
            write!(
                w,
                "  {:<40} {}/{} ok",
                a.address.to_string(),
                a.ok,
                a.connects
            )?;
            match a.rtt_median_ms {
                Some(m) => writeln!(w, ", rtt median {m:.3} ms")?,
                None => writeln!(w)?,
            }
        }
    }
    Ok(())
}

/// What an outcome most likely means, for the person reading the line.
fn hint(o: ConnectOutcome) -> Option<&'static str> {
    Some(match o {
        ConnectOutcome::Ok => return None,
        ConnectOutcome::Refused => "RST: the host is up, nothing listens on the port",
        ConnectOutcome::Timeout => "no answer to the SYN: dropped on the path or at the host",
        ConnectOutcome::HostUnreachable => "ICMP host unreachable, or no neighbour answered",
        ConnectOutcome::NetUnreachable => "no route, or ICMP network unreachable",
        ConnectOutcome::Reset => "reset during the handshake",
        ConnectOutcome::LocalAddressUnavailable => {
            "this host: no free ephemeral port or source address"
        }
        ConnectOutcome::LocalResources => "this host: out of file descriptors or buffers",
        ConnectOutcome::LocalPermission => "this host: refused by a local firewall or capability",
        ConnectOutcome::LocalError => "this host: socket setup failed",
        ConnectOutcome::Other => "unclassified error; errno is in --json",
    })
}

fn spread(s: &Spread) -> String {
    format!(
        "min {:.3} / median {:.3} / p95 {:.3} / max {:.3} ms",
        s.min, s.median, s.p95, s.max
    )
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Microseconds as milliseconds with three decimals.
fn ms(us: u64) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

/// `HH:MM:SS.mmm UTC`.
pub(crate) fn clock(t: Timestamp) -> String {
    let us = t.unix_micros();
    let day_ms = (us / 1000) % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03} UTC",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}
