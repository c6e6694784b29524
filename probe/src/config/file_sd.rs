//! Target lists in Prometheus file_sd JSON, so that inventories already kept
//! for Prometheus carry over:
//!
//! ```json
//! [{"targets": ["db.internal:5432", "10.0.0.7:443"], "labels": {"service": "db"}}]
//! ```
//!
//! Each `host:port` becomes a target named after it, unless the group has a
//! `name` label. Labels of the `[[file_sd]]` entry apply first, the group's
//! own labels over them.

use std::path::{Path, PathBuf};

use super::file::{Kind, read_text};
use super::raw::{FileSdGroup, RawFileSd, S};
use super::span::{Checker, LineIndex, Loc};
use super::targets::{Defaults, Draft};
use super::{DnsSettings, Target, split_host_port};

/// Reads the file of `[[file_sd]]` entry `i` and appends its targets.
/// Returns the file's path when it could be read.
pub(super) fn read(
    c: &mut Checker,
    i: usize,
    entry: &S<RawFileSd>,
    base: &Path,
    config_defaults: &Defaults,
    dns: &DnsSettings,
    targets: &mut Vec<(Target, Loc, String)>,
) -> Option<PathBuf> {
    let field = format!("file_sd[{i}]");
    let e = entry.get_ref();
    let Some(path_value) = &e.path else {
        let loc = c.loc(entry);
        c.push(&loc, format!("{field}.path"), None, "required");
        return None;
    };
    let path = base.join(path_value.get_ref());
    let shown = path.display().to_string();
    let text = match read_text(&path, Kind::FileSd) {
        Ok(t) => t,
        Err(err) => {
            let loc = c.loc(path_value);
            c.push(
                &loc,
                format!("{field}.path"),
                Some(format!("{:?}", path_value.get_ref())),
                err.to_string(),
            );
            return None;
        }
    };
    // The entry's own settings override [defaults] for its targets.
    let defaults = Defaults {
        interval: c
            .interval(e.interval.as_ref(), &format!("{field}.interval"))
            .unwrap_or(config_defaults.interval),
        timeout: c
            .timeout(e.timeout.as_ref(), &format!("{field}.timeout"))
            .unwrap_or(config_defaults.timeout),
        families: c
            .families(e.families.as_ref(), &format!("{field}.families"))
            .unwrap_or(config_defaults.families),
    };
    let entry_labels: Vec<(String, String, Loc)> = e
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.get_ref().clone(), c.loc(v)))
        .collect();
    add_targets(
        c,
        &field,
        &shown,
        &text,
        &defaults,
        &entry_labels,
        dns,
        targets,
    );
    Some(path)
}

/// Adds the targets of file_sd list `text` (read from `shown`) with
/// `defaults` and `entry_labels`; problems name `field` and the file.
#[allow(clippy::too_many_arguments)]
pub(super) fn add_targets(
    c: &mut Checker,
    field: &str,
    shown: &str,
    text: &str,
    defaults: &Defaults,
    entry_labels: &[(String, String, Loc)],
    dns: &DnsSettings,
    targets: &mut Vec<(Target, Loc, String)>,
) {
    let groups: Vec<FileSdGroup> = match serde_json::from_str(text) {
        Ok(g) => g,
        Err(err) => {
            let loc = Loc {
                file: Some(shown.to_string()),
                line: Some(err.line()),
            };
            c.push(
                &loc,
                field,
                None,
                format!("not a file_sd target list: {err}"),
            );
            return;
        }
    };

    // serde_json has no spans for values; find each group's line by its
    // first target, searching on from the previous group (groups are in
    // file order), which is good enough to point a person at it.
    let lines = LineIndex::new(text);
    let mut cursor = 0;
    for (g, group) in groups.iter().enumerate() {
        let found = group
            .targets
            .first()
            .and_then(|t| text[cursor..].find(&format!("\"{t}\"")))
            .map(|off| cursor + off);
        if let Some(off) = found {
            cursor = off;
        }
        let group_loc = Loc {
            file: Some(shown.to_string()),
            line: found.map(|off| lines.line_col(off).0),
        };
        let mut labels = entry_labels.to_vec();
        let mut name = None;
        for (k, v) in &group.labels {
            if k == "name" {
                name = Some((v.clone(), group_loc.clone()));
            } else {
                labels.retain(|(ek, _, _)| ek != k);
                labels.push((k.clone(), v.clone(), group_loc.clone()));
            }
        }
        for (t, addr) in group.targets.iter().enumerate() {
            let tfield = format!("[{g}].targets[{t}]");
            let Some((host, port)) = split_host_port(addr) else {
                c.push(
                    &group_loc,
                    tfield,
                    Some(format!("{addr:?}")),
                    "must be host:port, like \"db.internal:5432\" or \"[2001:db8::1]:443\"",
                );
                continue;
            };
            let draft = Draft {
                field: tfield,
                loc: group_loc.clone(),
                name: name.clone(),
                host: Some((host.to_string(), group_loc.clone())),
                port: Some((port, group_loc.clone())),
                labels: labels.clone(),
                interval: None,
                timeout: None,
                families: None,
                source_address: None,
                bind_device: None,
            };
            if let Some(target) = c.target(draft, defaults, dns) {
                targets.push(target);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::split_host_port;

    #[test]
    fn splits_host_and_port() {
        assert_eq!(split_host_port("db:5432"), Some(("db", 5432)));
        assert_eq!(split_host_port("[::1]:80"), Some(("[::1]", 80)));
        assert_eq!(split_host_port("db"), None);
        assert_eq!(split_host_port("::1:80"), None);
        assert_eq!(split_host_port(":80"), None);
        assert_eq!(split_host_port("db:http"), None);
    }
}
