//! The `[collector]` section: where results are pushed, with which token,
//! and where they wait while the collector is away.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::PushSettings;
use super::file::{Kind, read_text};
use super::raw::{RawCollector, S};
use super::span::{Checker, Loc};

impl Checker {
    /// The `[collector]` section; `None` when it has problems (all recorded).
    pub(super) fn collector(&mut self, v: &S<RawCollector>, base: &Path) -> Option<PushSettings> {
        let before = self.problems.len();
        let r = v.get_ref();
        let loc = self.loc(v);
        let url = self.collector_url(r, &loc);
        let token_file = r.token_file.as_ref().map(|f| base.join(f.get_ref()));
        let token = self.collector_token(r, &loc, base);
        let spool_dir = match &r.spool_dir {
            Some(d) if !d.get_ref().is_empty() => {
                let dir = base.join(d.get_ref());
                match super::spool_dir::check(&dir) {
                    Ok(()) => Some(dir),
                    Err(why) => {
                        self.bad_debug(d, "collector.spool_dir", &why);
                        None
                    }
                }
            }
            _ => {
                self.push(
                    &loc,
                    "collector.spool_dir",
                    None,
                    "required: where unsent results wait on disk",
                );
                None
            }
        };
        let spool_max_bytes = self.int_in(
            &r.spool_max_bytes,
            "collector.spool_max_bytes",
            64 << 10,
            10 << 30,
            64 << 20,
        );
        let batch_max_results = self.int_in(
            &r.batch_max_results,
            "collector.batch_max_results",
            1,
            100_000,
            5_000,
        );
        let flush_interval = self.millis_in(
            &r.flush_interval,
            "collector.flush_interval",
            100,
            60_000,
            2_000,
        );
        let timeout = self.millis_in(&r.timeout, "collector.timeout", 1_000, 60_000, 10_000);
        let ca_file = self.ca_file(r, url.as_deref(), base);
        let inventory = r.inventory.as_ref().is_some_and(|v| *v.get_ref());
        let inventory_refresh = self.millis_in(
            &r.inventory_refresh,
            "collector.inventory_refresh",
            1_000,
            3_600_000,
            60_000,
        );
        if let Some(v) = &r.inventory_refresh
            && !inventory
        {
            self.bad(
                v,
                "collector.inventory_refresh",
                format!("{:?}", v.get_ref()),
                "only applies with collector.inventory = true",
            );
        }
        if self.problems.len() > before {
            return None;
        }
        Some(PushSettings {
            url: url?,
            token: token?,
            token_file,
            spool_dir: spool_dir?,
            spool_max_bytes: spool_max_bytes? as u64,
            batch_max_results: batch_max_results? as usize,
            flush_interval: flush_interval?,
            timeout: timeout?,
            ca_file,
            inventory_refresh: if inventory { inventory_refresh } else { None },
        })
    }
    /// `collector.url`: an http:// or https:// URL with a host.
    fn collector_url(&mut self, r: &RawCollector, loc: &Loc) -> Option<String> {
        match &r.url {
            None => {
                self.push(
                    loc,
                    "collector.url",
                    None,
                    "required, like \"http://collector.internal:9640\"",
                );
                None
            }
            Some(u) => match reqwest::Url::parse(u.get_ref()) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                    Some(u.get_ref().clone())
                }
                _ => {
                    self.bad(
                        u,
                        "collector.url",
                        format!("{:?}", u.get_ref()),
                        "must be an http:// or https:// URL with a host",
                    );
                    None
                }
            },
        }
    }

    /// The token, inline or read from `collector.token_file`; never echoed.
    fn collector_token(&mut self, r: &RawCollector, loc: &Loc, base: &Path) -> Option<String> {
        let token = match (&r.token, &r.token_file) {
            (Some(t), None) => Some(t.get_ref().trim().to_string()),
            (None, Some(f)) => {
                let path = base.join(f.get_ref());
                match read_text(&path, Kind::Token) {
                    Ok(t) => Some(t.trim().to_string()),
                    Err(e) => {
                        self.bad(
                            f,
                            "collector.token_file",
                            format!("{:?}", f.get_ref()),
                            e.to_string(),
                        );
                        None
                    }
                }
            }
            _ => {
                self.push(
                    loc,
                    "collector",
                    None,
                    "set exactly one of token and token_file",
                );
                None
            }
        };
        if let Some(t) = &token
            && t.len() < crate::wire::MIN_TOKEN_LEN
        {
            // Never echo the secret itself.
            self.push(
                loc,
                "collector.token",
                None,
                format!(
                    "{} characters long; use at least {}",
                    t.len(),
                    crate::wire::MIN_TOKEN_LEN
                ),
            );
        }
        token
    }

    /// `collector.ca_file`: only for an https:// URL, and readable.
    fn ca_file(&mut self, r: &RawCollector, url: Option<&str>, base: &Path) -> Option<PathBuf> {
        r.ca_file.as_ref().and_then(|f| {
            let path = base.join(f.get_ref());
            let https = url.is_some_and(|u| u.starts_with("https://"));
            let problem = if !https {
                Some("only applies to an https:// collector.url".to_string())
            } else {
                super::ca_roots(&path).err()
            };
            match problem {
                Some(p) => {
                    self.bad(f, "collector.ca_file", format!("{:?}", f.get_ref()), p);
                    None
                }
                None => Some(path),
            }
        })
    }

    /// An integer setting between `min` and `max`, `default` when unset.
    fn int_in(
        &mut self,
        v: &Option<S<i64>>,
        field: &str,
        min: i64,
        max: i64,
        default: i64,
    ) -> Option<i64> {
        match v {
            None => Some(default),
            Some(v) if (min..=max).contains(v.get_ref()) => Some(*v.get_ref()),
            Some(v) => {
                self.bad(
                    v,
                    field,
                    v.get_ref().to_string(),
                    format!("must be between {min} and {max}"),
                );
                None
            }
        }
    }

    /// A duration setting between `min` and `max` milliseconds, `default`
    /// when unset.
    fn millis_in(
        &mut self,
        v: &Option<S<String>>,
        field: &str,
        min: u64,
        max: u64,
        default: u64,
    ) -> Option<Duration> {
        match v {
            None => Some(Duration::from_millis(default)),
            Some(v) => self.duration(
                v,
                field,
                Duration::from_millis(min),
                Duration::from_millis(max),
            ),
        }
    }
}
