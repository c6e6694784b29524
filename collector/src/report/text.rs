//! The report as a few plain lines, for chat and status updates.

use std::io::{self, Write};

use super::Report;
use crate::evidence::{loss_leads, rate, syn_loss};
use crate::time::clock;

/// Writes `r` as a status update.
pub(crate) fn render(r: &Report, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "[vantage {}] {}", r.fleet, r.title)?;
    if let Some(i) = &r.incident {
        writeln!(out, "{}", i.explanation)?;
    } else {
        writeln!(out, "Verdict: {}.", r.verdict)?;
    }
    // Per region, over the targets in question (the incident's, or all):
    // a DNS fault's lookups, any other's connects.
    if r.is_dns() {
        for l in &r.lookups {
            writeln!(out, "  {}: lookups {}", l.src_region, l.words())?;
        }
    }
    for series in r.series.iter().filter(|_| !r.is_dns()) {
        let (k, n, lost, sent) = series.minutes.iter().fold((0, 0, 0, 0), |t, m| {
            (
                t.0 + m.failures,
                t.1 + m.attempts,
                t.2 + m.syns_lost,
                t.3 + m.syns_sent,
            )
        });
        let failed = format!("{} failed", rate(k, n));
        match syn_loss(lost, sent) {
            Some(loss) if loss_leads(lost, sent, k, n) => {
                writeln!(out, "  {}: {loss}; {failed}", series.src_region)?
            }
            Some(loss) => writeln!(out, "  {}: {failed}; {loss}", series.src_region)?,
            None => writeln!(out, "  {}: {failed}", series.src_region)?,
        }
    }
    if r.incident.is_some() && !r.healthy_alternatives.is_empty() {
        writeln!(
            out,
            "Healthy alternatives: {}",
            r.healthy_alternatives.join(", ")
        )?;
    }
    for s in &r.icmp_senders {
        writeln!(
            out,
            "ICMP: {} answered {} SYN{} with {} ({} -> {})",
            s.sender,
            s.answers,
            if s.answers == 1 { "" } else { "s" },
            s.outcome,
            s.src_regions.join(", "),
            s.targets.join(", ")
        )?;
    }
    if let Some(last) = r.timeline.last() {
        writeln!(out, "Latest: {} UTC {}", clock(last.at), last.event)?;
    }
    Ok(())
}
