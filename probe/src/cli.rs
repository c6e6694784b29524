//! Command line: raw arguments (clap) to validated plans, and the commands.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use tokio::sync::mpsc;

use crate::check::{self, CheckPlan, summary::Summary};
use crate::config::ConnectOptions;
use crate::config::{self, Config, Overrides, Target};
use crate::config::{DnsSettings, Families};
use crate::service::Service;
use crate::shutdown::{Control, forward_signals};

/// Exit code for a usage or config error (sysexits `EX_USAGE`).
pub(crate) const EXIT_USAGE: u8 = 64;

/// vantage-probe: measures TCP connect latency and failures, and the DNS
/// lookups before them, from the region it runs in.
#[derive(Debug, Parser)]
#[command(name = "vantage-probe", version, about, max_term_width = 100)]
pub struct Cli {
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, env = "VANTAGE_LOG", default_value = "info", global = true)]
    pub log_level: tracing::Level,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the probe: measure the config's targets, serve /metrics.
    ///
    /// SIGHUP reloads the config (a bad one is refused and the old one keeps
    /// running); SIGTERM or SIGINT drains rounds in flight and exits.
    Run {
        /// The config file (TOML).
        #[arg(short, long, env = "VANTAGE_CONFIG")]
        config: PathBuf,
        /// Identity overrides.
        #[command(flatten)]
        identity: IdentityArgs,
    },
    /// Check a config without running it; exit 64 if it is invalid.
    Validate {
        /// The config file (TOML).
        config: PathBuf,
        /// Identity overrides, as `run` would apply them.
        #[command(flatten)]
        identity: IdentityArgs,
    },
    /// Connect to HOST:PORT a few times and report each attempt and a summary.
    ///
    /// Per attempt: the DNS lookup time, each address, the kernel's
    /// SYN-to-SYN-ACK RTT, the wall-clock connect time, SYN retransmits and
    /// the outcome. Exit status 0 when every lookup and connect succeeded,
    /// 1 when any failed, 64 on bad arguments.
    Check(CheckArgs),
    /// Run the probe against backends it starts on this machine's loopback:
    /// an accepting service, a refusing port, a full accept queue and a DNS
    /// server with good and broken names. /metrics shows real measurements
    /// within seconds.
    Demo(DemoArgs),
}

/// Identity flags; they override the config file's `[probe]` section.
#[derive(Debug, Clone, Args)]
pub struct IdentityArgs {
    /// The region this probe runs in (overrides probe.src_region).
    #[arg(long, env = "VANTAGE_SRC_REGION")]
    pub src_region: Option<String>,
    /// The zone this probe runs in (overrides probe.zone).
    #[arg(long, env = "VANTAGE_ZONE")]
    pub zone: Option<String>,
    /// This probe's id (overrides probe.id).
    #[arg(long, env = "VANTAGE_PROBE_ID")]
    pub probe_id: Option<String>,
}

/// Arguments of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// What to connect to: `host:port`, `ip:port` or `[ipv6]:port`.
    pub target: String,
    /// Rounds to run.
    #[arg(short, long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub count: u32,
    /// Time between round starts (at least 100ms).
    #[arg(short, long, default_value = "1s", value_parser = parse_check_interval)]
    pub interval: Duration,
    /// Connect timeout per attempt.
    #[arg(short, long, default_value = "3s", value_parser = parse_timeout)]
    pub timeout: Duration,
    /// DNS server (IP or IP:port) instead of /etc/resolv.conf; repeatable.
    #[arg(long = "dns-server", value_name = "ADDR")]
    pub dns_servers: Vec<String>,
    /// DNS query timeout.
    #[arg(long, default_value = "2s", value_parser = parse_timeout)]
    pub dns_timeout: Duration,
    /// Answer from /etc/hosts before asking DNS.
    #[arg(long)]
    pub hosts_file: bool,
    /// Query the --dns-server over TCP only.
    #[arg(long, requires = "dns_servers")]
    pub dns_tcp: bool,
    /// IPv4 only.
    #[arg(short = '4', long, conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 only.
    #[arg(short = '6', long)]
    pub ipv6: bool,
    /// Connect from this local address.
    #[arg(long)]
    pub source: Option<IpAddr>,
    /// Connect through this network device (needs CAP_NET_RAW).
    #[arg(long)]
    pub bind_device: Option<String>,
    /// Newline-delimited JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to serve /metrics.
    #[arg(long, default_value = "127.0.0.1:9650")]
    pub admin: SocketAddr,
    /// Stop after this long (default: run until Ctrl-C).
    #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
}

fn parse_check_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(100) {
        return Err("at least 100ms: check is for people, not for load".into());
    }
    Ok(d)
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < config::ceiling::MIN_TIMEOUT || d > config::ceiling::MAX_TIMEOUT {
        return Err(format!(
            "must be between {} and {}",
            humantime::format_duration(config::ceiling::MIN_TIMEOUT),
            humantime::format_duration(config::ceiling::MAX_TIMEOUT)
        ));
    }
    Ok(d)
}

impl From<IdentityArgs> for Overrides {
    fn from(a: IdentityArgs) -> Overrides {
        Overrides {
            src_region: a.src_region,
            zone: a.zone,
            probe_id: a.probe_id,
        }
    }
}

/// Runs a parsed command line.
pub fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    match cli.command {
        Command::Run { config, identity } => runtime.block_on(async {
            let service = Service::bind(config, identity.into()).await?;
            let (tx, rx) = mpsc::channel(8);
            forward_signals(tx).context("installing signal handlers")?;
            service.run(rx).await
        })?,
        Command::Validate { config, identity } => {
            let cfg = Config::load(&config, &identity.into())?;
            print_validation(&config, &cfg)?;
        }
        Command::Check(args) => {
            let plan = check_plan(&args)?;
            return runtime.block_on(run_check(plan, args.json));
        }
        Command::Demo(args) => runtime.block_on(async {
            let (tx, rx) = mpsc::channel(8);
            forward_signals(tx.clone()).context("installing signal handlers")?;
            if let Some(d) = args.duration {
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    let _ = tx.send(Control::Shutdown).await;
                });
            }
            crate::demo::run(args.admin, rx).await
        })?,
    }
    Ok(ExitCode::SUCCESS)
}

fn print_validation(path: &std::path::Path, cfg: &Config) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let demand = cfg.demanded_connects_per_second();
    writeln!(
        out,
        "{}: ok: probe {} in {}, {} target{}{}{}, about {:.1} connects/s of {} allowed",
        path.display(),
        cfg.identity.probe_id,
        cfg.identity.src_region,
        cfg.targets.len(),
        if cfg.targets.len() == 1 { "" } else { "s" },
        if cfg.file_sd_paths.is_empty() {
            String::new()
        } else {
            format!(
                " (with {} file_sd list{})",
                cfg.file_sd_paths.len(),
                if cfg.file_sd_paths.len() == 1 {
                    ""
                } else {
                    "s"
                }
            )
        },
        match cfg.push.as_ref().and_then(|p| p.inventory_refresh) {
            None => String::new(),
            Some(_) if cfg.inventory_targets == 0 => {
                " (none from the fleet inventory: not fetched yet, or empty)".to_string()
            }
            Some(_) => format!(
                " ({} from the cached fleet inventory)",
                cfg.inventory_targets
            ),
        },
        demand,
        cfg.limits.max_connects_per_second
    )?;
    // The same hard limit binds the service: validate runs under its
    // unit's limits (ExecStartPre) or in its shell.
    let needed = crate::open_files::needed(&cfg.limits);
    if let Ok(limit) = crate::open_files::current()
        && limit.hard < needed
    {
        writeln!(
            out,
            "warning: {}",
            crate::open_files::shortfall(needed, limit.hard)
        )?;
    }
    if demand > f64::from(cfg.limits.max_connects_per_second) {
        writeln!(
            out,
            "warning: the targets ask for more connects than limits.max_connects_per_second; \
             rounds will start late and some will be skipped"
        )?;
    }
    Ok(())
}

/// Turns `check` arguments into a plan, with errors worded like clap's.
fn check_plan(a: &CheckArgs) -> anyhow::Result<CheckPlan> {
    let usage = |msg: String| -> anyhow::Error {
        anyhow::Error::new(UsageError(format!(
            "invalid value '{}' for '<TARGET>': {msg}",
            a.target
        )))
    };
    let (host, port) = config::split_host_port(&a.target).ok_or_else(|| {
        usage("expected HOST:PORT, like db.internal:5432 or [2001:db8::1]:443".into())
    })?;
    if !(1..=65535).contains(&port) {
        return Err(usage("the port must be 1-65535".into()));
    }
    let host = config::parse_host(host).map_err(|e| usage(e.into()))?;
    let mut families = match (a.ipv4, a.ipv6) {
        (true, _) => Families {
            ipv4: true,
            ipv6: false,
        },
        (_, true) => Families {
            ipv4: false,
            ipv6: true,
        },
        _ => Families::BOTH,
    };
    if let Some(src) = a.source {
        families = Families {
            ipv4: src.is_ipv4(),
            ipv6: src.is_ipv6(),
        };
    }
    if let config::Host::Ip(ip) = &host
        && !families.allows(*ip)
    {
        return Err(usage(
            "the address's family is excluded by -4/-6/--source".into(),
        ));
    }
    let servers = if a.dns_servers.is_empty() {
        None
    } else {
        let mut v = Vec::new();
        for s in &a.dns_servers {
            let addr = s
                .parse::<SocketAddr>()
                .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| {
                    UsageError(format!(
                        "invalid value '{s}' for '--dns-server <ADDR>': expected IP or IP:port"
                    ))
                })?;
            v.push(addr);
        }
        Some(v)
    };
    Ok(CheckPlan {
        target: Target {
            name: a.target.as_str().into(),
            host,
            port: port as u16,
            labels: Arc::default(),
            interval: a.interval,
            families,
            connect: ConnectOptions {
                timeout: a.timeout,
                source: a.source,
                bind_device: a.bind_device.as_deref().map(Arc::from),
            },
        },
        count: a.count,
        interval: a.interval,
        dns: DnsSettings {
            servers,
            timeout: a.dns_timeout,
            use_hosts_file: a.hosts_file,
            tcp_only: a.dns_tcp,
        },
    })
}

async fn run_check(plan: CheckPlan, json: bool) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let mut write_err = None;
    let rounds = check::run(&plan, |r| {
        let res = if json {
            check::json::round(&mut out, r)
        } else {
            check::text::round(&mut out, r)
        };
        if let Err(e) = res.and_then(|()| out.flush()) {
            write_err.get_or_insert(e);
        }
    })
    .await?;
    if let Some(e) = write_err {
        return Err(e).context("writing to stdout");
    }
    let summary = Summary::of(&plan.target.name, &rounds);
    if json {
        check::json::summary(&mut out, &summary)?;
    } else {
        check::text::summary(&mut out, &summary)?;
    }
    Ok(if summary.all_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A bad command line that clap could not catch itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub String);

/// The exit code for an error: 64 for config and usage errors, else 1.
pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    let usage = err.chain().any(|e| {
        e.downcast_ref::<config::ConfigError>().is_some()
            || e.downcast_ref::<UsageError>().is_some()
    });
    ExitCode::from(if usage { EXIT_USAGE } else { 1 })
}
