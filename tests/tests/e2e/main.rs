//! End-to-end tests: real sockets and real binaries, loopback only.
//!
//! One test binary with modules (fewer link steps, one place to look).

mod cli;
mod collector;
mod config_edges;
mod connect;
mod dashboards;
mod deploy;
mod dns;
mod evidence;
mod fleet;
mod inventory;
mod lab;
mod layers;
mod memory;
mod reload;
mod service;
mod slow;
mod wire;
