//! vantage-collector: where the fleet's evidence lives. Probes push batches
//! of results; the collector keeps them durably, knows which probes are
//! alive, judges the region x target matrix into incidents, and is the
//! fleet's one Prometheus scrape target.
//!
//! # Layout
//!
//! Layers, top first; each imports only the ones below it (kept by the
//! layer check in `tests/tests/e2e/layers.rs`):
//!
//! - `cli`, `demo`, `service`, `reload`: the command line, the fleet on one
//!   machine, the running collector, and what a reload changes.
//! - `http`: router, handlers, extractors and the one error type: the only
//!   module that knows axum.
//! - `app`: the shared state built once, and the evaluation loop.
//! - `ingest`, `metrics`, `report`: a batch's path in, `/metrics`, the
//!   incident report and its renderers.
//! - `evidence`, `inventory`: per-cell tests, localized findings,
//!   incidents, reachability, Alertmanager evidence; the fleet's target list.
//! - `fleet`, `auth`, `validate`, `tls`, `decode`: live probe state,
//!   tokens, batch checks, the TLS listener, a pushed body read as a
//!   stream into a batch.
//! - `store`: the embedded SQLite store: the only module that writes SQL.
//! - `time`, `config`, `groups`: the leaves (a target's group is decided
//!   by its labels alone).

mod app;
mod auth;
mod cli;
pub mod config;
mod decode;
mod demo;
mod evidence;
mod fleet;
#[doc(hidden)]
pub mod fuzz;
mod groups;
mod http;
mod ingest;
mod inventory;
mod metrics;
mod reload;
mod report;
mod service;
mod store;
mod time;
mod tls;
mod validate;

pub use cli::{Cli, execute, exit_code};
pub use evidence::book::Book;
pub use evidence::cells::{LATENCY_MIN_BASELINE, LATENCY_WINDOW_MINUTES};
pub use evidence::{Assessment, Held, Judgment, Params, assess};
pub use service::Collector;
pub use store::read::Window;
pub use store::{Outcome, Store, StoreError};
