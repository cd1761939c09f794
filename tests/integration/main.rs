//! One integration-test binary: the gateway in-process against real local servers with
//! real TLS, driven by real clients.

mod answers;
mod browser;
mod gateway;
mod harness;
mod identity;
mod inspection;
mod observability;
mod pac;
mod plain_http;
mod policy;
mod reliability;
mod rule_pack;
mod sdk;
mod stopping;
