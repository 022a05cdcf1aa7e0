//! show-service: a TV-show catalogue API.
//!
//! Partners push show feeds in (`POST /v1/shows`), apps read the DRM-ready catalogue out
//! (`GET /v1/shows`). Every call carries an OAuth 2.0 client-credentials access token.
//!
//! # Layout
//! Top to bottom; each module imports only modules below it (`tests/layers.rs` holds this
//! picture as a table, checks every import against it, and finds no cycle between the
//! files of a module):
//!
//! ```text
//! cli        the subcommands (serve, import, table create, token, healthcheck)
//! http       the axum router, one module per resource, middleware, OpenAPI, HTTP metrics
//! error      the one API error type and its JSON envelope
//! catalogue  the catalogue GET /v1/shows serves, kept in memory and fresh; its change feed
//! auth       token verification and the local client-credentials issuer
//! store      the ShowStore trait, sqlite and dynamodb, the change record and log
//! telemetry  tracing, the metrics table and its two exporters
//! config     typed settings, one file per concern
//! domain     Show and its parts, feeds, scopes
//! ```
//!
//! - [`cli`]: the subcommands; `main.rs` only parses the command line and calls it.
//! - [`http`]: the axum router, one module per resource (the issuer's routes in
//!   `http::oauth`), middleware, the OpenAPI document, the HTTP metrics and `/metrics`.
//! - [`error`]: the one API error type and its JSON envelope.
//! - [`catalogue`]: the catalogue `GET /v1/shows` serves, kept in memory (bytes in page
//!   order, gzip, ETag) and kept fresh against the store's change record (when to ask,
//!   what to re-read, what to serve while a refill runs), and the change feed clients
//!   follow from a list's position (`GET /v1/shows/changes`). Imports `store` and `domain`.
//! - [`auth`]: token verification (JWKS, claims, scopes) and the local client-credentials
//!   issuer's decisions (clients, secrets, limits, minting), as plain types.
//! - [`store`]: the `ShowStore` trait and its implementations (`sqlite`, `dynamodb`).
//! - [`telemetry`]: tracing setup (JSON lines in containers, readable text on a terminal),
//!   the metrics table, and its Prometheus and CloudWatch EMF exporters; imports `config`
//!   only, and no HTTP crate.
//! - [`config`]: typed settings, one file per concern, loaded from defaults < optional TOML
//!   file < environment; every variable the service reads is written once, in `SETTINGS`.
//! - [`domain`]: `Show` and its parts, parsed from untrusted JSON into valid types, and the
//!   `Scope`s a client may hold.
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
