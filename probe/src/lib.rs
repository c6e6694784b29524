//! vantage-probe: measures, from the region it runs in, whether and how fast
//! TCP connections to the backends it depends on open, and precisely why
//! they do not.
//!
//! # Layout
//!
//! Public modules, the API the collector builds on:
//!
//! - [`result`]: the result record sent to the collector ([`result::RoundResult`]).
//! - [`outcome`]: the bounded failure taxonomy; every label value comes from it.
//! - [`stats`]: per-target counters and histograms, and their bucket bounds.
//! - [`config`]: strict TOML (+ file_sd JSON) to a validated [`config::Config`];
//!   [`config::span`] turns a value's span into `file:line: field = value: reason`
//!   for the collector's config too.
//! - [`wire`]: the probe <-> collector boundary: the batch format and every
//!   shared path and header.
//!
//! Private modules, with what they give the collector, the tests and the
//! benchmarks re-exported here:
//!
//! - `connect` ([`attempt`]): one connect attempt (socket2 + tokio), latency
//!   from `tcp_info` ([`read_tcp_info`]); `icmp` reads an ICMP unreachable.
//! - `dns` ([`Resolver`]): timed, uncached lookups through hickory-resolver.
//! - `round` ([`Runner`], [`Prober`]): the probe function: one target once
//!   (DNS, then every address).
//! - `schedule`, `engine`: when rounds run; one task per target, no drift.
//! - `limits` ([`Limiter`]): global in-flight and rate caps below the scheduler.
//! - `open_files` ([`RESERVED_FDS`]): the open-files limit raised to what the
//!   caps can hold.
//! - `metrics` ([`Metrics`]), `exposition` ([`TargetChunks`]), `admin`: the
//!   metric names and registry, the `/metrics` text (exposition imports
//!   metrics, never the reverse), the admin listener.
//! - `push` ([`http_client`]): the spool, the sender and the fleet inventory
//!   fetcher.
//! - `service` ([`Service`]), `shutdown` ([`Control`]): the running probe,
//!   reload and drain.
//! - `check`: the one-shot `check` command and its renderers.
//! - `testbed` ([`Accepting`], [`Refusing`], [`FullQueue`], [`DnsServer`]),
//!   `demo`: real loopback backends for the demo, tests and benchmarks.
//! - `cli` ([`Cli`], [`execute`]): the command line.
//!
//! The top-level modules form a DAG, in the layer order that
//! `tests/tests/e2e/layers.rs` checks.

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
pub use push::http_client;
pub use round::{Prober, Runner};
pub use service::Service;
pub use shutdown::Control;
pub use tcp_info::read as read_tcp_info;
pub use testbed::{Accepting, Answer, DnsServer, FullQueue, Refusing};
