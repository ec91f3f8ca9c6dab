//! berth: a self-contained, offline DRM license server for vessels.
//!
//! Module map (each layer knows one outside system):
//!
//! - [`ids`]: domain types parsed at the edge (KID, communication-key id, month,
//!   license type, key system) and secret byte arrays that never print.
//! - [`clock`]: the only reader of the wall clock.
//! - [`crypto`]: the only caller of openssl (AES-GCM, AES-CBC, HMAC, SHA-256,
//!   Ed25519, randomness, constant-time comparison).
//! - [`config`]: defaults < file < `BERTH_*` environment < flags, validated once.
//! - [`token`]: license tokens and entitlements (pure).
//! - [`chain`]: the license log's hash-chain rule (pure).
//! - [`clearkey`]: the W3C Clear Key message format (pure).
//! - [`chunks`]: a writer that hands its output to another thread in chunks.
//! - [`durable`]: files that must outlive a power cut (their directory synced).
//! - [`installation`]: setting up an installation (checked id, vessel type and
//!   name), its master key, the data dir's lock, backup and restore.
//! - [`keyfile`]: JSON and CPIX key import files (pure).
//! - [`store`]: the only place with SQL: migrations, key stores, the license log
//!   writer (group commit), usage aggregates.
//! - [`license`]: token + keys + log -> license; no HTTP, no SQL.
//! - [`report`]: monthly usage reports: export, sign, verify, fleet summary.
//! - [`logline`]: the service log's lines, with outside text escaped.
//! - [`histogram`]: lock-free latency histograms for `/metrics`.
//! - [`http`]: the only place that knows actix-web: the license API.
//! - [`accounts`]: crew account rules and fresh secrets (CLI and admin UI).
//! - [`admin`]: the crew UI on its own listener: sign-in, dashboard, metrics.
//! - [`server`]: assembles a running berth from a config and bound listeners.
//! - [`systemd`]: sd_notify readiness, status, watchdog.
//! - [`cli`]: one function per subcommand; only `serve` starts HTTP.

pub mod accounts;
pub mod admin;
pub mod chain;
pub mod chunks;
pub mod clearkey;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod durable;
pub mod histogram;
pub mod http;
pub mod ids;
pub mod installation;
pub mod keyfile;
pub mod license;
pub mod logline;
pub mod report;
pub mod server;
pub mod store;
pub mod systemd;
pub mod token;
