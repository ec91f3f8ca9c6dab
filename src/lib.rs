//! berth: a self-contained, offline DRM license server for vessels.
//!
//! Module map. The invariants below are the ones `tests/tidy.rs` checks by
//! reading the source; the README's code map says the same, with the files.
//!
//! - [`ids`]: domain types parsed at the edge (KID, communication-key id, month,
//!   license type, key system, a content key to import) and secret byte arrays
//!   that never print.
//! - [`token`]: license tokens and entitlements.
//! - [`chain`]: the license log's hash-chain rule.
//! - [`clearkey`]: the W3C Clear Key message format.
//! - [`keyfile`]: JSON and CPIX key import files.
//! - [`fairplay`]: FairPlay Streaming's key server: the SPC opened with the
//!   provider's credentials, the asset id's KID, the token's FairPlay rules as
//!   the CKC's terms, the CKC, and the request forms players send.
//! - [`clock`]: the only reader of the wall clock.
//! - [`crypto`]: the only module that names openssl (AES-GCM, AES-CBC, HMAC,
//!   SHA-256, Ed25519, RSA-OAEP, X.509 and PKCS#12, randomness, constant-time
//!   comparison, TLS setup and the TLS peer's names; in `crypto::fairplay`,
//!   FairPlay's provider key, AES-128 and SHA-1) and, in `crypto::xmldsig`,
//!   libxml2 and libxmlsec1 (XML signatures).
//! - [`config`]: defaults < file < `BERTH_*` environment < flags, validated once.
//! - [`chunks`]: a writer that hands its output to another thread in chunks.
//! - [`durable`]: files that must outlive a power cut (their directory synced).
//! - [`installation`]: setting up an installation (checked id, vessel type and
//!   name), its master key, the data dir's lock, backup and restore.
//! - [`provisioning`]: what the box is given, for the CLI and the crew UI:
//!   content keys imported (all or nothing) and listed, the delivery key
//!   pair, FairPlay's credentials.
//! - [`store`]: the only module that names SQLite: migrations, key stores, the
//!   license log writer (group commit, implementing `license::LicenseLog`),
//!   usage aggregates, the chain walk, the key refresher that keeps the
//!   license key ring in step with the key store.
//! - [`license`]: token + keys + log -> license, with the log behind a trait
//!   (`LicenseLog`) in the domain's terms (`license::entry`: the log entry,
//!   what appending gave, the writer's health).
//! - [`report`]: monthly usage reports: export, sign, verify, fleet summary and
//!   bill (with what the evidence proves), the schedule that exports and
//!   uploads them, their text for people.
//! - [`ground`]: the vendor's receiver for uploads (HTTP in `ground`, the
//!   decisions in `ground::archive`, the archive of what it keeps) and the registry of installations.
//! - [`logline`]: the service log's lines, with outside text escaped, and the
//!   thread that writes them.
//! - [`histogram`]: lock-free latency histograms for `/metrics`.
//! - [`health`]: the license path's health and free disk space, for
//!   `/healthz`, the watchdog, the dashboard and the ground receiver.
//! - [`http`]: the license API on actix-web, its workers' mailboxes, the
//!   health probe.
//! - [`accounts`]: crew account rules and fresh secrets (CLI and admin UI).
//! - [`admin`]: the crew UI on its own listener: sign-in, the form extractor,
//!   maud views, metrics.
//! - [`server`]: assembles a running berth from a config and bound listeners,
//!   and serves until a signal.
//! - [`systemd`]: sd_notify readiness, status, watchdog; what systemd passes in.
//! - [`cli`]: the binary's `main`, argument parsing (the only module that
//!   names clap) and one function per subcommand.
//!
//! Checked invariants (`tests/tidy.rs`):
//!
//! - `ids`, `token`, `chain`, `clearkey`, `keyfile` and `fairplay`, what a
//!   stranger's bytes reach first, do no I/O and name no store, HTTP, SQLite
//!   or runtime.
//! - The domain (`ids`, `token`, `chain`, `clearkey`, `keyfile`, `fairplay`, `license`)
//!   names no outer layer (`store`, `http`, `admin`, `report`, `ground`,
//!   `server`, `cli`): those depend on it. The store's writer implements
//!   `license::LicenseLog` in `license::entry`'s terms.
//! - SQLite is named only in `store`; openssl only in `crypto`; libxml2 and
//!   libxmlsec1 only in `crypto::xmldsig`; clap only in `cli`; the environment
//!   only in `cli`, `config` and `systemd`; the wall clock only in `clock`;
//!   actix-web's server only in `http`, `admin`, `ground` and `server`; the
//!   service log's subscriber only in `cli` (with `logline`'s writer).
//! - This map lists every module, and every path the README's code map names exists.

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
pub mod fairplay;
pub mod ground;
pub mod health;
pub mod histogram;
pub mod http;
pub mod ids;
pub mod installation;
pub mod keyfile;
pub mod license;
pub mod logline;
pub mod provisioning;
pub mod report;
pub mod server;
pub mod store;
pub mod systemd;
pub mod token;
