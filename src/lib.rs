//! berth: a self-contained, offline DRM license server for vessels.
//!
//! Module map (each layer knows one outside system):
//!
//! - [`ids`]: domain types parsed at the edge (KID, communication-key id, month,
//!   license type, key system) and secret byte arrays that never print.
//! - [`clock`]: the only reader of the wall clock.
//! - [`crypto`]: the only module that names openssl (AES-GCM, AES-CBC, HMAC,
//!   SHA-256, Ed25519, randomness, constant-time comparison, TLS setup).
//! - [`config`]: defaults < file < `BERTH_*` environment < flags, validated once.
//! - [`token`]: license tokens and entitlements (pure).
//! - [`chain`]: the license log's hash-chain rule (pure).
//! - [`clearkey`]: the W3C Clear Key message format (pure).
//! - [`chunks`]: a writer that hands its output to another thread in chunks.
//! - [`durable`]: files that must outlive a power cut (their directory synced).
//! - [`installation`]: setting up an installation (checked id, vessel type and
//!   name), its master key, the data dir's lock, backup and restore.
//! - [`keyfile`]: JSON and CPIX key import files (pure).
//! - [`keys`]: content keys as the CLI and the crew UI import and list them.
//! - [`store`]: the only place with SQL: migrations, key stores, the license log
//!   writer (group commit), usage aggregates, the chain walk.
//! - [`license`]: token + keys + log -> license, with the log behind a trait
//!   and the key ring kept in step with the store; no HTTP, no SQL.
//! - [`report`]: monthly usage reports: export, sign, verify, fleet summary,
//!   the schedule that exports and uploads them, their text for people.
//! - [`logline`]: the service log's lines, with outside text escaped.
//! - [`histogram`]: lock-free latency histograms for `/metrics`.
//! - [`http`]: the license API on actix-web, its workers' mailboxes, the
//!   health probe.
//! - [`accounts`]: crew account rules and fresh secrets (CLI and admin UI).
//! - [`admin`]: the crew UI on its own listener: sign-in, the form extractor,
//!   maud views, metrics.
//! - [`server`]: assembles a running berth from a config and bound listeners,
//!   and serves until a signal.
//! - [`systemd`]: sd_notify readiness, status, watchdog; what systemd passes in.
//! - [`cli`]: argument parsing and one function per subcommand.
//!
//! Architecture invariants (the README's code map lists them with the files).

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
pub mod ground;
pub mod histogram;
pub mod http;
pub mod ids;
pub mod installation;
pub mod keyfile;
pub mod keys;
pub mod license;
pub mod logline;
pub mod report;
pub mod server;
pub mod store;
pub mod systemd;
pub mod token;
