//! Uploading signed checkpoints and exported reports to ground staff's
//! receiver: HTTP `PUT`/`POST` of `application/zip`, TLS via openssl, each
//! marked uploaded only on a 2xx. The outbox lives in SQLite, so a restart
//! neither loses nor re-sends one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::UploadConfig;
use crate::crypto::{self, sha256_hex};
use crate::ids::format_instant;
use crate::store::{CheckpointRecord, Db, OutboxEntry, ReportRecord};

pub struct Uploader {
    client: awc::Client,
    config: UploadConfig,
}

/// Why a report did not reach the receiver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// The file could not be read from the reports folder.
    #[error("reading {path}: {why}")]
    Unreadable { path: String, why: String },
    /// No answer: the link is down, TLS failed, the receiver is not there.
    #[error("sending to {url}: {why}")]
    Unreachable { url: String, why: String },
    /// The receiver answered, and not with 2xx; `reason` is what it said.
    #[error("{url} answered {status}{reason}")]
    Refused {
        url: String,
        status: u16,
        reason: String,
    },
}

/// What one pass over the outbox did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UploadPass {
    pub uploaded: Vec<String>,
    pub failed: Vec<(String, UploadError)>,
}

impl Uploader {
    /// Must be called inside an actix (tokio) runtime.
    pub fn new(config: &UploadConfig) -> anyhow::Result<Uploader> {
        if config.url.starts_with("http://") && !config.allow_plain_http {
            anyhow::bail!("upload.url must be https:// unless upload.allow_plain_http = true");
        }
        let non_empty = |p: &Path| (!p.as_os_str().is_empty()).then(|| p.to_path_buf());
        let ca: Option<PathBuf> = non_empty(&config.ca_file);
        let cert = non_empty(&config.client_cert).zip(non_empty(&config.client_key));
        let tls = crypto::tls_connector(
            ca.as_deref(),
            cert.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
        )?;
        let timeout = Duration::from_secs(config.timeout_secs);
        let client = awc::Client::builder()
            .connector(awc::Connector::new().openssl(tls).timeout(timeout))
            .timeout(timeout)
            .disable_redirects()
            .finish();
        Ok(Uploader {
            client,
            config: config.clone(),
        })
    }

    fn target(&self, file_name: &str) -> String {
        if self.config.url.ends_with('/') {
            format!("{}{file_name}", self.config.url)
        } else {
            self.config.url.clone()
        }
    }

    /// Sends one zip named `file_name` (in the URL and in `header`); `Ok`
    /// only for a 2xx answer.
    async fn send(&self, bytes: Vec<u8>, file_name: &str, header: &str) -> Result<(), UploadError> {
        let url = self.target(file_name);
        if url.starts_with("http://") {
            tracing::warn!(%url, "uploading a report over plain http (upload.allow_plain_http): anyone on the way can read, drop or change it");
        }
        let request = match self.config.method.as_str() {
            "POST" => self.client.post(&url),
            _ => self.client.put(&url),
        };
        let mut response = request
            .insert_header(("Content-Type", "application/zip"))
            .insert_header((header, file_name))
            .insert_header(("X-Berth-Report-Sha256", sha256_hex(&bytes)))
            .send_body(bytes)
            .await
            .map_err(|e| UploadError::Unreachable {
                url: url.clone(),
                why: e.to_string(),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // The receiver's reason, as much of it as a person reads on the
        // reports page: a JSON `reason`, or the start of the body.
        let body = response.body().limit(4096).await.unwrap_or_default();
        let reason = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        let reason: String = reason.chars().filter(|c| !c.is_control()).collect();
        Err(UploadError::Refused {
            url,
            status: status.as_u16(),
            reason: if reason.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", reason.trim())
            },
        })
    }

    fn backoff(&self, attempts: i64) -> u64 {
        self.config
            .retry_min_secs
            .saturating_mul(1 << attempts.clamp(0, 20))
            .min(self.config.retry_max_secs)
    }

    /// Uploads every due checkpoint (oldest first), then every due report
    /// (in order), stopping at the first that does not go: the receiver is
    /// unreachable or refusing, and what follows waits. `force` ignores the
    /// backoff.
    pub async fn upload_pending(
        &self,
        config: &crate::config::Config,
        now: time::OffsetDateTime,
        force: bool,
    ) -> anyhow::Result<UploadPass> {
        let master = crate::installation::load_master_key(&crate::installation::master_key_path(config))?;
        let data_dir = config.data_dir.clone();
        let now_text = format_instant(now);
        // One connection for the pass, opened off the async workers.
        let db = {
            let (data_dir, master) = (data_dir.clone(), master.clone());
            let db = actix_web::rt::task::spawn_blocking(move || Db::open(&data_dir, master)).await??;
            std::sync::Arc::new(std::sync::Mutex::new(db))
        };
        let (due, signer) = {
            let db = std::sync::Arc::clone(&db);
            let at = (!force).then(|| now_text.clone());
            actix_web::rt::task::spawn_blocking(move || -> anyhow::Result<_> {
                let db = db.lock().expect("db lock");
                let signer = db.signing_key()?.public_pem();
                // Checkpoints first: they leave the box ahead of the reports.
                let checkpoints = db
                    .pending_checkpoints(at.as_deref())?
                    .into_iter()
                    .map(Outgoing::Checkpoint);
                let reports = db
                    .pending_uploads(at.as_deref())?
                    .into_iter()
                    .map(Outgoing::Report);
                Ok((checkpoints.chain(reports).collect::<Vec<_>>(), signer))
            })
            .await??
        };
        let mut pass = UploadPass::default();
        for item in due {
            let name = item.name();
            let result = match item.bytes(&data_dir, &signer) {
                Ok(bytes) => self.send(bytes, &name, item.header()).await,
                Err(e) => Err(e),
            };
            let backoff = self.backoff(item.attempts());
            let next = format_instant(now + time::Duration::seconds(backoff as i64));
            let (db, at) = (std::sync::Arc::clone(&db), now_text.clone());
            item.log(&name, &result, backoff);
            let outcome = result.clone();
            actix_web::rt::task::spawn_blocking(move || -> anyhow::Result<()> {
                let mut db = db.lock().expect("db lock");
                item.record(&mut db, outcome.map_err(|e| (e.to_string(), next)), &at)
            })
            .await??;
            match result {
                Ok(()) => pass.uploaded.push(name),
                Err(e) => {
                    pass.failed.push((name, e));
                    break;
                }
            }
        }
        Ok(pass)
    }
}

/// What waits in the outbox: a signed checkpoint or an exported report.
enum Outgoing {
    Checkpoint(CheckpointRecord),
    Report(ReportRecord),
}

impl Outgoing {
    /// The name it travels under (in the URL and its header).
    fn name(&self) -> String {
        match self {
            Outgoing::Checkpoint(c) => super::checkpoint::bundle_name(&c.file_name),
            Outgoing::Report(r) => r.file_name.clone(),
        }
    }

    fn header(&self) -> &'static str {
        match self {
            Outgoing::Checkpoint(_) => "X-Berth-Checkpoint",
            Outgoing::Report(_) => "X-Berth-Report",
        }
    }

    fn attempts(&self) -> i64 {
        match self {
            Outgoing::Checkpoint(c) => c.upload_attempts,
            Outgoing::Report(r) => r.upload_attempts,
        }
    }

    /// What is sent: the report's zip, or the checkpoint's bundle (JSON,
    /// signature, signer).
    fn bytes(&self, data_dir: &Path, signer_pem: &str) -> Result<Vec<u8>, UploadError> {
        let (path, read) = match self {
            Outgoing::Checkpoint(c) => {
                let dir = data_dir.join("checkpoints");
                let bytes = super::checkpoint::bundle(&dir, &c.file_name, signer_pem);
                (dir.join(&c.file_name), bytes)
            }
            Outgoing::Report(r) => {
                let path = data_dir.join("reports").join(&r.file_name);
                let bytes = std::fs::read(&path);
                (path, bytes)
            }
        };
        read.map_err(|e| UploadError::Unreadable {
            path: path.display().to_string(),
            why: e.to_string(),
        })
    }

    fn log(&self, name: &str, result: &Result<(), UploadError>, retry_in_secs: u64) {
        match (self, result) {
            (Outgoing::Report(_), Ok(())) => tracing::info!(report = %name, "report uploaded"),
            (Outgoing::Report(_), Err(e)) => {
                tracing::warn!(report = %name, error = %e, retry_in_secs, "report upload failed; will retry")
            }
            (Outgoing::Checkpoint(_), Ok(())) => tracing::info!(checkpoint = %name, "checkpoint uploaded"),
            (Outgoing::Checkpoint(_), Err(e)) => {
                tracing::warn!(checkpoint = %name, error = %e, retry_in_secs, "checkpoint upload failed; will retry")
            }
        }
    }

    /// Marks it uploaded at `at`, or failed with the reason and the time of the next attempt.
    fn record(&self, db: &mut Db, outcome: Result<(), (String, String)>, at: &str) -> anyhow::Result<()> {
        let entry = match self {
            Outgoing::Checkpoint(c) => OutboxEntry::Checkpoint(&c.file_name),
            Outgoing::Report(r) => OutboxEntry::Report(r.sequence),
        };
        let result = match &outcome {
            Ok(()) => Ok(at),
            Err((why, next)) => Err((why.as_str(), next.as_str())),
        };
        db.record_upload(entry, result)?;
        Ok(())
    }
}
