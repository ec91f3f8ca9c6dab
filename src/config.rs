//! Configuration, loaded once: built-in defaults < TOML file < `BERTH_*`
//! environment < command-line flags; validated, then passed down.
//!
//! Architecture Invariant: the only place that reads `BERTH_*` variables and the
//! config file. Nothing else reads the environment for settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The documented example config, shipped as `/etc/berth/berth.toml`.
pub const EXAMPLE: &str = include_str!("../packaging/berth.toml");

pub const DEFAULT_CONFIG_PATH: &str = "/etc/berth/berth.toml";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where `berth.db`, `master.key` and `reports/` live.
    pub data_dir: PathBuf,
    /// The master key file; empty means `$CREDENTIALS_DIRECTORY/master.key` when
    /// systemd passes a credential, else `<data_dir>/master.key`.
    pub master_key_file: PathBuf,
    pub license: LicenseConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub reports: ReportsConfig,
    pub upload: UploadConfig,
    pub keys: KeysConfig,
    pub installation: InstallationConfig,
}

/// Content keys arriving as CPIX.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Certificates (PEM) of the key providers whose signature a CPIX document
    /// must carry. Empty: signatures are checked when present, not required.
    pub cpix_signers: Vec<PathBuf>,
}

/// What `berth init` uses when its flags are not given (first boot from the
/// Debian package). Empty means "ask on the command line".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstallationConfig {
    pub id: String,
    pub vessel_type: String,
    pub vessel_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportsConfig {
    /// Export each month's report on its own once the month has closed.
    pub auto_export: bool,
    /// How often `serve` looks for months to export and reports to upload.
    pub check_interval_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadConfig {
    /// Where to send reports; empty turns uploading off. A URL ending in `/` gets
    /// the file name appended.
    pub url: String,
    /// `PUT` or `POST`.
    pub method: String,
    /// Extra CA certificates (PEM) to trust for the receiver.
    pub ca_file: PathBuf,
    /// Client certificate and key (PEM) for receivers that want one.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Allows an `http://` URL: reports then travel unprotected, and a
    /// machine in the middle can swallow or rewrite them (a warning is logged
    /// at every upload). Off: only `https://`.
    pub allow_plain_http: bool,
    /// Backoff between attempts while the vessel is offline.
    pub retry_min_secs: u64,
    pub retry_max_secs: u64,
    pub timeout_secs: u64,
}

impl Default for ReportsConfig {
    fn default() -> ReportsConfig {
        ReportsConfig {
            auto_export: true,
            check_interval_secs: 300,
        }
    }
}

impl Default for UploadConfig {
    fn default() -> UploadConfig {
        UploadConfig {
            url: String::new(),
            method: "PUT".into(),
            ca_file: PathBuf::new(),
            client_cert: PathBuf::new(),
            client_key: PathBuf::new(),
            allow_plain_http: false,
            retry_min_secs: 60,
            retry_max_secs: 3600,
            timeout_secs: 60,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LicenseConfig {
    pub listen: SocketAddr,
    /// How far token dates may be off, for drifting vessel clocks.
    pub clock_tolerance_secs: u64,
    /// Origins allowed to call the license API from a browser; `"*"` allows any.
    pub allowed_origins: Vec<String>,
    /// License requests per second for one token from one address; 0 turns
    /// limiting off.
    pub rate_limit_per_second: f64,
    /// How many requests one token from one address may make at once before
    /// the rate applies.
    pub rate_limit_burst: u32,
    /// How long a request may take to send its body, in seconds.
    pub body_timeout_secs: u64,
    /// An HLS key fetched again with the same token is a repeat (delivered,
    /// not a new license) while the token is valid; for a token without an
    /// expiry, for this many seconds after its first fetch.
    pub hls_repeat_window_secs: u64,
    /// Certificate chain and private key (PEM) to serve the license API over
    /// HTTPS, for players on an HTTPS portal page (a browser does not let such
    /// a page call plain HTTP on another host); both empty means plain HTTP.
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
}

impl LicenseConfig {
    pub fn tls(&self) -> Option<(&Path, &Path)> {
        tls_files(&self.tls_cert, &self.tls_key)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Certificate chain and private key (PEM) to serve the admin UI over
    /// HTTPS; both empty means plain HTTP (for a listener on loopback).
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// A crew session ends after this many seconds without a request.
    pub session_idle_secs: u64,
    /// A file holding the bearer token Prometheus sends for `/metrics`
    /// (`authorization: credentials_file`); empty: only a crew session.
    pub metrics_token_file: PathBuf,
}

/// `Ok` when `holds`, else the setting `key` with what is wrong with it.
fn require(holds: bool, key: &str, message: &str) -> Result<(), ConfigError> {
    if holds {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key: key.to_owned(),
            message: message.to_owned(),
        })
    }
}

/// A certificate and its key, both set or both empty.
fn tls_pair(key: &str, cert: &Path, tls_key: &Path) -> Result<(), ConfigError> {
    require(
        cert.as_os_str().is_empty() == tls_key.as_os_str().is_empty(),
        key,
        "tls_cert and tls_key go together",
    )
}

impl LicenseConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        require(
            self.clock_tolerance_secs <= 86_400,
            "license.clock_tolerance_secs",
            "must be at most 86400 (one day)",
        )?;
        for origin in &self.allowed_origins {
            let ok = origin == "*" || origin.starts_with("http://") || origin.starts_with("https://");
            require(
                ok && !origin.ends_with('/'),
                "license.allowed_origins",
                &format!("{origin:?} is not \"*\" or an origin like \"http://portal.local\""),
            )?;
        }
        let rate = self.rate_limit_per_second;
        require(
            rate.is_finite() && rate >= 0.0,
            "license.rate_limit_per_second",
            "must be 0 (off) or a positive number",
        )?;
        require(
            rate == 0.0 || self.rate_limit_burst > 0,
            "license.rate_limit_burst",
            "must be at least 1 when rate limiting is on",
        )?;
        require(
            (1..=600).contains(&self.body_timeout_secs),
            "license.body_timeout_secs",
            "must be between 1 and 600",
        )?;
        require(
            (1..=31_536_000).contains(&self.hls_repeat_window_secs),
            "license.hls_repeat_window_secs",
            "must be between 1 and 31536000 (a year)",
        )?;
        tls_pair("license.tls_key", &self.tls_cert, &self.tls_key)
    }
}

impl LogConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        require(
            (1..=1_000_000).contains(&self.queue_capacity),
            "log.queue_capacity",
            "must be between 1 and 1000000",
        )?;
        require(
            (1..=65_536).contains(&self.max_batch),
            "log.max_batch",
            "must be between 1 and 65536",
        )?;
        require(
            (1..=600_000).contains(&self.busy_timeout_ms),
            "log.busy_timeout_ms",
            "must be between 1 and 600000",
        )?;
        require(
            self.keep_months <= 1200,
            "log.keep_months",
            "must be between 0 (keep every license) and 1200",
        )?;
        require(
            (1..=600_000).contains(&self.append_timeout_ms),
            "log.append_timeout_ms",
            "must be between 1 and 600000",
        )?;
        require(
            self.checkpoint_interval_secs <= 7 * 86_400,
            "log.checkpoint_interval_secs",
            "must be between 0 (none) and 604800 (a week)",
        )
    }
}

impl UploadConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let url = &self.url;
        require(
            url.is_empty() || url.starts_with("https://") || url.starts_with("http://"),
            "upload.url",
            "must be empty (off) or an https:// URL",
        )?;
        let authority = url
            .split_once("://")
            .map_or("", |(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""));
        require(
            url.is_empty() || !authority.is_empty(),
            "upload.url",
            "must name a host, as in https://billing.example/incoming/",
        )?;
        require(
            !authority.contains('@'),
            "upload.url",
            "must not carry a user name or password (they would show in the service log and on the \
             reports page); the receiver knows berth by its client certificate (upload.client_cert)",
        )?;
        require(
            !url.starts_with("http://") || self.allow_plain_http,
            "upload.url",
            "must be https://: over plain http a machine in the middle can swallow or rewrite reports \
             (set upload.allow_plain_http = true to accept that risk)",
        )?;
        require(
            matches!(self.method.as_str(), "PUT" | "POST"),
            "upload.method",
            "must be PUT or POST",
        )?;
        require(
            self.client_cert.as_os_str().is_empty() == self.client_key.as_os_str().is_empty(),
            "upload.client_key",
            "client_cert and client_key go together",
        )?;
        require(
            self.retry_min_secs != 0 && self.retry_min_secs <= self.retry_max_secs,
            "upload.retry_min_secs",
            "must be at least 1 and at most upload.retry_max_secs",
        )?;
        require(
            (1..=3600).contains(&self.timeout_secs),
            "upload.timeout_secs",
            "must be between 1 and 3600",
        )
    }
}

impl AdminConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        tls_pair("admin.tls_key", &self.tls_cert, &self.tls_key)?;
        require(
            (1..=7 * 86_400).contains(&self.session_idle_secs),
            "admin.session_idle_secs",
            "must be between 1 and 604800",
        )
    }

    pub fn tls(&self) -> Option<(&Path, &Path)> {
        tls_files(&self.tls_cert, &self.tls_key)
    }
}

/// A listener's certificate and key, when it has them (validation has made
/// sure they come together).
fn tls_files<'a>(cert: &'a Path, key: &'a Path) -> Option<(&'a Path, &'a Path)> {
    (!cert.as_os_str().is_empty()).then_some((cert, key))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Licenses waiting for the writer; when full, requests get 503 at once.
    pub queue_capacity: usize,
    /// The most licenses committed in one transaction.
    pub max_batch: usize,
    /// How long a write waits for a database locked by another process.
    pub busy_timeout_ms: u64,
    /// How long a request waits for its log entry before it gets 503.
    pub append_timeout_ms: u64,
    /// Months of licenses kept besides the current one; older months are pruned
    /// once their signed reports are on the box (and uploaded, when an upload
    /// address is set). 0 keeps every license.
    pub keep_months: u32,
    /// Seconds between signed checkpoints of the log's head (one is also
    /// made at shutdown); 0 makes none.
    pub checkpoint_interval_secs: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: PathBuf::from("/var/lib/berth"),
            master_key_file: PathBuf::new(),
            license: LicenseConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
            reports: ReportsConfig::default(),
            upload: UploadConfig::default(),
            keys: KeysConfig::default(),
            installation: InstallationConfig::default(),
        }
    }
}

impl Default for LicenseConfig {
    fn default() -> LicenseConfig {
        LicenseConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            clock_tolerance_secs: 300,
            allowed_origins: vec!["*".into()],
            rate_limit_per_second: 2.0,
            rate_limit_burst: 40,
            body_timeout_secs: 10,
            hls_repeat_window_secs: 86_400,
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
        }
    }
}

impl Default for AdminConfig {
    fn default() -> AdminConfig {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8088)),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            session_idle_secs: 8 * 3600,
            metrics_token_file: PathBuf::new(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            queue_capacity: 16_384,
            max_batch: 4_096,
            busy_timeout_ms: 2_000,
            append_timeout_ms: 10_000,
            keep_months: 0,
            checkpoint_interval_secs: 3600,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("config key {key}: {message}")]
    Invalid { key: String, message: String },
}

/// Where the config came from, for `berth config show`.
#[derive(Debug, Clone)]
pub struct Source {
    pub file: Option<PathBuf>,
}

/// Loads the config. `explicit` is true when the path was named by a flag or
/// `BERTH_CONFIG`: then a missing file is an error; a missing default file means
/// built-in defaults.
pub fn load(path: &Path, explicit: bool, env: &[(String, String)]) -> Result<(Config, Source), ConfigError> {
    let (mut table, file) = match std::fs::read_to_string(path) {
        Ok(text) => {
            // Read the file as the config first: its errors carry a place in
            // the file ("invalid socket address syntax" alone named no key).
            let parse_error = |e: toml::de::Error| ConfigError::Parse {
                path: path.to_owned(),
                message: describe(&text, &e),
            };
            toml::from_str::<Config>(&text).map_err(parse_error)?;
            let table: toml::Table = text.parse().map_err(parse_error)?;
            (table, Some(path.to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => (toml::Table::new(), None),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    apply_env(&mut table, env)?;
    let config: Config = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })?;
    config.validate()?;
    Ok((config, Source { file }))
}

/// Overrides config fields from `BERTH_<SECTION>_<FIELD>` (or `BERTH_<FIELD>` for
/// top-level fields). Each value is read as the field's type; an unknown
/// `BERTH_*` variable is refused so a typo does not go unnoticed.
fn apply_env(table: &mut toml::Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    const NOT_CONFIG: &[&str] = &["BERTH_CONFIG", "BERTH_LOG", "BERTH_TEST_STALL_WRITER_FILE"];
    let defaults = toml::Table::try_from(Config::default()).expect("defaults serialise");
    let mut fields: Vec<(String, Option<String>, String, toml::Value)> = Vec::new();
    for (key, value) in &defaults {
        match value {
            toml::Value::Table(section) => {
                for (field, default) in section {
                    let name = format!("BERTH_{}_{}", key, field).to_uppercase();
                    fields.push((name, Some(key.clone()), field.clone(), default.clone()));
                }
            }
            other => fields.push((
                format!("BERTH_{key}").to_uppercase(),
                None,
                key.clone(),
                other.clone(),
            )),
        }
    }
    for (name, raw) in env {
        if !name.starts_with("BERTH_") || NOT_CONFIG.contains(&name.as_str()) {
            continue;
        }
        let Some((_, section, field, default)) = fields.iter().find(|(n, ..)| n == name) else {
            return Err(ConfigError::Env {
                name: name.clone(),
                message: "not a berth setting".into(),
            });
        };
        let value = match default {
            toml::Value::String(_) => toml::Value::String(raw.clone()),
            _ => {
                let doc: toml::Table = format!("v = {raw}").parse().map_err(|_| ConfigError::Env {
                    name: name.clone(),
                    message: format!("{raw:?} is not a valid value"),
                })?;
                doc["v"].clone()
            }
        };
        let target = match section {
            Some(section) => table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| ConfigError::Invalid {
                    key: section.clone(),
                    message: "must be a table".into(),
                })?,
            None => &mut *table,
        };
        target.insert(field.clone(), value);
        // A value of the right TOML type can still be wrong for the field (an
        // address with port 99999): name the variable, as the file's line is named.
        if let Err(e) = toml::Value::Table(table.clone()).try_into::<Config>() {
            return Err(ConfigError::Env {
                name: name.clone(),
                message: e.message().to_owned(),
            });
        }
    }
    Ok(())
}

/// A TOML error with the line it is on: `line 2 (listen = "0.0.0.0:99999"):
/// invalid socket address syntax`.
fn describe(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    let Some(span) = e.span() else {
        return message.to_owned();
    };
    let mut start = span.start.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let number = text[..start].matches('\n').count() + 1;
    let line: String = text[line_start..line_end].trim().chars().take(80).collect();
    if line.is_empty() {
        format!("line {number}: {message}")
    } else {
        format!("line {number} ({line}): {message}")
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        require(
            !self.data_dir.as_os_str().is_empty(),
            "data_dir",
            "must not be empty",
        )?;
        self.license.validate()?;
        require(
            self.license.listen != self.admin.listen || self.license.listen.port() == 0,
            "admin.listen",
            "must differ from license.listen: passengers must never reach the admin UI",
        )?;
        self.admin.validate()?;
        self.log.validate()?;
        let vessel = self.installation.vessel_type.as_str();
        require(
            matches!(vessel, "" | "aircraft" | "train" | "ship" | "bus" | "other"),
            "installation.vessel_type",
            "must be aircraft, train, ship, bus or other",
        )?;
        require(
            (1..=86_400).contains(&self.reports.check_interval_secs),
            "reports.check_interval_secs",
            "must be between 1 and 86400",
        )?;
        self.upload.validate()
    }

    /// The master key file this config points at.
    pub fn master_key_path(&self, credentials_dir: Option<&Path>) -> PathBuf {
        if !self.master_key_file.as_os_str().is_empty() {
            return self.master_key_file.clone();
        }
        if let Some(dir) = credentials_dir {
            let candidate = dir.join("master.key");
            if candidate.exists() {
                return candidate;
            }
        }
        self.data_dir.join("master.key")
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, text).unwrap();
        let env: Vec<_> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        load(&path, true, &env).map(|(c, _)| c)
    }

    #[test]
    fn example_config_is_valid_and_documented() {
        let config = load_text(EXAMPLE, &[]).unwrap();
        assert_eq!(config.license.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.log, LogConfig::default());
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = load_text("[license]\nlisten_on = \"1.2.3.4:1\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("listen_on"), "{err}");
        let err = load_text("[log]\nmax_batch = 0\n", &[]).unwrap_err();
        assert!(err.to_string().contains("log.max_batch"), "{err}");
        let err = load_text("[log]\nkeep_months = 1201\n", &[]).unwrap_err();
        assert!(err.to_string().contains("log.keep_months"), "{err}");
        let err = load_text("[log]\nkeep_months = -1\n", &[]).unwrap_err();
        assert!(err.to_string().contains("line 2 (keep_months = -1)"), "{err}");
        // A value of the right type that is wrong for its field: the line is named
        // (the message alone, "invalid socket address syntax", named no key).
        let err = load_text(
            "[admin]\nlisten = \"127.0.0.1:8088\"\n\n[license]\n  listen = \"0.0.0.0:99999\"\n",
            &[],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .ends_with(": line 5 (listen = \"0.0.0.0:99999\"): invalid socket address syntax"),
            "{err}"
        );
        let err = load_text("[license]\nclock_tolerance_secs = -5", &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("line 2 (clock_tolerance_secs = -5): invalid value"),
            "{err}"
        );
        let err = load_text("[license]\nallowed_origins = [\"portal\"]\n", &[]).unwrap_err();
        assert!(err.to_string().contains("license.allowed_origins"), "{err}");
        let err = load_text("[license]\ntls_cert = \"/etc/berth/drm.pem\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("license.tls_key"), "{err}");
        let err = load_text("", &[("BERTH_ADMIN_TLS_KEY", "/etc/berth/crew.key")]).unwrap_err();
        assert!(err.to_string().contains("admin.tls_key"), "{err}");
        let err = load_text("not toml [", &[]).unwrap_err();
        assert!(err.to_string().contains("line 1 (not toml [)"), "{err}");
        for url in [
            "https://billing:s3cret@ground.example/in/",
            "https://token@ground.example",
            "http://a@b:8443?x",
        ] {
            let err = load_text(&format!("[upload]\nurl = \"{url}\"\n"), &[]).unwrap_err();
            assert!(
                err.to_string().contains("must not carry a user name or password"),
                "{err}"
            );
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
        for url in ["https://", "http:///path", "https://?q"] {
            let err = load_text(&format!("[upload]\nurl = \"{url}\"\n"), &[]).unwrap_err();
            assert!(err.to_string().contains("must name a host"), "{url}: {err}");
        }
        let ok = load_text("[upload]\nurl = \"https://ground.example:8443/in/?a=b@c\"\n", &[]);
        assert!(ok.is_ok(), "an @ after the host is the path's: {ok:?}");
        // Plain http only when explicitly allowed.
        let err = load_text("[upload]\nurl = \"http://ground.example/in/\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("must be https://"), "{err}");
        let ok = load_text(
            "[upload]\nurl = \"http://ground.example/in/\"\nallow_plain_http = true\n",
            &[],
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    /// Every cut of the example file, and the same with multi-byte characters
    /// dropped into it, loads or fails with a message; none panics.
    #[test]
    fn broken_files_never_panic() {
        let cuts = EXAMPLE.char_indices().map(|(i, _)| EXAMPLE[..i].to_owned());
        let spiked = EXAMPLE
            .char_indices()
            .step_by(7)
            .map(|(i, _)| format!("{}\u{e9}\u{1f6a2}={}", &EXAMPLE[..i], &EXAMPLE[i..]));
        let oversized = std::iter::once(format!("data_dir = \"{}\"\n", "x".repeat(1 << 20)));
        for text in cuts.chain(spiked).chain(oversized) {
            if let Err(e) = load_text(&text, &[]) {
                assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = load_text(
            "[license]\nclock_tolerance_secs = 10\n",
            &[
                ("BERTH_LICENSE_CLOCK_TOLERANCE_SECS", "60"),
                ("BERTH_DATA_DIR", "/tmp/x"),
            ],
        )
        .unwrap();
        assert_eq!(c.license.clock_tolerance_secs, 60);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        let err = load_text("", &[("BERTH_LICENSE_TOLERANCE", "60")]).unwrap_err();
        assert!(err.to_string().contains("BERTH_LICENSE_TOLERANCE"), "{err}");
        let err = load_text("", &[("BERTH_LOG_MAX_BATCH", "lots")]).unwrap_err();
        assert!(err.to_string().contains("BERTH_LOG_MAX_BATCH"), "{err}");
        // Of the right TOML type but wrong for the field: the variable is named.
        let err = load_text("", &[("BERTH_LICENSE_LISTEN", "0.0.0.0:99999")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable BERTH_LICENSE_LISTEN: invalid socket address syntax"
        );
        let err = load_text("", &[("BERTH_LOG_MAX_BATCH", "-1")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("environment variable BERTH_LOG_MAX_BATCH: "),
            "{err}"
        );
    }

    #[test]
    fn a_missing_default_file_means_defaults() {
        let (c, source) = load(Path::new("/nonexistent/berth.toml"), false, &[]).unwrap();
        assert_eq!(c, Config::default());
        assert!(source.file.is_none());
        assert!(load(Path::new("/nonexistent/berth.toml"), true, &[]).is_err());
    }
}
