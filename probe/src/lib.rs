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
//! - [`stats`], [`metrics`], [`exposition`], [`admin`]: per-target totals and `/metrics`.
//! - [`config`]: strict TOML (+ file_sd JSON) to a validated [`config::Config`].
//! - [`service`], [`shutdown`]: the running probe, reload and drain.
//! - [`check`]: the one-shot `check` command and its renderers.
//! - [`testbed`], [`demo`]: real loopback backends for the demo, tests and benchmarks.
//! - [`cli`]: the command line.

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
