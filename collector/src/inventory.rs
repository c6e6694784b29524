//! The fleet inventory: one target list for every region, served to probes
//! at `GET /api/v1/targets?src_region=R` so that all regions probe the same
//! targets and the cross-region matrix has no holes.
//!
//! The list is kept in Prometheus file_sd JSON files (`[inventory] file_sd`).
//! A group with a `src_region` label (one region or a comma-separated list)
//! goes only to those regions, and the label is not passed on: the probe
//! sets its own. The files are re-read when they change; a change that does
//! not parse is logged and counted, and the last good list is served.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

pub(crate) use crate::config::file_sd::{Group, REGION_LABEL, read};

/// The configured inventory, re-read when its files change.
#[derive(Debug)]
pub struct Inventory {
    paths: Vec<PathBuf>,
    loaded: Mutex<Loaded>,
    /// 1 while the files on disk are what is served, 0 after a change that
    /// could not be read.
    pub healthy: prometheus::IntGauge,
}

#[derive(Debug)]
struct Loaded {
    stamps: Vec<Option<(SystemTime, u64)>>,
    groups: Arc<Vec<Group>>,
}

/// One region's list, ready to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The JSON body.
    pub body: Vec<u8>,
    /// Its entity tag (quoted).
    pub etag: String,
}

impl Inventory {
    /// Reads `paths`; fails like [`read`] on the first bad file.
    pub fn load(paths: Vec<PathBuf>, healthy: prometheus::IntGauge) -> Result<Inventory, String> {
        let stamps = paths.iter().map(|p| modified(p)).collect();
        let groups = read_all(&paths)?;
        healthy.set(1);
        Ok(Inventory {
            paths,
            loaded: Mutex::new(Loaded {
                stamps,
                groups: Arc::new(groups),
            }),
            healthy,
        })
    }

    /// Whether any file is configured.
    pub fn is_configured(&self) -> bool {
        !self.paths.is_empty()
    }

    /// The list for `src_region`: groups for every region plus those
    /// labelled for it, without the region label.
    pub fn for_region(&self, src_region: &str) -> Served {
        let groups = self.current();
        let mine: Vec<Group> = groups
            .iter()
            .filter(|g| {
                g.labels
                    .get(REGION_LABEL)
                    .is_none_or(|v| v.split(',').any(|r| r.trim() == src_region))
            })
            .map(|g| {
                let mut g = g.clone();
                g.labels.remove(REGION_LABEL);
                g
            })
            .collect();
        let body = serde_json::to_vec_pretty(&mine).expect("groups serialize");
        let etag = format!("\"{:016x}\"", fnv1a(&body));
        Served { body, etag }
    }

    /// The groups, re-read first if a file changed since the last read.
    fn current(&self) -> Arc<Vec<Group>> {
        let mut loaded = self.loaded.lock().expect("inventory lock");
        let stamps: Vec<_> = self.paths.iter().map(|p| modified(p)).collect();
        if stamps != loaded.stamps {
            match read_all(&self.paths) {
                Ok(groups) => {
                    tracing::info!(groups = groups.len(), "fleet inventory re-read");
                    loaded.groups = Arc::new(groups);
                    self.healthy.set(1);
                }
                Err(err) => {
                    tracing::error!(
                        "fleet inventory changed but is not valid; serving the last good one: {err}"
                    );
                    self.healthy.set(0);
                }
            }
            loaded.stamps = stamps;
        }
        loaded.groups.clone()
    }
}

fn read_all(paths: &[PathBuf]) -> Result<Vec<Group>, String> {
    let mut all = Vec::new();
    for p in paths {
        all.extend(read(p)?);
    }
    Ok(all)
}

/// What tells that a file changed: its modification time and length.
fn modified(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vantage-inventory-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn groups_for_other_regions_are_left_out_and_the_region_label_is_not_passed_on() {
        let p = file(
            "fleet.json",
            r#"[
  {"targets": ["web.gcp.example:443"], "labels": {"provider": "gcp"}},
  {"targets": ["10.0.0.1:22"], "labels": {"src_region": "us-east-2, onprem", "service": "bastion"}},
  {"targets": ["10.9.0.1:22"], "labels": {"src_region": "us-west-1"}}
]"#,
        );
        let inv = Inventory::load(vec![p], prometheus::IntGauge::new("h", "h").unwrap()).unwrap();
        let east: Vec<Group> = serde_json::from_slice(&inv.for_region("us-east-2").body).unwrap();
        assert_eq!(east.len(), 2);
        assert_eq!(east[1].targets, ["10.0.0.1:22"]);
        assert!(!east[1].labels.contains_key("src_region"));
        assert_eq!(east[1].labels["service"], "bastion");
        let west: Vec<Group> = serde_json::from_slice(&inv.for_region("us-west-1").body).unwrap();
        assert_eq!(west.len(), 2);
        assert_eq!(west[1].targets, ["10.9.0.1:22"]);
        let other = inv.for_region("eu-west-1");
        assert_eq!(
            serde_json::from_slice::<Vec<Group>>(&other.body)
                .unwrap()
                .len(),
            1
        );
        assert_ne!(other.etag, inv.for_region("us-east-2").etag);
        assert_eq!(
            other,
            inv.for_region("eu-west-1"),
            "stable for the same list"
        );
    }

    #[test]
    fn a_bad_change_keeps_serving_the_last_good_list() {
        let p = file("change.json", r#"[{"targets": ["127.0.0.1:80"]}]"#);
        let inv = Inventory::load(
            vec![p.clone()],
            prometheus::IntGauge::new("h", "h").unwrap(),
        )
        .unwrap();
        let before = inv.for_region("r");
        // A different length changes the stamp even within one tick of
        // the file system clock.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&p, "[{\"targets\": [\"127.0.0.1:0\"]}, ").unwrap();
        assert_eq!(inv.for_region("r"), before);
        assert_eq!(inv.healthy.get(), 0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&p, r#"[{"targets": ["127.0.0.1:81"]}]"#).unwrap();
        let after = inv.for_region("r");
        assert_ne!(after, before);
        assert_eq!(inv.healthy.get(), 1);
    }

    #[test]
    fn bad_files_are_named_with_what_is_wrong() {
        let p = file("bad1.json", "[\n  {\"targets\": [\"x:99999\"]}\n]");
        let e = read(&p).unwrap_err();
        assert!(
            e.ends_with(
                "bad1.json: [0].targets[0] = \"x:99999\": must be host:port with a port of 1-65535"
            ),
            "{e}"
        );
        let p = file("bad2.json", "[\n  {\"targets\": [],\n \"lables\": {}}\n]");
        let e = read(&p).unwrap_err();
        assert!(
            e.contains("bad2.json:3: not a file_sd target list: unknown field `lables`"),
            "{e}"
        );
        let p = file(
            "bad3.json",
            r#"[{"targets": [], "labels": {"src_region": "a b"}}]"#,
        );
        assert!(
            read(&p)
                .unwrap_err()
                .contains("labels.src_region = \"a b\"")
        );
    }
}
