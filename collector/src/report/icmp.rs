//! Who answered SYNs with an ICMP unreachable. A timeout says only that
//! nothing came back; an ICMP names the router (or host) that gave up on
//! the packet, which is where the path broke. The report lists the
//! senders from the failures kept in detail.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

/// How many senders a report lists at most (the most frequent first).
pub const MAX_SENDERS: usize = 10;

/// One sender of ICMP unreachables, and what it answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IcmpSender {
    /// The ICMP's source address.
    pub sender: String,
    /// The outcome it gave the connects (`host_unreachable`, `net_unreachable`).
    pub outcome: String,
    /// SYNs it answered.
    pub answers: u64,
    /// Regions whose SYNs it answered, sorted.
    pub src_regions: Vec<String>,
    /// Targets those SYNs were for, sorted.
    pub targets: Vec<String>,
}

/// The senders in `[from_us, to_us)`, from `region` (or every region), for
/// the targets in `focus` (or every target); the most answers first.
pub fn senders(
    conn: &Connection,
    from_us: i64,
    to_us: i64,
    region: Option<&str>,
    focus: Option<&BTreeSet<String>>,
) -> rusqlite::Result<Vec<IcmpSender>> {
    let mut stmt = conn.prepare_cached(
        "SELECT f.icmp_from, f.outcome, s.src_region, t.name, count(*)
         FROM failures f JOIN series s ON s.id = f.series_id JOIN targets t ON t.id = s.target_id
         WHERE f.at_us >= ?1 AND f.at_us < ?2 AND f.icmp_from IS NOT NULL
           AND (?3 = '' OR s.src_region = ?3)
         GROUP BY 1, 2, 3, 4",
    )?;
    let mut rows = stmt.query(params![from_us, to_us, region.unwrap_or("")])?;
    // (sender, outcome) -> answers, regions, targets.
    type Tally = (u64, BTreeSet<String>, BTreeSet<String>);
    let mut by: BTreeMap<(String, String), Tally> = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let target: String = r.get(3)?;
        if focus.is_some_and(|f| !f.contains(&target)) {
            continue;
        }
        let e = by.entry((r.get(0)?, r.get(1)?)).or_default();
        e.0 += r.get::<_, i64>(4)? as u64;
        e.1.insert(r.get(2)?);
        e.2.insert(target);
    }
    let mut out: Vec<IcmpSender> = by
        .into_iter()
        .map(
            |((sender, outcome), (answers, regions, targets))| IcmpSender {
                sender,
                outcome,
                answers,
                src_regions: regions.into_iter().collect(),
                targets: targets.into_iter().collect(),
            },
        )
        .collect();
    // Stable: most answers first, then by address and outcome.
    out.sort_by(|a, b| {
        b.answers
            .cmp(&a.answers)
            .then_with(|| a.sender.cmp(&b.sender))
            .then_with(|| a.outcome.cmp(&b.outcome))
    });
    out.truncate(MAX_SENDERS);
    Ok(out)
}
