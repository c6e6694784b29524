//! The finding types: where a fault is ([`Scope`]), what one region shows
//! of it ([`RegionEvidence`]), the localized fault itself ([`Finding`]), and
//! the probes as the fleet knows them ([`ProbeLiveness`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::evidence::cells::{LossRate, RttShift};
use crate::evidence::signal::Signal;
use crate::fleet::Liveness;

/// Where a fault is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Most regions fail to one target: the backend.
    Target,
    /// One region fails to most targets: its own network or egress.
    Source,
    /// One region to one group of targets, while others reach the group
    /// and the region reaches other groups.
    Path,
    /// One address of a name fails everywhere while its siblings work.
    Address,
    /// Name resolution fails, in one region or everywhere.
    Dns,
    /// Most regions fail to most targets: a shared cause.
    Global,
    /// Failures the data cannot place.
    Inconclusive,
    /// A probe's own host is broken (local errors, or it fails a control
    /// target): not evidence against the targets; its region sits out the vote.
    Probe,
    /// Probes of a region stopped reporting: silent is neither "down" nor
    /// healthy. One finding per region, naming its silent probes.
    Silent,
}

impl Scope {
    /// The label value; identical to the serde name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Target => "target",
            Scope::Source => "source",
            Scope::Path => "path",
            Scope::Address => "address",
            Scope::Dns => "dns",
            Scope::Global => "global",
            Scope::Inconclusive => "inconclusive",
            Scope::Probe => "probe",
            Scope::Silent => "silent",
        }
    }
}

/// A probe as the fleet knows it, for silent-probe findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeLiveness {
    pub probe_id: String,
    pub src_region: String,
    /// Its last batch (µs since the epoch).
    pub last_seen_us: i64,
    /// Reporting, silent, replaced, stopped (never forgotten: those are
    /// left out).
    pub liveness: Liveness,
}

/// What one region shows of a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionEvidence {
    pub src_region: String,
    /// Failures in the telling windows of its failing cells.
    pub failures: u64,
    /// Attempts in those windows.
    pub attempts: u64,
    /// Failures by outcome.
    pub reasons: BTreeMap<String, u64>,
    /// Its first failure of this finding (µs since the epoch).
    pub since_us: i64,
    /// Baseline failures and attempts of the same cells.
    pub baseline_failures: u64,
    /// See `baseline_failures`.
    pub baseline_attempts: u64,
    /// The least likely cell's p-value.
    pub p_value: f64,
    /// For latency: the RTT shift of the region's most shifted cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt: Option<RttShift>,
    /// For loss: the share of SYNs lost since the onset, over the region's
    /// lossy cells, with its interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<LossRate>,
}

/// One localized fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Where it is.
    pub scope: Scope,
    /// Failures or latency.
    #[serde(default)]
    pub signal: Signal,
    /// Affected regions.
    pub src_regions: Vec<String>,
    /// Affected targets.
    pub targets: Vec<String>,
    /// The target group, for path findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_group: Option<String>,
    /// The address, for address findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The silent probes, for silent findings, by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probe_ids: Vec<String>,
    /// Earliest failure (µs since the epoch).
    pub since_us: i64,
    /// Per affected region.
    pub evidence: Vec<RegionEvidence>,
    /// Regions that still reach the same targets.
    pub healthy_alternatives: Vec<String>,
    /// How many of the regions (or targets) with data agree, e.g. "3 of 3 regions".
    pub quorum: String,
    /// One sentence a person can read aloud on a call.
    pub explanation: String,
}
