//! show-service: a TV-show catalogue API.
//!
//! Partners push show feeds in (`POST /v1/shows`), apps read the DRM-ready catalogue out
//! (`GET /v1/shows`). Every call carries an OAuth 2.0 client-credentials access token.
//!
//! # Layout
//! - [`config`]: typed settings, one file per concern, loaded from defaults < optional TOML
//!   file < environment; every variable the service reads is written once, in `SETTINGS`.
//! - [`telemetry`]: tracing setup (JSON lines in containers, readable text on a terminal).
//! - [`error`]: the one API error type and its JSON envelope.
//! - [`domain`]: `Show` and its parts, parsed from untrusted JSON into valid types, and the
//!   `Scope`s a client may hold.
//! - [`store`]: the `ShowStore` trait and its implementations (`sqlite`, `dynamodb`).
//! - [`catalogue`]: the catalogue `GET /v1/shows` serves, kept in memory (bytes in page
//!   order, gzip, ETag) and kept fresh against the store's change record (when to ask,
//!   what to re-read, what to serve while a refill runs).
//! - [`auth`]: token verification (JWKS, claims, scopes) and the local client-credentials
//!   issuer's decisions (clients, secrets, limits, minting), as plain types.
//! - [`http`]: the axum router, one module per resource (the issuer's routes in
//!   `http::oauth`), middleware, OpenAPI document.
//!
//! Dependencies point down: `http` → `auth` → `domain` and `http` → `catalogue` →
//! `store` → `domain`; no module imports one above it (`tests/layers.rs` checks).
//! - [`cli`]: the subcommands (`serve`, `import`, `table create`, `token`, `healthcheck`).
//!
//! `main.rs` is thin: parse the command line, load settings, start telemetry, dispatch.

pub mod auth;
pub mod catalogue;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod store;
pub mod telemetry;
