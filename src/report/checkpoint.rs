//! Signed checkpoints: small statements of the chain's head (installation,
//! sequence number, the row hash there, the time, the software), signed with
//! the installation's report key and checkable with plain openssl like a
//! report's manifest. A report must pass through every checkpoint of its
//! installation that falls in its range, so that a log rolled back or
//! rewritten below a checkpoint that left the box shows.
//!
//! Each checkpoint is two files: `berth-checkpoint-<id>-<seq>-<time>.json`
//! and the raw Ed25519 signature of its exact bytes beside it (`.sig`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Software, Verified};
use crate::chain::GENESIS;
use crate::crypto::{PublicKey, sha256_hex};
use crate::ids::format_instant;
use crate::store::{Db, StoreError};

pub const CHECKPOINT_SCHEMA: &str = "berth.checkpoint/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub schema: String,
    pub installation: String,
    /// SHA-256 of the signer's public key (DER), as reports name it.
    pub public_key_sha256: String,
    /// The newest row when the checkpoint was made (0: an empty log).
    pub seq: i64,
    pub row_hash: String,
    pub made_at: String,
    pub software: Software,
}

/// A checkpoint made: where its file is, and what it says.
#[derive(Serialize)]
pub struct Made {
    pub file: PathBuf,
    pub seq: i64,
    pub row_hash: String,
}

impl std::fmt::Display for Made {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "checkpoint of row {} written to {} (its signature beside it, .sig)",
            self.seq,
            self.file.display()
        )
    }
}

/// Makes a checkpoint of the log's head now, in `<data_dir>/checkpoints`, on
/// the disk before this returns, and copies it (both files) into `out` when given.
pub fn make(db: &Db, now: OffsetDateTime, data_dir: &Path, out: Option<&Path>) -> anyhow::Result<Made> {
    let (path, made) = make_in(db, now, &data_dir.join("checkpoints"))?;
    let file = match out {
        None => path,
        Some(out) => {
            std::fs::create_dir_all(out)?;
            let name = path.file_name().expect("a checkpoint has a name").to_owned();
            std::fs::copy(path.with_extension("sig"), out.join(&name).with_extension("sig"))?;
            std::fs::copy(&path, out.join(&name))?;
            out.join(name)
        }
    };
    Ok(Made {
        file,
        seq: made.seq,
        row_hash: made.row_hash,
    })
}

/// Makes a checkpoint in `dir`; its JSON file's path and the checkpoint.
pub fn make_in(db: &Db, now: OffsetDateTime, dir: &Path) -> anyhow::Result<(PathBuf, Checkpoint)> {
    let installation = db.installation()?;
    let signing_key = db.signing_key()?;
    let seq = db.last_seq()?;
    let mut row_hash = GENESIS.to_owned();
    db.for_each_log_row::<StoreError>(seq, seq, |r| {
        row_hash.clone_from(&r.row_hash);
        Ok(())
    })?;
    let checkpoint = Checkpoint {
        schema: CHECKPOINT_SCHEMA.into(),
        installation: installation.id.clone(),
        public_key_sha256: sha256_hex(&signing_key.public_der()),
        seq,
        row_hash,
        made_at: format_instant(now),
        software: Software {
            name: "berth".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
    };
    let bytes = serde_json::to_vec_pretty(&checkpoint).expect("a checkpoint serialises");
    let signature = signing_key.sign(&bytes);
    std::fs::create_dir_all(dir)?;
    let stamp = now.format(time::macros::format_description!(
        "[year][month][day]T[hour][minute][second]Z"
    ))?;
    let path = dir.join(format!("berth-checkpoint-{}-{seq}-{stamp}.json", installation.id));
    crate::durable::write_file(&path.with_extension("sig"), &signature)?;
    crate::durable::write_file(&path, &bytes)?;
    // Queued for upload only once both files are on the disk.
    let name = path.file_name().expect("named above").to_string_lossy();
    db.record_checkpoint(&name, seq, &checkpoint.row_hash, &checkpoint.made_at)?;
    Ok((path, checkpoint))
}

/// The name a checkpoint travels under: its JSON file's, as `.zip`.
pub fn bundle_name(file_name: &str) -> String {
    format!("{}.zip", file_name.trim_end_matches(".json"))
}

/// A checkpoint as it leaves the box: a zip of `checkpoint.json` (its exact
/// bytes), `checkpoint.sig` and the signer's `signer.pem`, so a receiver
/// can check it as it checks a report.
pub fn bundle(dir: &Path, file_name: &str, signer_pem: &str) -> std::io::Result<Vec<u8>> {
    let json = std::fs::read(dir.join(file_name))?;
    let sig = std::fs::read(dir.join(file_name).with_extension("sig"))?;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in [
        ("checkpoint.json", json.as_slice()),
        ("checkpoint.sig", sig.as_slice()),
        ("signer.pem", signer_pem.as_bytes()),
    ] {
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .map_err(std::io::Error::other)?;
        zip.write_all(bytes)?;
    }
    Ok(zip.finish().map_err(std::io::Error::other)?.into_inner())
}

/// A checkpoint bundle that checks out: the checkpoint, its exact bytes, its
/// signature, and the signer's public key (DER).
pub struct Unbundled {
    pub checkpoint: Checkpoint,
    pub json: Vec<u8>,
    pub signature: Vec<u8>,
    pub signer_der: Vec<u8>,
}

/// Why a checkpoint bundle (a stranger's upload) is refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleProblem {
    #[error("not a zip file ({0})")]
    NotZip(zip::result::ZipError),
    #[error("the bundle has no {0}")]
    Missing(&'static str),
    #[error("{0} cannot be read ({1})")]
    Unreadable(&'static str, std::io::Error),
    #[error("{0} is larger than 64 KiB")]
    TooLarge(&'static str),
    #[error("signer.pem: {0}")]
    Signer(crate::crypto::CryptoError),
    #[error("checkpoint.json is not a checkpoint ({0})")]
    NotACheckpoint(serde_json::Error),
    #[error("checkpoint.json has schema {0:?}")]
    Schema(String),
    #[error("checkpoint.json names another key than signer.pem")]
    OtherKey,
    #[error("checkpoint.sig is not signer.pem's signature of checkpoint.json")]
    BadSignature,
}

/// Whether a checkpoint was made within a report's month, compared as
/// moments: the period is written to the second (`...T00:00:00Z`) and a
/// checkpoint to the millisecond, so as text a checkpoint made at the first
/// instant of the month sorted before it.
fn made_within(made_at: &str, period: &super::Period) -> bool {
    let moment = |text: &str| text.parse::<crate::ids::Timestamp>().ok();
    match (moment(made_at), moment(&period.start), moment(&period.end)) {
        (Some(at), Some(start), Some(end)) => start <= at && at < end,
        _ => false,
    }
}

/// Reads a checkpoint bundle (a stranger's upload): small entries only, the
/// signature by `signer.pem` over the exact JSON, the schema, and the key
/// the checkpoint names being that signer.
pub fn unbundle(bytes: &[u8]) -> Result<Unbundled, BundleProblem> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(BundleProblem::NotZip)?;
    let mut read = |name: &'static str| -> Result<Vec<u8>, BundleProblem> {
        let entry = zip.by_name(name).map_err(|_| BundleProblem::Missing(name))?;
        let mut out = Vec::new();
        entry
            .take(64 * 1024 + 1)
            .read_to_end(&mut out)
            .map_err(|e| BundleProblem::Unreadable(name, e))?;
        if out.len() > 64 * 1024 {
            return Err(BundleProblem::TooLarge(name));
        }
        Ok(out)
    };
    let (json, signature, pem) = (
        read("checkpoint.json")?,
        read("checkpoint.sig")?,
        read("signer.pem")?,
    );
    let key = PublicKey::from_pem(&pem).map_err(BundleProblem::Signer)?;
    let checkpoint: Checkpoint = serde_json::from_slice(&json).map_err(BundleProblem::NotACheckpoint)?;
    if checkpoint.schema != CHECKPOINT_SCHEMA {
        return Err(BundleProblem::Schema(checkpoint.schema));
    }
    let signer_der = key.der();
    if checkpoint.public_key_sha256 != sha256_hex(&signer_der) {
        return Err(BundleProblem::OtherKey);
    }
    if signature.len() != 64 || !key.verify(&json, &signature) {
        return Err(BundleProblem::BadSignature);
    }
    Ok(Unbundled {
        checkpoint,
        json,
        signature,
        signer_der,
    })
}

/// A checkpoint read from its files, with its exact bytes and signature.
#[derive(Debug, Clone)]
pub struct Signed {
    pub path: PathBuf,
    pub checkpoint: Checkpoint,
    bytes: Vec<u8>,
    signature: Vec<u8>,
}

impl Signed {
    /// Whether `key` signed exactly these bytes.
    pub fn signed_by(&self, key_der: &[u8]) -> bool {
        let Ok(key) = PublicKey::from_der(key_der) else {
            return false;
        };
        self.signature.len() == 64
            && self.checkpoint.public_key_sha256 == sha256_hex(key_der)
            && key.verify(&self.bytes, &self.signature)
    }
}

/// Every checkpoint in `dir` (`*.json` with a `.sig` beside it). A file that
/// is not a checkpoint is an error naming it: a checkpoint set the vendor
/// relies on must not be silently smaller.
pub fn load(dir: &Path) -> anyhow::Result<Vec<Signed>> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    let mut files = Vec::new();
    // Folders within too (a receiver's store keeps them per installation),
    // but not through a link to a folder.
    while let Some(dir) = dirs.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| anyhow::anyhow!("reading {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                dirs.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    for path in files {
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let read = |p: &Path| -> anyhow::Result<Vec<u8>> {
            let mut bytes = Vec::new();
            std::fs::File::open(p)
                .and_then(|f| f.take(64 * 1024).read_to_end(&mut bytes))
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))?;
            Ok(bytes)
        };
        let bytes = read(&path)?;
        let checkpoint: Checkpoint = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("{} is not a checkpoint ({e})", path.display()))?;
        if checkpoint.schema != CHECKPOINT_SCHEMA {
            anyhow::bail!(
                "{} has schema {:?}, expected {CHECKPOINT_SCHEMA}",
                path.display(),
                checkpoint.schema
            );
        }
        let signature = read(&path.with_extension("sig"))?;
        found.push(Signed {
            path,
            checkpoint,
            bytes,
            signature,
        });
    }
    found.sort_by_key(|c| c.checkpoint.seq);
    Ok(found)
}

/// Why a report does not agree with a checkpoint of its installation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("row {seq} differs from checkpoint {}: the log was rewritten or rolled back below it", .path.display())]
    Differs { seq: i64, path: PathBuf },
    #[error("the report ends at row {last_seq}, before checkpoint {} (row {seq}, made in its month): rows were removed", .path.display())]
    EndsBefore { last_seq: i64, seq: i64, path: PathBuf },
}

/// Checks that the report passes through every checkpoint its installation
/// signed that falls in its range: the row at the checkpoint's sequence has
/// the checkpoint's hash, and no checkpoint made in the report's month lies
/// past its end. Checkpoints of other installations, or not signed by the
/// report's key, are not this report's.
pub fn check(report_file: &Path, verified: &Verified, checkpoints: &[Signed]) -> anyhow::Result<usize> {
    let wanted: Vec<i64> = checkpoints.iter().map(|c| c.checkpoint.seq).collect();
    check_hashes(verified, &row_hashes(report_file, &wanted)?, checkpoints)
}

/// [`check`], with the report's row hashes at the checkpoints' rows already
/// read (by `verify_file_watching`, in the one reading of `licenses.csv`).
pub fn check_hashes(
    verified: &Verified,
    hashes: &HashMap<i64, String>,
    checkpoints: &[Signed],
) -> anyhow::Result<usize> {
    let r = &verified.report;
    let ours: Vec<&Signed> = checkpoints
        .iter()
        .filter(|c| c.checkpoint.installation == r.installation.id && c.signed_by(&verified.public_key_der))
        .collect();
    let mut checked = 0;
    for c in ours {
        let (seq, path) = (c.checkpoint.seq, c.path.clone());
        let at = |s: i64| -> Option<&str> {
            if s == r.log.first_seq - 1 {
                Some(&r.log.first_prev_hash)
            } else {
                hashes.get(&s).map(String::as_str)
            }
        };
        if (r.log.first_seq - 1..=r.log.last_seq).contains(&seq) {
            if at(seq) != Some(c.checkpoint.row_hash.as_str()) {
                return Err(CheckpointError::Differs { seq, path }.into());
            }
            checked += 1;
        } else if seq > r.log.last_seq && made_within(&c.checkpoint.made_at, &r.period) {
            return Err(CheckpointError::EndsBefore {
                last_seq: r.log.last_seq,
                seq,
                path,
            }
            .into());
        }
    }
    Ok(checked)
}

/// The row hashes at `seqs` in a report's `licenses.csv` (a report already
/// verified).
pub fn row_hashes(report_file: &Path, seqs: &[i64]) -> anyhow::Result<HashMap<i64, String>> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(report_file)?)?;
    let csv = zip.by_name("licenses.csv")?;
    let mut reader = csv::Reader::from_reader(csv);
    let mut found = HashMap::new();
    for record in reader.records() {
        let record = record?;
        let seq: i64 = record[0].parse().unwrap_or(-1);
        if seqs.contains(&seq) {
            found.insert(seq, record[9].to_owned());
        }
    }
    Ok(found)
}

#[cfg(test)]
mod moment_tests {
    use super::*;

    #[test]
    fn a_checkpoint_at_the_months_first_instant_is_within_it() {
        let period = crate::report::Period {
            month: "2026-11".into(),
            start: "2026-11-01T00:00:00Z".into(),
            end: "2026-12-01T00:00:00Z".into(),
        };
        assert!(
            made_within("2026-11-01T00:00:00.000Z", &period),
            "as text it sorted before the start"
        );
        assert!(made_within("2026-11-30T23:59:59.999Z", &period));
        assert!(!made_within("2026-12-01T00:00:00.000Z", &period));
        assert!(!made_within("2026-10-31T23:59:59.999Z", &period));
        assert!(!made_within("not a time", &period));
    }
}
