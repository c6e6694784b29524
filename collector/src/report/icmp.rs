//! Who answered SYNs with an ICMP unreachable. A timeout says only that
//! nothing came back; an ICMP names the router (or host) that gave up on
//! the packet, which is where the path broke. The report lists the
//! senders from the failures kept in detail.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::store::{Snapshot, StoreError};

/// How many senders a report lists at most (the most frequent first).
pub(crate) const MAX_SENDERS: usize = 10;

/// One sender of ICMP unreachables, and what it answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IcmpSender {
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
pub(crate) fn senders(
    snap: &Snapshot<'_>,
    from_us: i64,
    to_us: i64,
    region: Option<&str>,
    focus: Option<&BTreeSet<String>>,
) -> Result<Vec<IcmpSender>, StoreError> {
    // (sender, outcome) -> answers, regions, targets.
    type Tally = (u64, BTreeSet<String>, BTreeSet<String>);
    let mut by: BTreeMap<(String, String), Tally> = BTreeMap::new();
    for c in snap.icmp_counts(from_us, to_us, region)? {
        if focus.is_some_and(|f| !f.contains(&c.target)) {
            continue;
        }
        let e = by.entry((c.sender, c.outcome)).or_default();
        e.0 += c.count;
        e.1.insert(c.src_region);
        e.2.insert(c.target);
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
