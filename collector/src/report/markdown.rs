//! The report as Markdown, for postmortems and bugs.

use std::io::{self, Write};

use super::{MatrixCell, Report};
use crate::evidence::{loss_leads, rate, syn_loss};
use crate::time::clock;

/// One matrix cell in a few words.
pub(crate) fn cell(c: &MatrixCell) -> String {
    let mut s = rate(c.failures, c.attempts);
    if c.failures > 0
        && let Some(r) = &c.dominant_reason
    {
        s.push(' ');
        s.push_str(r);
    }
    // A lossy path leads with its lost SYNs, not with the few connects
    // that failed outright.
    if let Some(loss) = syn_loss(c.syns_lost, c.syns_sent) {
        s = if loss_leads(c.syns_lost, c.syns_sent, c.failures, c.attempts) {
            format!("{loss} · {s}")
        } else {
            format!("{s} · {loss}")
        };
    }
    if let (Some(p50), Some(p95)) = (c.rtt_p50_ms, c.rtt_p95_ms) {
        s.push_str(&format!(" · {p50} / {p95} ms"));
    }
    if c.slow_connects > 0 {
        s.push_str(&format!(" · {} a second late", c.slow_connects));
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Writes `r` as Markdown.
pub(crate) fn render(r: &Report, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "# {}", esc(&r.title))?;
    writeln!(out)?;
    writeln!(
        out,
        "Fleet **{}** · data from `{}` · {} to {} UTC",
        esc(&r.fleet),
        r.source,
        clock(r.from),
        clock(r.to)
    )?;
    writeln!(out)?;
    match &r.incident {
        Some(i) => writeln!(out, "**Verdict: {}.** {}", r.verdict, esc(&i.explanation))?,
        None => writeln!(out, "**Verdict: {}.**", r.verdict)?,
    }
    writeln!(out)?;
    timeline(r, out)?;
    // A DNS fault's evidence is its lookups; any other's, its connects,
    // with the lookups after them when some failed.
    if r.is_dns() {
        lookups(r, out)?;
        evidence(r, out)?;
    } else {
        evidence(r, out)?;
        if r.lookups.iter().any(|l| l.failed > 0) {
            lookups(r, out)?;
        }
    }
    icmp(r, out)?;
    alternatives(r, out)?;
    writeln!(out, "## What the data cannot say")?;
    writeln!(out)?;
    for c in &r.cannot_say {
        writeln!(out, "- {}", esc(c))?;
    }
    Ok(())
}

fn timeline(r: &Report, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "## Timeline")?;
    writeln!(out)?;
    if r.timeline.is_empty() {
        writeln!(out, "Nothing happened in this window.")?;
    } else {
        writeln!(out, "| Time (UTC) | Event |")?;
        writeln!(out, "| --- | --- |")?;
        for l in &r.timeline {
            writeln!(out, "| {} | {} |", clock(l.at), esc(&l.event))?;
        }
    }
    writeln!(out)
}

/// The region x group matrix.
fn evidence(r: &Report, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "## Evidence")?;
    writeln!(out)?;
    if r.matrix.is_empty() {
        writeln!(out, "No connect data in this window.")?;
    } else {
        writeln!(
            out,
            "Connect failures per region and target group over the window: failed/attempts (%), the most common failure, median / p95 kernel RTT of the successful connects, and how many of those came a second late (a lost SYN sent again)."
        )?;
        writeln!(out)?;
        write!(out, "| Region |")?;
        for g in &r.groups {
            write!(out, " {} |", esc(g))?;
        }
        writeln!(out)?;
        write!(out, "| --- |")?;
        for _ in &r.groups {
            write!(out, " --- |")?;
        }
        writeln!(out)?;
        for region in &r.regions {
            write!(out, "| {} |", esc(region))?;
            for g in &r.groups {
                let c = r
                    .matrix
                    .iter()
                    .find(|c| &c.src_region == region && &c.group == g);
                match c {
                    Some(c) => write!(out, " {} |", esc(&cell(c)))?,
                    None => write!(out, " no data |")?,
                }
            }
            writeln!(out)?;
        }
    }
    writeln!(out)
}

/// Lookups per region.
fn lookups(r: &Report, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "## DNS lookups")?;
    writeln!(out)?;
    if r.lookups.is_empty() {
        writeln!(out, "No lookups in this window.")?;
    } else {
        writeln!(
            out,
            "Lookups of the targets in question per region over the window: failed/lookups (%), the failures by answer, and median / p95 of the resolver's answer time."
        )?;
        writeln!(out)?;
        writeln!(out, "| Region | Lookups |")?;
        writeln!(out, "| --- | --- |")?;
        for l in &r.lookups {
            writeln!(out, "| {} | {} |", esc(&l.src_region), esc(&l.words()))?;
        }
    }
    writeln!(out)
}

fn icmp(r: &Report, out: &mut impl Write) -> io::Result<()> {
    if !r.icmp_senders.is_empty() {
        writeln!(out, "## Who answered with ICMP")?;
        writeln!(out)?;
        writeln!(
            out,
            "SYNs answered with an ICMP unreachable, by sender. A router's address is where the packets stopped; a target's own address means the host itself turned them away."
        )?;
        writeln!(out)?;
        writeln!(out, "| Sender | Answer | SYNs | From | To |")?;
        writeln!(out, "| --- | --- | --- | --- | --- |")?;
        for s in &r.icmp_senders {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                esc(&s.sender),
                esc(&s.outcome),
                s.answers,
                esc(&s.src_regions.join(", ")),
                esc(&s.targets.join(", "))
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn alternatives(r: &Report, out: &mut impl Write) -> io::Result<()> {
    if r.incident.is_some() {
        writeln!(out, "## Healthy alternatives")?;
        writeln!(out)?;
        if r.healthy_alternatives.is_empty() {
            writeln!(
                out,
                "None: no region reaches the affected targets without failures."
            )?;
        } else {
            writeln!(
                out,
                "{} reach{} the affected targets without failures.",
                r.healthy_alternatives.join(", "),
                if r.healthy_alternatives.len() == 1 {
                    "es"
                } else {
                    ""
                }
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod cell_tests {
    use super::*;

    fn lossy(syns_lost: u64, failures: u64) -> MatrixCell {
        MatrixCell {
            src_region: "onprem".into(),
            group: "gcp".into(),
            attempts: 3000,
            failures,
            dominant_reason: Some("timeout".into()),
            syn_retransmits: syns_lost,
            slow_connects: syns_lost,
            syns_sent: 3000 + syns_lost,
            syns_lost,
            rtt_p50_ms: Some(0.1),
            rtt_p95_ms: Some(0.2),
        }
    }

    #[test]
    fn a_lossy_path_leads_with_its_lost_syns_not_its_few_failures() {
        assert_eq!(
            cell(&lossy(530, 3)),
            "15% ± 1% of SYNs lost (530/3530) · 3/3000 (0.1%) timeout · 0.1 / 0.2 ms · 530 a second late"
        );
        // A clean path says nothing of SYNs; a hard outage leads with it
        // failures.
        assert_eq!(cell(&lossy(0, 0)), "0/3000 (0.0%) · 0.1 / 0.2 ms");
        let mut down = lossy(0, 3000);
        down.syns_lost = 3000;
        assert!(
            cell(&down).starts_with("3000/3000 (100.0%) timeout · 100"),
            "{}",
            cell(&down)
        );
    }
}
