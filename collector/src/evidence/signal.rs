//! What a finding is about: failing connects, latency or packet loss. A
//! leaf that the cell tests (`cells`) and localization (`localize`) both
//! use, so `cells` does not import `localize`.

use serde::{Deserialize, Serialize};

/// What a finding is about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Connects (or lookups) failing.
    #[default]
    Failures,
    /// Connects succeeding, but slower than their baseline.
    Latency,
    /// Connects succeeding, but only after a lost SYN was sent again.
    Loss,
}
