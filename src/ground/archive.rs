//! The receiver's archive: one folder per installation holding its verified
//! report zips and the key it signs with (`signer.pem`, pinned by its first
//! report unless `--pubkeys` names it). A report is verified in full before it
//! gets its name, and it gets its name by a rename after its bytes are synced,
//! so after a power cut the store holds the whole file or nothing.
//!
//! Every report and checkpoint is kept with the receiver's own time of
//! receipt beside it (`<file>.received`): the ground's clock, which bounds
//! the box's claims (see `report::evidence`).
//!
//! What the store refuses against what it holds: a second, different
//! checkpoint of a row (whatever its name), a checkpoint that contradicts a
//! stored report at its row, a report whose vessel type is not the
//! installation's, a first report that is not sequence 1 (or the registry's
//! `first_sequence`), a report for a month that has not ended by the
//! receiver's clock.
//!
//! Architecture Invariant: no HTTP here; [`super`] maps [`Refusal`] to answers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use super::registry::Registry;
use crate::crypto::PublicKey;
use crate::durable::sync_parent;
use crate::ids::{Month, format_instant};
use crate::report::checkpoint::Checkpoint;
use crate::report::{ReportJson, Verified, verify_file, verify_link};

/// Uploads are written here before they are checked; left-overs of a crash
/// are removed at start.
pub const INCOMING: &str = ".incoming";
/// The installation's pinned report key, in its folder.
pub const SIGNER: &str = "signer.pem";
/// The installation's vessel type, pinned by its first report (without a registry).
pub const VESSEL_TYPE: &str = "vessel_type";
/// Beside each stored file: the receiver's time of receipt (RFC 3339).
pub const RECEIVED: &str = "received";
/// The largest checkpoint document kept (a real one is under 500 bytes).
pub const MAX_CHECKPOINT_JSON: usize = 2048;
/// Checkpoints one installation may store in a day (a box makes one an hour
/// and one at each stop); more wait for the next day, in the vessel's outbox.
pub const CHECKPOINTS_A_DAY: usize = 100;
/// How far a box's clock may run ahead of the receiver's before its stamps
/// are called ahead.
pub const CLOCK_TOLERANCE: time::Duration = time::Duration::minutes(5);

/// Where the receipt time of `file` is kept.
pub fn received_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{RECEIVED}"));
    file.with_file_name(name)
}

/// The receipt time recorded for `file`, if any.
pub fn received_at(file: &Path) -> Option<OffsetDateTime> {
    let text = std::fs::read_to_string(received_path(file)).ok()?;
    crate::ids::parse_instant(text.trim()).ok()
}

/// A report file name as berth's export writes it:
/// `berth-report-<installation>-<YYYY-MM>-<sequence>.zip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportName {
    pub installation: String,
    pub month: Month,
    pub sequence: i64,
}

impl std::str::FromStr for ReportName {
    type Err = Refusal;

    fn from_str(name: &str) -> Result<ReportName, Refusal> {
        let bad = || {
            Refusal::BadName(format!(
                "{:?} is not a report name (berth-report-<installation>-<YYYY-MM>-<sequence>.zip)",
                name.chars().take(120).collect::<String>()
            ))
        };
        let stem = name
            .strip_prefix("berth-report-")
            .and_then(|s| s.strip_suffix(".zip"))
            .ok_or_else(bad)?;
        let (rest, sequence) = stem.rsplit_once('-').ok_or_else(bad)?;
        let sequence: i64 = sequence.parse().map_err(|_| bad())?;
        let split = rest.len().checked_sub(8).ok_or_else(bad)?;
        let (installation, month) = (rest.get(..split).ok_or_else(bad)?, &rest[split..]);
        let month = month
            .strip_prefix('-')
            .and_then(|m| m.parse().ok())
            .ok_or_else(bad)?;
        let installation: crate::installation::InstallationId = installation.parse().map_err(|_| bad())?;
        let parsed = ReportName {
            installation: installation.as_str().to_owned(),
            month,
            sequence,
        };
        // One spelling per report: "-01" or "+1" would be a second name.
        if sequence < 1 || parsed.file_name() != name {
            return Err(bad());
        }
        Ok(parsed)
    }
}

impl ReportName {
    pub fn file_name(&self) -> String {
        crate::report::file_name(&self.installation, self.month, self.sequence, false)
    }
}

/// A checkpoint bundle's name as berth's uploader sends it:
/// `berth-checkpoint-<installation>-<seq>-<YYYYMMDDTHHMMSSZ>.zip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointName {
    pub installation: String,
    pub seq: i64,
    pub stamp: String,
}

impl std::str::FromStr for CheckpointName {
    type Err = Refusal;

    fn from_str(name: &str) -> Result<CheckpointName, Refusal> {
        let bad = || {
            Refusal::BadName(format!(
                "{:?} is not a checkpoint name (berth-checkpoint-<installation>-<seq>-<time>.zip)",
                name.chars().take(120).collect::<String>()
            ))
        };
        let stem = name
            .strip_prefix("berth-checkpoint-")
            .and_then(|s| s.strip_suffix(".zip"))
            .ok_or_else(bad)?;
        let (rest, stamp) = stem.rsplit_once('-').ok_or_else(bad)?;
        let (installation, seq) = rest.rsplit_once('-').ok_or_else(bad)?;
        let is_stamp = stamp.len() == 16
            && stamp.char_indices().all(|(i, c)| match i {
                8 => c == 'T',
                15 => c == 'Z',
                _ => c.is_ascii_digit(),
            });
        let seq: i64 = seq.parse().map_err(|_| bad())?;
        let installation: crate::installation::InstallationId = installation.parse().map_err(|_| bad())?;
        let parsed = CheckpointName {
            installation: installation.as_str().to_owned(),
            seq,
            stamp: stamp.to_owned(),
        };
        if !is_stamp || seq < 0 || parsed.file_name() != name {
            return Err(bad());
        }
        Ok(parsed)
    }
}

impl CheckpointName {
    pub fn file_name(&self) -> String {
        format!(
            "berth-checkpoint-{}-{}-{}.zip",
            self.installation, self.seq, self.stamp
        )
    }
}

/// What an upload is, by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upload {
    Report(ReportName),
    Checkpoint(CheckpointName),
}

impl std::str::FromStr for Upload {
    type Err = Refusal;

    fn from_str(name: &str) -> Result<Upload, Refusal> {
        if name.starts_with("berth-checkpoint-") {
            name.parse().map(Upload::Checkpoint)
        } else {
            name.parse().map(Upload::Report)
        }
    }
}

impl Upload {
    pub fn installation(&self) -> &str {
        match self {
            Upload::Report(r) => &r.installation,
            Upload::Checkpoint(c) => &c.installation,
        }
    }

    pub fn file_name(&self) -> String {
        match self {
            Upload::Report(r) => r.file_name(),
            Upload::Checkpoint(c) => c.file_name(),
        }
    }

    /// The largest body of this kind.
    pub fn limit(&self) -> u64 {
        match self {
            Upload::Report(_) => crate::report::MAX_ZIP,
            Upload::Checkpoint(_) => 16 * 1024,
        }
    }
}

/// Why an upload is not kept; each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 400: the name in the URL is not a report's, or disagrees with `X-Berth-Report`.
    #[error("{0}")]
    BadName(String),
    /// 403: the client's certificate names another installation, or the
    /// installation has no registered key.
    #[error("{0}")]
    NotYours(String),
    /// 409: other bytes are stored under this name, or for this sequence.
    #[error("{0}")]
    Conflict(String),
    /// 413: larger than the receiver takes.
    #[error("{0}")]
    TooLarge(String),
    /// 422: the report does not verify.
    #[error("{0}")]
    Invalid(String),
    /// 503: the receiver could not store it (disk full, permissions); the
    /// vessel sends it again later.
    #[error("{0}")]
    Unavailable(String),
    /// 503: too many uploads at once; the vessel sends it again later.
    #[error("{0}")]
    Busy(String),
    /// 411: no Content-Length.
    #[error("{0}")]
    LengthRequired(String),
    /// 507: the store's disk is low.
    #[error("{0}")]
    DiskLow(String),
    /// 408: the body did not arrive in time.
    #[error("{0}")]
    Timeout(String),
}

/// What became of a report that was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// 201: new, verified and stored.
    New,
    /// 200: the same bytes were already stored.
    Again,
}

pub struct GroundStore {
    dir: PathBuf,
    pubkeys: Option<PathBuf>,
    registry: Option<Registry>,
    /// One upload per installation is checked and stored at a time, so two
    /// uploads for one installation cannot both pass the ordering and fork
    /// checks; other installations' uploads do not wait for it.
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

fn unavailable(what: &str, path: &Path, e: impl std::fmt::Display) -> Refusal {
    tracing::error!(path = %path.display(), error = %e, "the ground store failed: {what}");
    Refusal::Unavailable(format!("the receiver could not {what}; try again later"))
}

impl GroundStore {
    /// Opens (creating) the store and removes uploads a crash left half-written.
    pub fn open(
        dir: &Path,
        pubkeys: Option<&Path>,
        registry: Option<Registry>,
    ) -> anyhow::Result<GroundStore> {
        let incoming = dir.join(INCOMING);
        std::fs::create_dir_all(&incoming)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", incoming.display()))?;
        for entry in std::fs::read_dir(&incoming)? {
            std::fs::remove_file(entry?.path())?;
        }
        if let Some(keys) = pubkeys {
            anyhow::ensure!(keys.is_dir(), "--pubkeys {}: not a directory", keys.display());
        }
        Ok(GroundStore {
            dir: dir.to_path_buf(),
            pubkeys: pubkeys.map(Path::to_path_buf),
            registry,
            locks: Mutex::default(),
        })
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lock of one installation's folder.
    fn lock_of(&self, installation: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(locks.entry(installation.to_owned()).or_default())
    }

    /// A new file for an upload's bytes, under [`INCOMING`].
    pub fn incoming_path(&self) -> PathBuf {
        self.dir
            .join(INCOMING)
            .join(format!("{}.part", crate::accounts::new_uuid().simple()))
    }

    /// Checks the upload in `incoming` (synced by the caller) and keeps it
    /// when it checks out (see [`GroundStore::accept_report`] and
    /// [`GroundStore::accept_checkpoint`]). The incoming file is gone
    /// afterwards either way.
    pub fn accept(&self, upload: &Upload, incoming: &Path, now: OffsetDateTime) -> Result<Stored, Refusal> {
        let lock = self.lock_of(upload.installation());
        let _one_at_a_time = lock.lock().unwrap_or_else(|p| p.into_inner());
        let result = match upload {
            Upload::Report(name) => self.accept_report(name, incoming, now),
            Upload::Checkpoint(name) => self.accept_checkpoint(name, incoming, now),
        };
        let _ = std::fs::remove_file(incoming);
        result
    }

    /// A checkpoint bundle of `name`'s installation, signed by its key (the
    /// registered one, the pinned one, or pinned now), kept as
    /// `<id>/checkpoints/<name>.json` and `.sig`, as `report verify
    /// --checkpoints` and `fleet summary --checkpoints` read them.
    fn accept_checkpoint(
        &self,
        name: &CheckpointName,
        incoming: &Path,
        now: OffsetDateTime,
    ) -> Result<Stored, Refusal> {
        let bytes = std::fs::read(incoming).map_err(|e| unavailable("read the upload", incoming, e))?;
        let bundle = crate::report::checkpoint::unbundle(&bytes)
            .map_err(|e| Refusal::Invalid(format!("the checkpoint does not verify: {e}")))?;
        if bundle.json.len() > MAX_CHECKPOINT_JSON {
            return Err(Refusal::TooLarge(format!(
                "a checkpoint document is at most {MAX_CHECKPOINT_JSON} bytes"
            )));
        }
        let c = &bundle.checkpoint;
        if (c.installation.as_str(), c.seq) != (name.installation.as_str(), name.seq) {
            return Err(Refusal::Invalid(format!(
                "the checkpoint is installation {}, row {}, not what its name says",
                c.installation, c.seq
            )));
        }
        if stamp_of(&c.made_at).as_deref() != Some(name.stamp.as_str()) {
            return Err(Refusal::Invalid(format!(
                "the checkpoint's name says it was made at {}, its made_at says {:?}",
                name.stamp,
                c.made_at.chars().take(40).collect::<String>()
            )));
        }
        let folder = self.dir.join(&name.installation);
        let (key, pinned) = self.signer(&name.installation)?;
        if key.as_ref().is_some_and(|k| k.der() != bundle.signer_der) {
            return Err(Refusal::Invalid(
                "the checkpoint is signed by another key than this installation's".into(),
            ));
        }
        let dir = folder.join("checkpoints");
        if let Some(stored) = self.stored_checkpoint_at(&dir, c.seq)? {
            return if stored.row_hash == c.row_hash {
                // One checkpoint a row: the same row again stores nothing.
                Ok(Stored::Again)
            } else {
                Err(Refusal::Conflict(format!(
                    "row {} already has a checkpoint with another row hash (made {}): two checkpoints of one row contradict each other",
                    c.seq, stored.made_at
                )))
            };
        }
        if let Some(hash) = self.stored_row_hash(&folder, c.seq)?
            && hash != c.row_hash
        {
            return Err(Refusal::Conflict(format!(
                "row {} of the stored reports has another hash than this checkpoint says",
                c.seq
            )));
        }
        if received_since(&dir, std::time::SystemTime::from(now - time::Duration::days(1)))
            >= CHECKPOINTS_A_DAY
        {
            return Err(Refusal::Busy(format!(
                "installation {} has sent {CHECKPOINTS_A_DAY} checkpoints in the last day; send this one later",
                name.installation
            )));
        }
        let stem = name.file_name().trim_end_matches(".zip").to_owned();
        let json = dir.join(format!("{stem}.json"));
        std::fs::create_dir_all(&dir).map_err(|e| unavailable("create a folder", &dir, e))?;
        if !pinned {
            pin_signer(&folder, &bundle.signer_der)?;
        }
        record_receipt(&json, now)?;
        let sig = json.with_extension("sig");
        crate::durable::write_file(&sig, &bundle.signature)
            .map_err(|e| unavailable("store the checkpoint", &sig, e))?;
        crate::durable::write_file(&json, &bundle.json)
            .map_err(|e| unavailable("store the checkpoint", &json, e))?;
        Ok(Stored::New)
    }

    /// The stored checkpoint of row `seq` in `dir`, if there is one.
    fn stored_checkpoint_at(&self, dir: &Path, seq: i64) -> Result<Option<Checkpoint>, Refusal> {
        let entries = match std::fs::read_dir(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            entries => entries.map_err(|e| unavailable("list the checkpoints", dir, e))?,
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(stored) = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .replace(".json", ".zip")
                .parse::<CheckpointName>()
            else {
                continue;
            };
            if stored.seq != seq || path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| unavailable("read a checkpoint", &path, e))?;
            let checkpoint: Checkpoint =
                serde_json::from_slice(&bytes).map_err(|e| unavailable("read a checkpoint", &path, e))?;
            return Ok(Some(checkpoint));
        }
        Ok(None)
    }

    /// The hash of row `seq` in the installation's stored reports, if one of
    /// them holds that row (or starts right after it).
    fn stored_row_hash(&self, folder: &Path, seq: i64) -> Result<Option<String>, Refusal> {
        let stored = stored_reports(folder).map_err(|e| unavailable("list the stored reports", folder, e))?;
        for name in stored {
            let path = folder.join(name.file_name());
            let report = stored_report(&path)?;
            let log = &report.log;
            if seq == log.first_seq - 1 {
                return Ok(Some(log.first_prev_hash.clone()));
            }
            if seq == log.last_seq {
                return Ok(Some(log.last_row_hash.clone()));
            }
            if (log.first_seq..log.last_seq).contains(&seq) {
                let hashes = crate::report::checkpoint::row_hashes(&path, &[seq])
                    .map_err(|e| unavailable("read a stored report", &path, e))?;
                return Ok(hashes.get(&seq).cloned());
            }
        }
        Ok(None)
    }

    /// A report of `name`'s installation that verifies, says what its name
    /// says and continues what is stored, kept as `<id>/<name>`.
    fn accept_report(
        &self,
        name: &ReportName,
        incoming: &Path,
        now: OffsetDateTime,
    ) -> Result<Stored, Refusal> {
        let folder = self.dir.join(&name.installation);
        let target = folder.join(name.file_name());
        if let Ok(stored) = std::fs::read(&target) {
            let bytes = std::fs::read(incoming).map_err(|e| unavailable("read the upload", incoming, e))?;
            return if stored == bytes {
                Ok(Stored::Again)
            } else {
                Err(Refusal::Conflict(format!(
                    "a different report is already stored as {}",
                    name.file_name()
                )))
            };
        }
        if name.month.end() > now {
            return Err(Refusal::Invalid(format!(
                "the report is for {}, which has not ended by this receiver's clock ({}): the vessel's clock is ahead",
                name.month,
                format_instant(now)
            )));
        }
        let (key, pinned) = self.signer(&name.installation)?;
        let report = verify_file(incoming, key.as_ref())
            .map_err(|e| Refusal::Invalid(format!("the report does not verify: {e}")))?;
        check_claims(name, &report)?;
        if let Some(why) = clock_ahead(&report.report, now) {
            return Err(Refusal::Invalid(why));
        }
        let pinned_type = self.check_vessel_type(&folder, &report.report)?;
        self.check_continues(&folder, name, &report)?;
        std::fs::create_dir_all(&folder).map_err(|e| unavailable("create a folder", &folder, e))?;
        if !pinned {
            pin_signer(&folder, &report.public_key_der)?;
        }
        if !pinned_type {
            pin(
                &folder,
                VESSEL_TYPE,
                report.report.installation.vessel_type.as_bytes(),
            )?;
        }
        record_receipt(&target, now)?;
        std::fs::rename(incoming, &target)
            .and_then(|()| sync_parent(&target))
            .map_err(|e| unavailable("store the report", &target, e))?;
        Ok(Stored::New)
    }

    /// The report's vessel type must be the installation's: the registry's,
    /// or the one its first stored report pinned. Whether a type is pinned.
    fn check_vessel_type(&self, folder: &Path, report: &ReportJson) -> Result<bool, Refusal> {
        let id = &report.installation.id;
        let (known, pinned) = match self.registry.as_ref().and_then(|r| r.get(id)) {
            Some(entry) => (Some(entry.vessel_type.as_str().to_owned()), true),
            None => {
                let path = folder.join(VESSEL_TYPE);
                match std::fs::read_to_string(&path) {
                    Ok(text) => (Some(text.trim().to_owned()), true),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, false),
                    Err(e) => return Err(unavailable("read the installation's vessel type", &path, e)),
                }
            }
        };
        let claimed = &report.installation.vessel_type;
        if claimed.parse::<crate::store::VesselType>().is_err() {
            return Err(Refusal::Invalid(format!(
                "the report's vessel type {:?} is not one berth knows",
                claimed.chars().take(40).collect::<String>()
            )));
        }
        match known {
            Some(known) if known != *claimed => Err(Refusal::Invalid(format!(
                "the report says vessel type {claimed:?}, but installation {id} is a {known:?} on this receiver"
            ))),
            _ => Ok(pinned),
        }
    }

    /// The key the installation's reports must carry: its key in `--pubkeys`,
    /// else the one its first report pinned. `(None, false)` for an
    /// installation seen for the first time without `--pubkeys`; the bool says
    /// whether the key is already on disk in the store.
    fn signer(&self, installation: &str) -> Result<(Option<PublicKey>, bool), Refusal> {
        let pinned = self.dir.join(installation).join(SIGNER);
        if let Some(registry) = &self.registry {
            let entry = registry.get(installation).ok_or_else(|| {
                Refusal::NotYours(format!(
                    "installation {installation} is not in this receiver's registry"
                ))
            })?;
            if let Some(key) = &entry.public_key {
                let key = PublicKey::from_der(key).map_err(|e| Refusal::Unavailable(e.to_string()))?;
                return Ok((Some(key), pinned.exists()));
            }
        }
        let registered = self
            .pubkeys
            .as_ref()
            .map(|dir| dir.join(format!("{installation}.pem")));
        let path = match registered {
            Some(path) if !path.exists() => {
                return Err(Refusal::NotYours(format!(
                    "installation {installation} has no registered key on this receiver"
                )));
            }
            Some(path) => path,
            None if pinned.exists() => pinned.clone(),
            None => return Ok((None, false)),
        };
        let key = PublicKey::load(&path).map_err(|e| unavailable("read the installation's key", &path, e))?;
        Ok((Some(key), pinned.exists()))
    }

    /// Reports are accepted in order: the one before must be stored and link
    /// to this one, except for the first this receiver hears of. Another
    /// report with this sequence is a fork.
    fn check_continues(&self, folder: &Path, name: &ReportName, report: &Verified) -> Result<(), Refusal> {
        let stored = stored_reports(folder).map_err(|e| unavailable("list the stored reports", folder, e))?;
        if let Some(other) = stored.iter().find(|n| n.sequence == name.sequence) {
            return Err(Refusal::Conflict(format!(
                "a fork: {} is already stored with sequence {}",
                other.file_name(),
                name.sequence
            )));
        }
        let Some(previous) = stored.iter().find(|n| n.sequence == name.sequence - 1) else {
            let first = self
                .registry
                .as_ref()
                .and_then(|r| r.get(&name.installation))
                .map_or(1, |e| e.first_sequence);
            return match stored.iter().map(|n| n.sequence).max() {
                None if name.sequence == first => Ok(()),
                None => Err(Refusal::Invalid(format!(
                    "report {} would start this installation's chain on this receiver, which starts at report {first} (a box moved from another receiver is registered with its first_sequence)",
                    name.sequence
                ))),
                Some(last) if last > name.sequence => Err(Refusal::Conflict(format!(
                    "report {} comes before the reports already stored (up to {last}) and does not continue them",
                    name.sequence
                ))),
                Some(last) => Err(Refusal::Invalid(format!(
                    "report {} has not been received (the last stored is {last}); reports are accepted in order",
                    name.sequence - 1
                ))),
            };
        };
        let path = folder.join(previous.file_name());
        // Stored reports were verified in full when they came: what the link
        // needs is read from it, not verified again.
        let previous = crate::report::read_verified(&path)
            .map_err(|e| unavailable("read the previous report", &path, e))?;
        verify_link(&previous, report)
            .map_err(|e| Refusal::Invalid(format!("does not continue report {}: {e}", name.sequence - 1)))
    }
}

/// Pins what an installation's first upload said (its key, its vessel
/// type): its later ones must say it too.
fn pin(folder: &Path, file: &str, bytes: &[u8]) -> Result<(), Refusal> {
    std::fs::create_dir_all(folder).map_err(|e| unavailable("create a folder", folder, e))?;
    let path = folder.join(file);
    crate::durable::write_file(&path, bytes)
        .map_err(|e| unavailable("pin what the installation is", &path, e))
}

/// Pins the key an installation's first upload was signed with.
fn pin_signer(folder: &Path, key_der: &[u8]) -> Result<(), Refusal> {
    let key = PublicKey::from_der(key_der).map_err(|e| Refusal::Invalid(e.to_string()))?;
    pin(folder, SIGNER, key.to_pem().as_bytes())
}

/// Records the receiver's time of receipt beside `file`, durably, before
/// `file` itself is stored.
fn record_receipt(file: &Path, now: OffsetDateTime) -> Result<(), Refusal> {
    let path = received_path(file);
    crate::durable::write_file(&path, format!("{}\n", format_instant(now)).as_bytes())
        .map_err(|e| unavailable("record the time of receipt", &path, e))
}

/// How many of the checkpoints in `dir` arrived since `since` (by their
/// receipt files' times).
fn received_since(dir: &Path, since: std::time::SystemTime) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .ends_with(&format!(".json.{RECEIVED}"))
        })
        .filter(|e| e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t >= since))
        .count()
}

/// A checkpoint's `made_at` as its file name stamps it (`YYYYMMDDTHHMMSSZ`).
fn stamp_of(made_at: &str) -> Option<String> {
    let at = crate::ids::parse_instant(made_at).ok()?;
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    at.format(&format).ok()
}

/// Why a report's own stamps say its box's clock was ahead when it arrived at
/// `received` (by the receiver's clock): its month had not ended, or it was
/// generated later than it arrived (beyond [`CLOCK_TOLERANCE`]). The receiver
/// refuses such a report; `fleet` names one it finds stored.
pub fn clock_ahead(report: &ReportJson, received: OffsetDateTime) -> Option<String> {
    let generated = crate::ids::parse_instant(&report.report.generated_at).ok();
    let month_end = report.period.month.parse::<Month>().ok().map(Month::end);
    let ahead =
        generated.is_none_or(|g| g > received + CLOCK_TOLERANCE) || month_end.is_none_or(|e| e > received);
    ahead.then(|| {
        format!(
            "report {} for {} says it was generated at {}, but arrived at {}: the vessel's clock is ahead",
            report.report.sequence,
            report.period.month,
            report.report.generated_at,
            format_instant(received)
        )
    })
}

/// A stored report's `report.json` (it was verified in full when stored).
pub fn stored_report(path: &Path) -> Result<ReportJson, Refusal> {
    crate::report::read_report_json(path).map_err(|e| unavailable("read a stored report", path, e))
}

/// The report's own contents must say what its name says.
fn check_claims(name: &ReportName, report: &Verified) -> Result<(), Refusal> {
    let r = &report.report;
    if r.partial {
        return Err(Refusal::Invalid("a partial (preview) report is not kept".into()));
    }
    let claims = (
        r.installation.id.as_str(),
        r.period.month.as_str(),
        r.report.sequence,
    );
    let month = name.month.to_string();
    if claims != (name.installation.as_str(), month.as_str(), name.sequence) {
        return Err(Refusal::Invalid(format!(
            "the report is installation {}, {}, sequence {}, not what its name says",
            claims.0, claims.1, claims.2
        )));
    }
    Ok(())
}

/// The report names stored in one installation's folder.
fn stored_reports(folder: &Path) -> std::io::Result<Vec<ReportName>> {
    let entries = match std::fs::read_dir(folder) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        entries => entries?,
    };
    let mut names = Vec::new();
    for entry in entries {
        if let Ok(name) = entry?.file_name().to_string_lossy().parse::<ReportName>() {
            names.push(name);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_names_parse_only_as_the_uploader_sends_them() {
        let name: CheckpointName = "berth-checkpoint-a320-d-aine-42-20261202T101500Z.zip"
            .parse()
            .unwrap();
        assert_eq!((name.installation.as_str(), name.seq), ("a320-d-aine", 42));
        for bad in [
            "berth-checkpoint-x-42-20261202T101500.zip",
            "berth-checkpoint-x-042-20261202T101500Z.zip",
            "berth-checkpoint-x-+1-20261202T101500Z.zip",
            "berth-checkpoint-x-20261202T101500Z.zip",
            "berth-checkpoint-..-1-20261202T101500Z.zip",
            "berth-checkpoint-x-1-20261202T101500Z.json",
        ] {
            assert!(bad.parse::<CheckpointName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn report_names_parse_only_as_export_writes_them() {
        let name: ReportName = "berth-report-a320-d-aine-2026-10-3.zip".parse().unwrap();
        assert_eq!(name.installation, "a320-d-aine");
        assert_eq!(name.month.to_string(), "2026-10");
        assert_eq!(name.sequence, 3);
        for bad in [
            "berth-report-x-2026-10-3-partial.zip",
            "berth-report-x-2026-10-03.zip",
            "berth-report-x-2026-10-0.zip",
            "berth-report-x-2026-13-1.zip",
            "berth-report--2026-10-1.zip",
            "berth-report-2026-10-1.zip",
            "berth-report-../x-2026-10-1.zip",
            "berth-report-..-2026-10-1.zip",
            "berth-report-.incoming-2026-10-1.zip",
            "berth-report-x-2026-10-1.zip.tmp",
            "report.zip",
            "",
        ] {
            assert!(bad.parse::<ReportName>().is_err(), "{bad}");
        }
    }
}
