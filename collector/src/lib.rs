//! vantage-collector: where the fleet's evidence will live. For now it only
//! fixes the dependency direction: the collector reads the probe library's
//! result types, never the other way round.

pub use vantage_probe::result::{Identity, RoundResult};
