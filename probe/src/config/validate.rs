//! Raw config to validated [`Config`]: every value checked, every problem
//! collected, each naming its line, field and value. The targets are
//! checked in `targets.rs`, the `[collector]` section in `collector.rs`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::raw::{RawConfig, S};
use super::span::{Checker, Loc, Problem};
use super::targets::Defaults;
use super::{Config, DnsSettings, Families, Limits, Overrides, Target, ceiling, default, file_sd};
use crate::result::{Identity, MAX_NAME_LEN, MAX_PROBE_ID_LEN, ident_rule, valid_ident};

pub(super) fn validate(
    raw: RawConfig,
    text: &str,
    base: &Path,
    overrides: &Overrides,
    inventory: Option<&Inventory<'_>>,
) -> Result<Config, Vec<Problem>> {
    let mut c = Checker::new(text);

    let identity = c.identity(&raw, overrides);
    let admin_listen = match &raw.admin.listen {
        Some(v) => c.parse_with(
            v,
            "admin.listen",
            "must be an IP:port like \"0.0.0.0:9650\"",
        ),
        None => default::ADMIN_LISTEN.parse().ok(),
    };
    let limits = c.limits(&raw);
    let dns = c.dns(&raw);
    let push = raw
        .collector
        .as_ref()
        .and_then(|col| c.collector(col, base));

    let defaults = c.defaults(&raw);

    let mut targets = Vec::new();
    for (i, t) in raw.targets.iter().enumerate() {
        let draft = c.draft_from_toml(i, t);
        if let Some(t) = c.target(draft, &defaults, &dns) {
            targets.push(t);
        }
    }
    let mut file_sd_paths = Vec::new();
    for (i, f) in raw.file_sd.iter().enumerate() {
        if let Some(path) = file_sd::read(&mut c, i, f, base, &defaults, &dns, &mut targets) {
            file_sd_paths.push(path);
        }
    }
    let inventory_targets = match push.as_ref().filter(|p| p.inventory_refresh.is_some()) {
        Some(p) => c.inventory(p, inventory, &defaults, &dns, &mut targets),
        None => 0,
    };
    c.unique_names(&targets);
    if targets.len() > ceiling::TARGETS {
        c.problems.push(Problem {
            file: None,
            line: None,
            field: "targets".into(),
            value: Some(targets.len().to_string()),
            reason: format!("at most {} targets per probe", ceiling::TARGETS),
        });
    }

    if !c.problems.is_empty() {
        // In file order, so the list reads top to bottom like the file.
        c.problems
            .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        return Err(c.problems);
    }
    let (Some(identity), Some(admin_listen)) = (identity, admin_listen) else {
        unreachable!("a missing value always records a problem");
    };
    let mut targets: Vec<Arc<Target>> = targets.into_iter().map(|(t, ..)| Arc::new(t)).collect();
    targets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Config {
        identity,
        admin_listen,
        limits,
        dns,
        targets,
        file_sd_paths,
        push,
        inventory_targets,
    })
}

/// A fleet inventory to use instead of the cached one: a list fetched from
/// the collector, checked before it replaces the cache.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inventory<'a> {
    /// Where it came from, for problems.
    pub(crate) shown: &'a str,
    /// The file_sd JSON.
    pub(crate) text: &'a str,
}

impl Checker {
    fn limits(&mut self, raw: &RawConfig) -> Limits {
        Limits {
            max_in_flight: self
                .count_to(
                    &raw.limits.max_in_flight,
                    "limits.max_in_flight",
                    ceiling::IN_FLIGHT,
                )
                .unwrap_or(default::MAX_IN_FLIGHT),
            max_connects_per_second: self
                .count_to(
                    &raw.limits.max_connects_per_second,
                    "limits.max_connects_per_second",
                    ceiling::CONNECTS_PER_SECOND,
                )
                .unwrap_or(default::MAX_CONNECTS_PER_SECOND),
            max_dns_lookups_per_second: self
                .count_to(
                    &raw.limits.max_dns_lookups_per_second,
                    "limits.max_dns_lookups_per_second",
                    ceiling::DNS_LOOKUPS_PER_SECOND,
                )
                .unwrap_or(default::MAX_DNS_LOOKUPS_PER_SECOND),
        }
    }

    fn defaults(&mut self, raw: &RawConfig) -> Defaults {
        Defaults {
            interval: self
                .interval(raw.defaults.interval.as_ref(), "defaults.interval")
                .unwrap_or(default::INTERVAL),
            timeout: self
                .timeout(raw.defaults.timeout.as_ref(), "defaults.timeout")
                .unwrap_or(default::TIMEOUT),
            families: self
                .families(raw.defaults.families.as_ref(), "defaults.families")
                .unwrap_or(Families::BOTH),
        }
    }

    fn identity(&mut self, raw: &RawConfig, o: &Overrides) -> Option<Identity> {
        let src_region = self.ident(
            o.src_region.as_deref(),
            raw.probe.src_region.as_ref(),
            "probe.src_region",
            Some("--src-region / VANTAGE_SRC_REGION"),
            MAX_NAME_LEN,
        );
        let zone = self.ident(
            o.zone.as_deref(),
            raw.probe.zone.as_ref(),
            "probe.zone",
            None,
            MAX_NAME_LEN,
        );
        let probe_id = self.ident(
            o.probe_id.as_deref(),
            raw.probe.id.as_ref(),
            "probe.id",
            Some("--probe-id / VANTAGE_PROBE_ID"),
            MAX_PROBE_ID_LEN,
        );
        Some(Identity {
            src_region: src_region?,
            zone,
            probe_id: probe_id?,
        })
    }

    /// An identity value: set on the command line, or in the file.
    fn ident(
        &mut self,
        over: Option<&str>,
        file: Option<&S<String>>,
        field: &str,
        required: Option<&str>,
        max: usize,
    ) -> Option<String> {
        let (value, loc) = match (over, file) {
            (Some(v), _) => (v.to_string(), Loc::default()),
            (None, Some(v)) => (v.get_ref().clone(), self.loc(v)),
            (None, None) => {
                if let Some(flag) = required {
                    self.push(
                        &Loc::default(),
                        field,
                        None,
                        format!(
                            "required: a probe is told who and where it is, it never guesses \
                             (set it here or with {flag})"
                        ),
                    );
                }
                return None;
            }
        };
        if !valid_ident(&value, max) {
            self.push(&loc, field, Some(format!("{value:?}")), ident_rule(max));
            return None;
        }
        Some(value)
    }

    fn count_to(&mut self, v: &Option<S<i64>>, field: &str, max: u32) -> Option<u32> {
        Checker::count(self, v.as_ref()?, field, i64::from(max)).map(|n| n as u32)
    }

    fn dns(&mut self, raw: &RawConfig) -> DnsSettings {
        let servers = raw.dns.servers.as_ref().map(|list| {
            if list.get_ref().is_empty() {
                self.bad(
                    list,
                    "dns.servers",
                    "[]".into(),
                    "list at least one server, or leave it out to use /etc/resolv.conf",
                );
            }
            list.get_ref()
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let field = format!("dns.servers[{i}]");
                    let text = s.get_ref();
                    text.parse::<SocketAddr>()
                        .ok()
                        .or_else(|| {
                            text.parse::<IpAddr>()
                                .ok()
                                .map(|ip| SocketAddr::new(ip, 53))
                        })
                        .or_else(|| {
                            self.bad(
                                s,
                                &field,
                                format!("{text:?}"),
                                "must be an IP or IP:port, like \"10.0.0.2\" or \"[::1]:5353\"",
                            );
                            None
                        })
                })
                .collect::<Vec<_>>()
        });
        let timeout = match &raw.dns.timeout {
            Some(v) => self.duration(v, "dns.timeout", ceiling::MIN_TIMEOUT, ceiling::MAX_TIMEOUT),
            None => None,
        };
        let tcp_only = match &raw.dns.protocol {
            None => false,
            Some(p) => match p.get_ref().as_str() {
                "udp" => false,
                "tcp" if servers.is_some() => true,
                "tcp" => {
                    self.bad(
                        p,
                        "dns.protocol",
                        "\"tcp\"".into(),
                        "TCP-only lookups need explicit dns.servers",
                    );
                    false
                }
                other => {
                    self.bad(
                        p,
                        "dns.protocol",
                        format!("{other:?}"),
                        "must be \"udp\" or \"tcp\"",
                    );
                    false
                }
            },
        };
        DnsSettings {
            servers,
            timeout: timeout.unwrap_or(default::DNS_TIMEOUT),
            use_hosts_file: raw.dns.hosts_file.as_ref().is_some_and(|v| *v.get_ref()),
            tcp_only,
        }
    }

    pub(super) fn duration(
        &mut self,
        v: &S<String>,
        field: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let shown = format!("{:?}", v.get_ref());
        match humantime::parse_duration(v.get_ref()) {
            Ok(d) if d >= min && d <= max => Some(d),
            Ok(_) => {
                self.bad(
                    v,
                    field,
                    shown,
                    format!(
                        "must be between {} and {}",
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ),
                );
                None
            }
            Err(e) => {
                self.bad(
                    v,
                    field,
                    shown,
                    format!("not a duration ({e}); write it like \"500ms\", \"5s\" or \"1m\""),
                );
                None
            }
        }
    }

    pub(super) fn interval(&mut self, v: Option<&S<String>>, field: &str) -> Option<Duration> {
        self.duration(v?, field, ceiling::MIN_INTERVAL, ceiling::MAX_INTERVAL)
    }

    pub(super) fn timeout(&mut self, v: Option<&S<String>>, field: &str) -> Option<Duration> {
        self.duration(v?, field, ceiling::MIN_TIMEOUT, ceiling::MAX_TIMEOUT)
    }

    pub(super) fn families(
        &mut self,
        v: Option<&S<Vec<S<String>>>>,
        field: &str,
    ) -> Option<Families> {
        let v = v?;
        let mut fam = Families {
            ipv4: false,
            ipv6: false,
        };
        let mut ok = true;
        for (i, f) in v.get_ref().iter().enumerate() {
            match f.get_ref().as_str() {
                "ipv4" => fam.ipv4 = true,
                "ipv6" => fam.ipv6 = true,
                other => {
                    self.bad(
                        f,
                        &format!("{field}[{i}]"),
                        format!("{other:?}"),
                        "must be \"ipv4\" or \"ipv6\"",
                    );
                    ok = false;
                }
            }
        }
        if ok && !fam.ipv4 && !fam.ipv6 {
            self.bad(
                v,
                field,
                "[]".into(),
                "name at least one of \"ipv4\", \"ipv6\"",
            );
            ok = false;
        }
        ok.then_some(fam)
    }
}
