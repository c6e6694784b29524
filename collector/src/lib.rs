//! vantage-collector: where the fleet's evidence lives. Probes push batches
//! of results; the collector keeps them durably, knows which probes are
//! alive, and is the fleet's one Prometheus scrape target.
//!
//! # Layout
//!
//! - [`config`]: strict TOML to a validated [`config::Config`].
//! - [`auth`]: bearer tokens bound to one region (and optionally probe ids).
//! - [`ingest`]: `POST /api/v1/results`: decode, check ([`validate`]), store, acknowledge.
//! - [`store`]: the embedded SQLite store: receipts, probes, per-minute rollups, failures.
//! - [`evidence`]: the region x target matrix, per-cell tests, localized findings, reachability.
//! - [`fleet`]: live state: probe liveness and clocks, per (region, target) totals.
//! - [`inventory`]: `GET /api/v1/targets`: the fleet's one target list, per region.
//! - [`tls`]: rustls on the listener.
//! - [`reload`]: tokens and certificate read again on SIGHUP and when their files change.
//! - [`metrics`], [`read_api`], [`server`]: `/metrics`, the JSON read API, health endpoints.
//! - [`service`], [`cli`]: the running collector and its command line.
//! - [`demo`]: the whole fleet on one machine (the README's first command).

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod evidence;
pub mod fleet;
pub mod http;
pub mod ingest;
pub mod inventory;
pub mod metrics;
pub mod reload;
pub mod report;
pub mod service;
pub mod store;
pub mod time;
pub mod tls;
pub mod validate;
