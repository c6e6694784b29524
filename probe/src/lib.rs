//! vantage-probe: measures, from the region it runs in, whether and how fast
//! TCP connections to the backends it depends on open, and precisely why
//! they do not.
//!
//! # Layout
//!
//! - [`result`]: the result record sent to the collector ([`result::RoundResult`]).
//! - [`outcome`]: the bounded failure taxonomy; every label value comes from it.
//! - [`connect`]: one connect attempt (socket2 + tokio), latency from [`tcp_info`].
//! - [`dns`]: timed, uncached lookups through hickory-resolver.
//! - [`round`]: the probe function: one target once (DNS, then every address).
//! - [`schedule`], [`engine`]: when rounds run; one task per target, no drift.
//! - [`limits`]: global in-flight and rate caps below the scheduler.
//! - [`open_files`]: the open-files limit raised to what the caps can hold.
//! - [`stats`], [`metrics`], [`exposition`], [`admin`]: per-target totals, the
//!   metric names and registry, the `/metrics` text (exposition imports
//!   metrics, never the reverse), the admin listener.
//! - [`config`]: strict TOML (+ file_sd JSON) to a validated [`config::Config`];
//!   [`config::span`] turns a value's span into `file:line: field = value: reason`
//!   for the collector's config too.
//! - [`wire`]: the probe <-> collector boundary: the batch format and every
//!   shared path and header.
//! - [`push`]: the spool, the sender and the fleet inventory fetcher.
//! - [`service`], [`shutdown`]: the running probe, reload and drain.
//! - [`check`]: the one-shot `check` command and its renderers.
//! - [`testbed`], [`demo`]: real loopback backends for the demo, tests and benchmarks.
//! - [`cli`]: the command line.
//!
//! The top-level modules form a DAG, in the layer order that
//! `tests/tests/e2e/layers.rs` checks.

pub mod admin;
pub mod check;
pub mod cli;
pub mod config;
pub mod connect;
pub mod demo;
pub mod dns;
pub mod engine;
pub mod exposition;
pub mod icmp;
pub mod limits;
pub mod memory;
pub mod metrics;
pub mod open_files;
pub mod outcome;
pub mod push;
pub mod result;
pub mod round;
pub mod schedule;
pub mod service;
pub mod shutdown;
pub mod stats;
pub mod tcp_info;
pub mod testbed;
pub mod wire;
