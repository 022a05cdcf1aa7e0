//! Black-box tests: the real binary on a free loopback port, driven over HTTP.
//! One test binary for all of them (one link, shared helpers).

mod catalogue;
mod helpers;
mod ingest;
mod lifecycle;
mod probes;
