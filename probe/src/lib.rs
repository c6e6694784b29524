//! vantage-probe: measures, from the region it runs in, whether and how fast
//! TCP connections to the backends it depends on open, and precisely why
//! they do not.
//!
//! # Layout
//!
//! Five modules are public: the records, the taxonomy, the counters, the
//! config and the protocol the collector builds on. The others are private;
//! what the collector, the tests and the benchmarks use of them is
//! re-exported here. In layer order, top first; each module imports only its
//! own layer and the ones below (`tests/tests/e2e/layers.rs` checks it):
//!
//! - `cli` ([`Cli`], [`execute`], [`exit_code`]): the command line; `demo` and
//!   `check`: the README's first command and the one-shot `check` command
//!   with its renderers.
//! - `service` ([`Service`]): the running probe: start, reload, drain.
//! - `admin`, `engine`, `push` ([`http_client`]): the admin listener; one task
//!   per target, no drift; the spool, the sender and the fleet inventory
//!   fetcher.
//! - `exposition` ([`TargetChunks`], [`escape_label_value`]), `round`
//!   ([`Runner`], [`Prober`]), `limits` ([`Limiter`]), `open_files`
//!   ([`RESERVED_FDS`]): the `/metrics` text; the probe function (one target
//!   once: DNS, then every address); the in-flight and rate caps below the
//!   scheduler; the open-files limit raised to what the caps can hold.
//! - `dns` ([`Resolver`]), `connect` ([`attempt`]): timed, uncached lookups
//!   through hickory-resolver; one connect attempt (socket2 + tokio).
//! - [`config`]: strict TOML (+ file_sd JSON) to a validated [`config::Config`],
//!   and the plain options a connect and a lookup take
//!   ([`config::ConnectOptions`], [`config::DnsSettings`],
//!   [`config::Families`]); [`config::span`] turns a value's span into
//!   `file:line: field = value: reason` for the collector's config too.
//! - `metrics` ([`Metrics`]), [`stats`], [`wire`], [`result`]: the probe's own
//!   series; per-target counters and histograms and their bucket bounds; the
//!   probe <-> collector batch format and every shared path and header; the
//!   result record ([`result::RoundResult`]).
//! - The leaves: [`outcome`] (the bounded failure taxonomy; every label value
//!   comes from it), `icmp` (an ICMP unreachable from the error queue),
//!   `tcp_info` ([`read_tcp_info`]), `schedule`, `memory`, `shutdown`
//!   ([`Control`]) and `testbed` ([`Accepting`], [`Refusing`], [`FullQueue`],
//!   [`DnsServer`]: real loopback backends for the demo, tests and
//!   benchmarks).

mod admin;
mod check;
mod cli;
pub mod config;
mod connect;
mod demo;
mod dns;
mod engine;
mod exposition;
mod icmp;
mod limits;
pub mod loss;
mod memory;
mod metrics;
mod open_files;
pub mod outcome;
mod push;
pub mod result;
mod round;
mod schedule;
mod service;
mod shutdown;
pub mod stats;
mod tcp_info;
mod testbed;
pub mod wire;

pub use cli::{Cli, execute, exit_code};
pub use connect::attempt;
pub use dns::Resolver;
pub use exposition::{TargetChunks, escape as escape_label_value};
pub use limits::Limiter;
pub use metrics::Metrics;
pub use open_files::RESERVED as RESERVED_FDS;
pub use push::{http_client, text_capped};
pub use round::{Prober, Runner};
pub use service::Service;
pub use shutdown::Control;
pub use tcp_info::read as read_tcp_info;
pub use testbed::{Accepting, Answer, DnsServer, FullQueue, Refusing};
