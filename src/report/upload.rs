//! Uploading exported reports to ground staff's receiver: HTTP `PUT`/`POST` of
//! `application/zip`, TLS via openssl, a report marked uploaded only on a 2xx.
//! The outbox lives in SQLite, so a restart neither loses nor re-sends a report.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::UploadConfig;
use crate::crypto::{self, sha256_hex};
use crate::ids::format_instant;
use crate::store::{Db, ReportRecord};

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

    /// Sends one report zip; `Ok` only for a 2xx answer.
    pub async fn send(&self, path: &Path, file_name: &str) -> Result<(), UploadError> {
        let bytes = std::fs::read(path).map_err(|e| UploadError::Unreadable {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        self.send_bytes(bytes, file_name, "X-Berth-Report").await
    }

    /// Sends one zip named `file_name` (in the URL and in `header`).
    async fn send_bytes(&self, bytes: Vec<u8>, file_name: &str, header: &str) -> Result<(), UploadError> {
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

    /// Uploads every due checkpoint, oldest first, as a bundle (JSON,
    /// signature, signer). `false` when one failed: what follows waits.
    async fn upload_checkpoints(
        &self,
        config: &crate::config::Config,
        now: time::OffsetDateTime,
        force: bool,
        pass: &mut UploadPass,
    ) -> anyhow::Result<bool> {
        let master = crate::installation::load_master_key(&crate::installation::master_key_path(config))?;
        let data_dir = config.data_dir.clone();
        let at = if force {
            "9999-12-31T23:59:59.999Z".to_owned()
        } else {
            format_instant(now)
        };
        let (pending, signer) = {
            let (data_dir, master) = (data_dir.clone(), master.clone());
            actix_web::rt::task::spawn_blocking(move || -> anyhow::Result<_> {
                let db = Db::open(&data_dir, master)?;
                Ok((db.pending_checkpoints(&at)?, db.signing_key()?.public_pem()))
            })
            .await??
        };
        let dir = data_dir.join("checkpoints");
        for checkpoint in pending {
            let name = super::checkpoint::bundle_name(&checkpoint.file_name);
            let result = match super::checkpoint::bundle(&dir, &checkpoint.file_name, &signer) {
                Ok(bytes) => self.send_bytes(bytes, &name, "X-Berth-Checkpoint").await,
                Err(e) => Err(UploadError::Unreadable {
                    path: dir.join(&checkpoint.file_name).display().to_string(),
                    why: e.to_string(),
                }),
            };
            let next = format_instant(
                now + time::Duration::seconds(self.backoff(checkpoint.upload_attempts) as i64),
            );
            let (data_dir, master, at, file) = (
                data_dir.clone(),
                master.clone(),
                format_instant(now),
                checkpoint.file_name.clone(),
            );
            let outcome = result.clone();
            actix_web::rt::task::spawn_blocking(move || -> anyhow::Result<()> {
                let db = Db::open(&data_dir, master)?;
                match outcome {
                    Ok(()) => db.mark_checkpoint_uploaded(&file, &at)?,
                    Err(e) => db.mark_checkpoint_failed(&file, &e.to_string(), &next)?,
                }
                Ok(())
            })
            .await??;
            match result {
                Ok(()) => pass.uploaded.push(name),
                Err(e) => {
                    tracing::warn!(checkpoint = %name, error = %e, "checkpoint upload failed; will retry");
                    pass.failed.push((name, e));
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Uploads every due checkpoint, then every due report, in order. `force`
    /// ignores the backoff.
    pub async fn upload_pending(
        &self,
        config: &crate::config::Config,
        now: time::OffsetDateTime,
        force: bool,
    ) -> anyhow::Result<UploadPass> {
        let dir = config.data_dir.join("reports");
        let master = crate::installation::load_master_key(&crate::installation::master_key_path(config))?;
        let data_dir = config.data_dir.clone();
        let now_text = format_instant(now);
        let pending: Vec<ReportRecord> = {
            let data_dir = data_dir.clone();
            let master = master.clone();
            let at = if force {
                "9999-12-31T23:59:59.999Z".to_owned()
            } else {
                now_text.clone()
            };
            actix_web::rt::task::spawn_blocking(move || {
                Db::open(&data_dir, master)?
                    .pending_uploads(&at)
                    .map_err(anyhow::Error::from)
            })
            .await??
        };
        let mut pass = UploadPass::default();
        // Checkpoints first: they leave the box ahead of the reports.
        if !self.upload_checkpoints(config, now, force, &mut pass).await? {
            return Ok(pass);
        }
        for report in pending {
            let result = self.send(&dir.join(&report.file_name), &report.file_name).await;
            let backoff = self.backoff(report.upload_attempts);
            let next = format_instant(now + time::Duration::seconds(backoff as i64));
            let (data_dir, master, at) = (data_dir.clone(), master.clone(), now_text.clone());
            let sequence = report.sequence;
            let outcome = result.clone();
            actix_web::rt::task::spawn_blocking(move || -> anyhow::Result<()> {
                let mut db = Db::open(&data_dir, master)?;
                match outcome {
                    Ok(()) => db.mark_uploaded(sequence, &at)?,
                    Err(e) => db.mark_upload_failed(sequence, &e.to_string(), &next)?,
                }
                Ok(())
            })
            .await??;
            match result {
                Ok(()) => {
                    tracing::info!(report = %report.file_name, "report uploaded");
                    pass.uploaded.push(report.file_name);
                }
                Err(e) => {
                    tracing::warn!(report = %report.file_name, error = %e, retry_in_secs = backoff, "report upload failed; will retry");
                    pass.failed.push((report.file_name, e));
                    // The receiver is unreachable or refusing; later reports wait too.
                    break;
                }
            }
        }
        Ok(pass)
    }
}
