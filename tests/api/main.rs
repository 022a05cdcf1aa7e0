//! Black-box tests: the real binary on a free loopback port, driven over HTTP.
//! One test binary for all of them (one link, shared helpers).

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

mod authz;
mod catalogue;
mod changes;
mod connections;
mod faults;
mod helpers;
mod ingest;
mod instances;
mod lifecycle;
mod metrics;
mod probes;
mod resilience;
mod storage_faults;
#[path = "../support/mod.rs"]
mod support;
