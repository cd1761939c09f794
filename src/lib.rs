//! permeable: a gateway for the "permeable firewall".
//!
//! The [`engine`] (`classify`, `policy`, `detect`, `redact`, `decode`) knows nothing of
//! Pingora, sockets or the command line: it takes a request's parts and returns a
//! [`engine::policy::Decision`]. `proxy` and `tls` drive it on live traffic; `rules_cli` drives the
//! very same code for `check`, `test`, `scan` and `explain`; `metrics` and `audit` record
//! what the proxy hands them; `cli` and `main` only wire things together.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod engine;
pub mod metrics;
pub mod pac;
pub mod pages;
pub mod proxy;
pub mod reload;
pub mod rules_cli;
pub mod server;
pub mod tls;
pub mod upstream;
