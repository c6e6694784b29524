//! The fleet inventory's target lists, in Prometheus file_sd JSON: read
//! and checked here, so that a config naming a broken list is refused
//! before the collector serves it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use vantage_probe::config::file::{Kind, read_text};
use vantage_probe::config::{parse_host, split_host_port};

use super::valid_ident;

/// The label that restricts a group to some regions.
pub const REGION_LABEL: &str = "src_region";

/// One file_sd group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// `host:port` entries.
    pub targets: Vec<String>,
    /// Labels for every target of the group.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Reads and checks one inventory file (a regular file of at most
/// [`Kind::FileSd`]'s size, at start and at every reload). The error names
/// the file and, where known, the line.
pub fn read(path: &Path) -> Result<Vec<Group>, String> {
    let shown = path.display();
    let text = read_text(path, Kind::FileSd).map_err(|e| e.to_string())?;
    let groups: Vec<Group> = serde_json::from_str(&text)
        .map_err(|e| format!("{shown}:{}: not a file_sd target list: {e}", e.line()))?;
    for (i, g) in groups.iter().enumerate() {
        for (j, t) in g.targets.iter().enumerate() {
            let ok = split_host_port(t).is_some_and(|(host, port)| {
                (1..=65535).contains(&port) && parse_host(host).is_ok()
            });
            if !ok {
                return Err(format!(
                    "{shown}: [{i}].targets[{j}] = {t:?}: must be host:port with a port of 1-65535"
                ));
            }
        }
        for (k, v) in &g.labels {
            let name_ok = !k.is_empty()
                && !k.starts_with("__")
                && k.bytes().enumerate().all(|(n, b)| {
                    b == b'_' || b.is_ascii_alphabetic() || (n > 0 && b.is_ascii_digit())
                });
            if !name_ok {
                return Err(format!(
                    "{shown}: [{i}].labels: {k:?} is not a label name (letters, digits, '_'; not starting with a digit or '__')"
                ));
            }
            if k == REGION_LABEL && !v.split(',').map(str::trim).all(valid_ident) {
                return Err(format!(
                    "{shown}: [{i}].labels.{REGION_LABEL} = {v:?}: must be a region or a comma-separated list of regions"
                ));
            }
        }
    }
    Ok(groups)
}
