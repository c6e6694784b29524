//! Targets: a `[[targets]]` table, a file_sd group or a fleet inventory
//! entry, as a [`Draft`] checked into a [`Target`].

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::file::{Kind, ReadError, read_text};
use super::raw::{RawTarget, S};
use super::span::{Checker, Loc};
use super::validate::Inventory;
use super::{ConnectOptions, DnsSettings, Families, Host, PushSettings, Target, file_sd};
use crate::result::check_label;

/// A target before validation, from `[[targets]]` or from a file_sd group.
pub(super) struct Draft<'a> {
    pub(super) field: String,
    pub(super) loc: Loc,
    pub(super) name: Option<(String, Loc)>,
    pub(super) host: Option<(String, Loc)>,
    pub(super) port: Option<(i64, Loc)>,
    pub(super) labels: Vec<(String, String, Loc)>,
    pub(super) interval: Option<&'a S<String>>,
    pub(super) timeout: Option<&'a S<String>>,
    pub(super) families: Option<&'a S<Vec<S<String>>>>,
    pub(super) source_address: Option<&'a S<String>>,
    pub(super) bind_device: Option<&'a S<String>>,
}

/// Target settings that `[defaults]` (or a file_sd entry) supply.
#[derive(Debug, Clone, Copy)]
pub(super) struct Defaults {
    pub(super) interval: Duration,
    pub(super) timeout: Duration,
    pub(super) families: Families,
}

impl Checker {
    pub(super) fn draft_from_toml<'a>(&self, i: usize, t: &'a S<RawTarget>) -> Draft<'a> {
        let r = t.get_ref();
        Draft {
            field: format!("targets[{i}]"),
            loc: self.loc(t),
            name: r.name.as_ref().map(|v| (v.get_ref().clone(), self.loc(v))),
            host: r.host.as_ref().map(|v| (v.get_ref().clone(), self.loc(v))),
            port: r.port.as_ref().map(|v| (*v.get_ref(), self.loc(v))),
            labels: r
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.get_ref().clone(), self.loc(v)))
                .collect(),
            interval: r.interval.as_ref(),
            timeout: r.timeout.as_ref(),
            families: r.families.as_ref(),
            source_address: r.source_address.as_ref(),
            bind_device: r.bind_device.as_ref(),
        }
    }

    /// Validates one target; `None` when it has problems (all recorded).
    pub(super) fn target(
        &mut self,
        d: Draft<'_>,
        defaults: &Defaults,
        dns: &DnsSettings,
    ) -> Option<(Target, Loc, String)> {
        let before = self.problems.len();
        let f = &d.field;

        let host = match &d.host {
            None => {
                self.push(&d.loc, format!("{f}.host"), None, "required");
                None
            }
            Some((h, loc)) => self.host(h, loc, &format!("{f}.host")),
        };
        let port = self.port(&d, f);
        let name = match &d.name {
            Some((n, loc)) => self.target_name(n, loc, &format!("{f}.name")),
            None => match (&host, port) {
                (Some(h), Some(p)) => Some(match h {
                    Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]:{p}"),
                    h => format!("{h}:{p}"),
                }),
                _ => None,
            },
        };
        let labels = self.labels(&d.labels, f);

        let interval = self
            .interval(d.interval, &format!("{f}.interval"))
            .unwrap_or(defaults.interval);
        let timeout = self
            .timeout(d.timeout, &format!("{f}.timeout"))
            .unwrap_or(defaults.timeout);
        let families = self
            .families(d.families, &format!("{f}.families"))
            .unwrap_or(defaults.families);
        let source = d.source_address.and_then(|v| {
            self.parse_with::<IpAddr>(v, &format!("{f}.source_address"), "must be an IP address")
        });
        let bind_device = self.bind_device(d.bind_device, &format!("{f}.bind_device"));
        self.timing_rules(&d, host.as_ref(), interval, timeout, dns);
        let families = self.family_rules(&d, host.as_ref(), families, source);
        if self.problems.len() > before {
            return None;
        }
        Some((
            Target {
                name: name?.into(),
                host: host?,
                port: port?,
                labels: Arc::new(labels),
                interval,
                families,
                connect: ConnectOptions {
                    timeout,
                    source,
                    bind_device,
                },
            },
            d.loc,
            d.field,
        ))
    }

    fn port(&mut self, d: &Draft<'_>, f: &str) -> Option<u16> {
        match &d.port {
            None => {
                self.push(&d.loc, format!("{f}.port"), None, "required");
                None
            }
            Some((p, loc)) if !(1..=65535).contains(p) => {
                self.push(
                    loc,
                    format!("{f}.port"),
                    Some(p.to_string()),
                    "must be 1-65535",
                );
                None
            }
            Some((p, _)) => Some(*p as u16),
        }
    }

    fn bind_device(&mut self, v: Option<&S<String>>, field: &str) -> Option<Arc<str>> {
        v.and_then(|v| {
            let dev = v.get_ref();
            if dev.is_empty() || dev.len() > 15 || dev.contains(['/', ' ', '\0']) {
                self.bad(
                    v,
                    field,
                    format!("{dev:?}"),
                    "must be an interface name of 1-15 characters",
                );
                None
            } else {
                Some(Arc::<str>::from(dev.as_str()))
            }
        })
    }

    /// The timeout fits in the interval, with the DNS lookup before it.
    fn timing_rules(
        &mut self,
        d: &Draft<'_>,
        host: Option<&Host>,
        interval: Duration,
        timeout: Duration,
        dns: &DnsSettings,
    ) {
        let f = &d.field;
        if timeout >= interval {
            let shown = d.timeout.map_or_else(
                || format!("{} (default)", humantime::format_duration(timeout)),
                |v| format!("{:?}", v.get_ref()),
            );
            let loc = d.timeout.map_or_else(|| d.loc.clone(), |v| self.loc(v));
            self.push(
                &loc,
                format!("{f}.timeout"),
                Some(shown),
                format!(
                    "must be shorter than the interval ({})",
                    humantime::format_duration(interval)
                ),
            );
        }
        if let Some(Host::Name(_)) = host
            && timeout + dns.timeout > interval
        {
            self.push(
                &d.loc,
                f.clone(),
                None,
                format!(
                    "dns.timeout ({}) plus timeout ({}) must fit in the interval ({})",
                    humantime::format_duration(dns.timeout),
                    humantime::format_duration(timeout),
                    humantime::format_duration(interval)
                ),
            );
        }
    }

    /// The families a target really uses: those of its source address when
    /// it has one; its IP host must be among them.
    fn family_rules(
        &mut self,
        d: &Draft<'_>,
        host: Option<&Host>,
        mut families: Families,
        source: Option<IpAddr>,
    ) -> Families {
        let f = &d.field;
        // A source address pins the family: a socket bound to an IPv4
        // address cannot connect over IPv6.
        if let Some(src) = source {
            let want = Families {
                ipv4: src.is_ipv4(),
                ipv6: src.is_ipv6(),
            };
            if d.families.is_some() && families != want {
                let loc = self.loc(d.source_address.unwrap());
                self.push(
                    &loc,
                    format!("{f}.source_address"),
                    Some(format!("\"{src}\"")),
                    "its family does not match the target's families",
                );
            }
            families = want;
        }
        if let Some(Host::Ip(ip)) = host
            && !families.allows(*ip)
        {
            let loc = d.host.as_ref().map(|(_, l)| l.clone()).unwrap_or_default();
            self.push(
                &loc,
                format!("{f}.host"),
                Some(format!("\"{ip}\"")),
                "its address family is not among the target's families",
            );
        }

        families
    }

    fn host(&mut self, h: &str, loc: &Loc, field: &str) -> Option<Host> {
        match super::parse_host(h) {
            Ok(host) => Some(host),
            Err(reason) => {
                self.push(loc, field, Some(format!("{h:?}")), reason);
                None
            }
        }
    }

    fn target_name(&mut self, n: &str, loc: &Loc, field: &str) -> Option<String> {
        if n.is_empty() || n.len() > 128 || n.chars().any(char::is_control) {
            self.push(
                loc,
                field,
                Some(format!("{n:?}")),
                "must be 1-128 printable characters",
            );
            return None;
        }
        Some(n.to_string())
    }

    pub(super) fn labels(
        &mut self,
        labels: &[(String, String, Loc)],
        field: &str,
    ) -> BTreeMap<String, String> {
        const MAX_LABELS: usize = 16;
        let mut out = BTreeMap::new();
        for (k, v, loc) in labels {
            let f = format!("{field}.labels.{k}");
            match check_label(k, v) {
                Err(problem) => self.push(loc, f, Some(format!("{v:?}")), problem.rule(k)),
                Ok(()) => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        if out.len() > MAX_LABELS {
            let loc = labels.first().map(|l| l.2.clone()).unwrap_or_default();
            self.push(
                &loc,
                format!("{field}.labels"),
                None,
                format!("at most {MAX_LABELS} labels per target"),
            );
        }
        out
    }

    pub(super) fn unique_names(&mut self, targets: &[(Target, Loc, String)]) {
        let mut seen: HashMap<&str, &Loc> = HashMap::new();
        for (t, loc, field) in targets {
            if let Some(first) = seen.get(&*t.name) {
                let first_at = match (&first.file, first.line) {
                    (Some(file), _) => file.clone(),
                    (None, Some(line)) => format!("line {line}"),
                    (None, None) => "elsewhere".into(),
                };
                self.push(
                    loc,
                    format!("{field}.name"),
                    Some(format!("{:?}", t.name)),
                    format!("a target with this name is already defined ({first_at}); names must be unique"),
                );
            } else {
                seen.insert(&t.name, loc);
            }
        }
    }

    /// Adds the fleet inventory's targets (`given`, or the cached copy in
    /// the spool directory) to `targets`; a local target of the same name
    /// wins. Returns how many came from the inventory.
    pub(super) fn inventory(
        &mut self,
        push: &PushSettings,
        given: Option<&Inventory<'_>>,
        defaults: &Defaults,
        dns: &DnsSettings,
        targets: &mut Vec<(Target, Loc, String)>,
    ) -> usize {
        let cache = super::inventory_cache_path(&push.spool_dir);
        let (shown, text) = match given {
            Some(g) => (g.shown.to_string(), g.text.to_string()),
            None => match read_text(&cache, Kind::FileSd) {
                Ok(text) => (cache.display().to_string(), text),
                // Not fetched yet: the probe starts with its own targets.
                Err(ReadError::Io { err, .. }) if err.kind() == std::io::ErrorKind::NotFound => {
                    return 0;
                }
                Err(e) => {
                    let loc = Loc {
                        file: Some(cache.display().to_string()),
                        line: None,
                    };
                    self.push(
                        &loc,
                        "collector.inventory",
                        None,
                        format!("the cached inventory: {e}"),
                    );
                    return 0;
                }
            },
        };
        let mut fleet = Vec::new();
        file_sd::add_targets(
            self,
            "collector.inventory",
            &shown,
            &text,
            defaults,
            &[],
            dns,
            &mut fleet,
        );
        let local: std::collections::HashSet<Arc<str>> =
            targets.iter().map(|(t, ..)| t.name.clone()).collect();
        fleet.retain(|(t, ..)| !local.contains(&t.name));
        let n = fleet.len();
        targets.extend(fleet);
        n
    }
}
