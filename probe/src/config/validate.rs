//! Raw config to validated [`Config`]: every value checked, every problem
//! collected, each naming its line, field and value.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::raw::{RawConfig, RawTarget, S};
use super::{
    Config, Host, Limits, Overrides, Problem, PushSettings, Target, ceiling, default, file_sd,
};
use crate::connect::ConnectOptions;
use crate::dns::{DnsSettings, Families};
use crate::result::{Identity, MAX_NAME_LEN, MAX_PROBE_ID_LEN, ident_rule, valid_ident};

/// Label names the probe sets itself; a user label may not shadow them.
pub(crate) const RESERVED_LABELS: [&str; 9] = [
    "target",
    "family",
    "reason",
    "outcome",
    "src_region",
    "le",
    "instance",
    "job",
    "name",
];

/// Where a value came from, for the problem report.
#[derive(Debug, Clone, Default)]
pub(super) struct Loc {
    pub(super) file: Option<String>,
    pub(super) line: Option<usize>,
}

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

pub(super) struct Checker {
    lines: super::LineIndex,
    pub(super) problems: Vec<Problem>,
}

pub(super) fn validate(
    raw: RawConfig,
    text: &str,
    base: &Path,
    overrides: &Overrides,
    inventory: Option<&Inventory<'_>>,
) -> Result<Config, Vec<Problem>> {
    let mut c = Checker {
        lines: super::LineIndex::new(text),
        problems: Vec::new(),
    };

    let identity = c.identity(&raw, overrides);
    let admin_listen = match &raw.admin.listen {
        Some(v) => c.parse_with(
            v,
            "admin.listen",
            "must be an IP:port like \"0.0.0.0:9650\"",
        ),
        None => default::ADMIN_LISTEN.parse().ok(),
    };
    let limits = Limits {
        max_in_flight: c
            .count(
                &raw.limits.max_in_flight,
                "limits.max_in_flight",
                ceiling::IN_FLIGHT,
            )
            .unwrap_or(default::MAX_IN_FLIGHT),
        max_connects_per_second: c
            .count(
                &raw.limits.max_connects_per_second,
                "limits.max_connects_per_second",
                ceiling::CONNECTS_PER_SECOND,
            )
            .unwrap_or(default::MAX_CONNECTS_PER_SECOND),
        max_dns_lookups_per_second: c
            .count(
                &raw.limits.max_dns_lookups_per_second,
                "limits.max_dns_lookups_per_second",
                ceiling::DNS_LOOKUPS_PER_SECOND,
            )
            .unwrap_or(default::MAX_DNS_LOOKUPS_PER_SECOND),
    };
    let dns = c.dns(&raw);
    let push = raw
        .collector
        .as_ref()
        .and_then(|col| c.collector(col, base));

    let defaults = Defaults {
        interval: c
            .interval(raw.defaults.interval.as_ref(), "defaults.interval")
            .unwrap_or(default::INTERVAL),
        timeout: c
            .timeout(raw.defaults.timeout.as_ref(), "defaults.timeout")
            .unwrap_or(default::TIMEOUT),
        families: c
            .families(raw.defaults.families.as_ref(), "defaults.families")
            .unwrap_or(Families::BOTH),
    };

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
    pub(super) fn loc<T>(&self, v: &S<T>) -> Loc {
        self.loc_span(v.span())
    }

    fn loc_span(&self, span: Range<usize>) -> Loc {
        Loc {
            file: None,
            line: Some(self.lines.line_col(span.start).0),
        }
    }

    pub(super) fn push(
        &mut self,
        loc: &Loc,
        field: impl Into<String>,
        value: Option<String>,
        reason: impl Into<String>,
    ) {
        self.problems.push(Problem {
            file: loc.file.clone(),
            line: loc.line,
            field: field.into(),
            value,
            reason: reason.into(),
        });
    }

    fn bad<T>(&mut self, v: &S<T>, field: &str, shown: String, reason: impl Into<String>) {
        let loc = self.loc(v);
        self.push(&loc, field, Some(shown), reason);
    }

    fn parse_with<T: std::str::FromStr>(
        &mut self,
        v: &S<String>,
        field: &str,
        reason: &str,
    ) -> Option<T> {
        match v.get_ref().parse() {
            Ok(x) => Some(x),
            Err(_) => {
                self.bad(v, field, format!("{:?}", v.get_ref()), reason);
                None
            }
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

    fn count(&mut self, v: &Option<S<i64>>, field: &str, max: u32) -> Option<u32> {
        let v = v.as_ref()?;
        let n = *v.get_ref();
        if n < 1 || n > i64::from(max) {
            self.bad(
                v,
                field,
                n.to_string(),
                format!("must be between 1 and {max}"),
            );
            return None;
        }
        Some(n as u32)
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

    /// Adds the fleet inventory's targets (`given`, or the cached copy in
    /// the spool directory) to `targets`; a local target of the same name
    /// wins. Returns how many came from the inventory.
    fn inventory(
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
            None => match std::fs::read_to_string(&cache) {
                Ok(text) => (cache.display().to_string(), text),
                // Not fetched yet: the probe starts with its own targets.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
                Err(e) => {
                    let loc = Loc {
                        file: Some(cache.display().to_string()),
                        line: None,
                    };
                    self.push(
                        &loc,
                        "collector.inventory",
                        None,
                        format!("cannot read the cached inventory: {e}"),
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

    fn collector(&mut self, v: &S<super::raw::RawCollector>, base: &Path) -> Option<PushSettings> {
        let before = self.problems.len();
        let r = v.get_ref();
        let loc = self.loc(v);
        let url = match &r.url {
            None => {
                self.push(
                    &loc,
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
        };
        let token_file = r.token_file.as_ref().map(|f| base.join(f.get_ref()));
        let token = match (&r.token, &r.token_file) {
            (Some(t), None) => Some(t.get_ref().trim().to_string()),
            (None, Some(f)) => {
                let path = base.join(f.get_ref());
                match std::fs::read_to_string(&path) {
                    Ok(t) => Some(t.trim().to_string()),
                    Err(e) => {
                        self.bad(
                            f,
                            "collector.token_file",
                            format!("{:?}", f.get_ref()),
                            format!("cannot read {}: {e}", path.display()),
                        );
                        None
                    }
                }
            }
            _ => {
                self.push(
                    &loc,
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
                &loc,
                "collector.token",
                None,
                format!(
                    "{} characters long; use at least {}",
                    t.len(),
                    crate::wire::MIN_TOKEN_LEN
                ),
            );
        }
        let spool_dir = match &r.spool_dir {
            Some(d) if !d.get_ref().is_empty() => Some(base.join(d.get_ref())),
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
        let int =
            |c: &mut Self, v: &Option<S<i64>>, field: &str, min: i64, max: i64, default: i64| {
                match v {
                    None => Some(default),
                    Some(v) if (min..=max).contains(v.get_ref()) => Some(*v.get_ref()),
                    Some(v) => {
                        c.bad(
                            v,
                            field,
                            v.get_ref().to_string(),
                            format!("must be between {min} and {max}"),
                        );
                        None
                    }
                }
            };
        let spool_max_bytes = int(
            self,
            &r.spool_max_bytes,
            "collector.spool_max_bytes",
            64 << 10,
            10 << 30,
            64 << 20,
        );
        let batch_max_results = int(
            self,
            &r.batch_max_results,
            "collector.batch_max_results",
            1,
            100_000,
            5_000,
        );
        let dur =
            |c: &mut Self, v: &Option<S<String>>, field: &str, min: u64, max: u64, default: u64| {
                match v {
                    None => Some(Duration::from_millis(default)),
                    Some(v) => c.duration(
                        v,
                        field,
                        Duration::from_millis(min),
                        Duration::from_millis(max),
                    ),
                }
            };
        let flush_interval = dur(
            self,
            &r.flush_interval,
            "collector.flush_interval",
            100,
            60_000,
            2_000,
        );
        let timeout = dur(self, &r.timeout, "collector.timeout", 1_000, 60_000, 10_000);
        let ca_file = r.ca_file.as_ref().and_then(|f| {
            let path = base.join(f.get_ref());
            let https = url.as_deref().is_some_and(|u| u.starts_with("https://"));
            let problem = if !https {
                Some("only applies to an https:// collector.url".to_string())
            } else {
                std::fs::metadata(&path)
                    .err()
                    .map(|e| format!("cannot read {}: {e}", path.display()))
            };
            match problem {
                Some(p) => {
                    self.bad(f, "collector.ca_file", format!("{:?}", f.get_ref()), p);
                    None
                }
                None => Some(path),
            }
        });
        let inventory = r.inventory.as_ref().is_some_and(|v| *v.get_ref());
        let inventory_refresh = dur(
            self,
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

    fn draft_from_toml<'a>(&self, i: usize, t: &'a S<RawTarget>) -> Draft<'a> {
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
        let port = match &d.port {
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
        };
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
        let mut families = self
            .families(d.families, &format!("{f}.families"))
            .unwrap_or(defaults.families);
        let source = d.source_address.and_then(|v| {
            self.parse_with::<IpAddr>(v, &format!("{f}.source_address"), "must be an IP address")
        });
        let bind_device = d.bind_device.and_then(|v| {
            let dev = v.get_ref();
            if dev.is_empty() || dev.len() > 15 || dev.contains(['/', ' ', '\0']) {
                self.bad(
                    v,
                    &format!("{f}.bind_device"),
                    format!("{dev:?}"),
                    "must be an interface name of 1-15 characters",
                );
                None
            } else {
                Some(Arc::<str>::from(dev.as_str()))
            }
        });

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
        if let Some(Host::Name(_)) = &host
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
        if let Some(Host::Ip(ip)) = &host
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
            let name_ok = k
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !k.starts_with("__");
            if !name_ok {
                self.push(
                    loc,
                    f,
                    Some(format!("{v:?}")),
                    "label names are letters, digits and '_', not starting with a digit or '__'",
                );
            } else if RESERVED_LABELS.contains(&k.as_str()) {
                self.push(
                    loc,
                    f,
                    Some(format!("{v:?}")),
                    format!("'{k}' is set by the probe itself; pick another label name"),
                );
            } else if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) {
                self.push(
                    loc,
                    f,
                    Some(format!("{v:?}")),
                    "must be 1-128 printable characters",
                );
            } else {
                out.insert(k.clone(), v.clone());
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

    fn unique_names(&mut self, targets: &[(Target, Loc, String)]) {
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
}
