//! `berth report export`: stream a month's rows into a signed zip.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

use time::OffsetDateTime;
use zip::write::SimpleFileOptions;

use super::{InstallationJson, LogRange, Manifest, Period, ReportJson, ReportMeta, SCHEMA, Software, Tally};
use crate::chain::{GENESIS, row_hash};
use crate::chunks::ChunkWriter;
use crate::crypto::{self, sha256_hex};
use crate::ids::{Month, Timestamp, format_instant, hex};
use crate::store::{Db, ReportRecord, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A final report for a month that has not ended.
    #[error("{month} has not ended yet (it ends {ends}); use --partial for a preview")]
    NotEnded { month: Month, ends: String },
    /// Reports go month by month, none skipped, from the installation's first.
    #[error("the {} report to export is {expected}{} (reports go month by month, none skipped)",
        if *.first { "first" } else { "next" },
        if *.first { ", the installation's first month" } else { "" })]
    OutOfOrder { expected: Month, first: bool },
    #[error("{month} was exported before as {file}, which is missing from {}", .dir.display())]
    ExportedMissing {
        month: Month,
        file: String,
        dir: std::path::PathBuf,
    },
    #[error("{month} was exported before, but {} fails verification: {source}", .path.display())]
    ExportedBroken {
        month: Month,
        path: std::path::PathBuf,
        source: super::VerifyError,
    },
    /// Rows of the month's range are not in the log.
    #[error("rows {first}..{last} are not all in the log (found {found}); run `berth log verify`")]
    RowsMissing { first: i64, last: i64, found: u64 },
    #[error("the license log is broken at row {0}; run `berth log verify` and investigate before exporting")]
    ChainBroken(i64),
    #[error("{0} was recorded by another exporter meanwhile")]
    RecordedMeanwhile(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the report: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing the report zip: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("writing licenses.csv: {0}")]
    Csv(#[from] csv::Error),
}

#[derive(Debug)]
pub struct Exported {
    pub path: PathBuf,
    pub report: ReportJson,
    /// False when the month had been exported before and that file is returned.
    pub new: bool,
}

/// A writer that hashes what passes through it.
struct Hashing<W: Write> {
    inner: W,
    hash: crypto::Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// licenses.csv goes to the deflate thread in pieces of this size.
const CHUNK: usize = 256 * 1024;

pub fn file_name(installation: &str, month: Month, sequence: i64, partial: bool) -> String {
    let suffix = if partial { "-partial" } else { "" };
    format!("berth-report-{installation}-{month}-{sequence}{suffix}.zip")
}

/// Exports `month` into `<dir>`. Months go in order with none skipped; a month
/// already exported returns its existing file. A month that has not ended is
/// refused unless `partial` (a preview that is not recorded or uploaded).
pub fn export(
    db: &mut Db,
    month: Month,
    now: OffsetDateTime,
    partial: bool,
    dir: &Path,
) -> Result<Exported, ExportError> {
    let installation = db.installation()?;
    let lock = take_the_reports_dir(dir)?;
    if !partial && month.end() > now {
        return Err(ExportError::NotEnded {
            month,
            ends: format_instant(month.end()),
        });
    }
    if !partial && let Some(existing) = exported_before(db, month, dir)? {
        return Ok(existing);
    }
    let range = Range::next(db, month, partial)?;
    let signing_key = db.signing_key()?;
    let tmp = dir.join(format!(".tmp-{}.zip", hex(&crypto::random::<8>())));
    let written = write_zip(
        db,
        &tmp,
        &range,
        &installation,
        &signing_key,
        (month, now, partial),
    );
    let (report, manifest_sha256) = match written {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let path = dir.join(file_name(&installation.id, month, range.sequence, partial));
    if partial {
        std::fs::rename(&tmp, &path)?;
        let _ = crate::durable::sync_parent(&path);
    } else {
        record(db, &tmp, &path, &report, manifest_sha256)?;
    }
    drop(lock);
    Ok(Exported {
        path,
        report,
        new: true,
    })
}

/// Creates the reports directory and takes its lock: one export at a time
/// across processes (the server's automatic export, the timer, a crew member
/// at the CLI); the lock goes with the file handle. An export a power cut
/// interrupted left a temporary file; none is in use now.
fn take_the_reports_dir(dir: &Path) -> Result<File, ExportError> {
    std::fs::create_dir_all(dir)?;
    // The directory's own name too, for the first export into it (where its
    // parent can be read: `--out` may name any directory).
    let _ = crate::durable::sync_parent(dir);
    let lock = File::create(dir.join(".export.lock"))?;
    lock.lock()?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(lock)
}

/// The month's report, if it was exported before and its file still verifies.
fn exported_before(db: &Db, month: Month, dir: &Path) -> Result<Option<Exported>, ExportError> {
    let Some(existing) = db.report_for_month(&month.to_string())? else {
        return Ok(None);
    };
    let path = dir.join(&existing.file_name);
    if !path.exists() {
        return Err(ExportError::ExportedMissing {
            month,
            file: existing.file_name,
            dir: dir.to_path_buf(),
        });
    }
    let report = match super::verify_file(&path, None) {
        Ok(verified) => verified.report,
        Err(source) => return Err(ExportError::ExportedBroken { month, path, source }),
    };
    Ok(Some(Exported {
        path,
        report,
        new: false,
    }))
}

/// Where the next report sits in the chain: every row after the previous
/// report's last, up to the newest row stamped before the month's end.
struct Range {
    sequence: i64,
    first_seq: i64,
    last_seq: i64,
    first_prev_hash: String,
    previous_report_sha256: Option<String>,
    /// The previous report's last row's stamp (for clock anomalies).
    previous_issued_at: Option<Timestamp>,
}

/// A log row stamped otherwise than berth stamps: a row berth did not write.
fn bad_stamp(seq: i64) -> impl FnOnce(crate::ids::ParseError) -> StoreError {
    move |e| StoreError::BadRow {
        seq,
        what: e.to_string(),
    }
}

impl Range {
    fn next(db: &Db, month: Month, partial: bool) -> Result<Range, ExportError> {
        let last = db.last_report()?;
        let expected = super::next_month(db)?;
        if month != expected {
            // A first report for another month would bill the licenses before it
            // in the wrong month, or begin the chain years early (a typo'd year) so
            // that every month since had to be exported, empty, before this one.
            return Err(ExportError::OutOfOrder {
                expected,
                first: last.is_none(),
            });
        }
        let first_seq = last.as_ref().map_or(1, |l| l.last_seq + 1);
        let end = if partial {
            db.last_seq()?
        } else {
            db.last_seq_before(&format_instant(month.end()))?.unwrap_or(0)
        };
        let mut previous_issued_at = None;
        if let Some(l) = last.as_ref().filter(|l| l.last_seq > 0) {
            db.for_each_log_row::<StoreError>(l.last_seq, l.last_seq, |r| {
                previous_issued_at = Some(Timestamp::from_stamp(&r.issued_at).map_err(bad_stamp(r.seq))?);
                Ok(())
            })?;
        }
        Ok(Range {
            sequence: last.as_ref().map_or(1, |l| l.sequence + 1),
            first_seq,
            last_seq: end.max(first_seq - 1),
            first_prev_hash: last
                .as_ref()
                .map_or_else(|| GENESIS.to_owned(), |l| l.last_row_hash.clone()),
            previous_report_sha256: last.map(|l| l.manifest_sha256),
            previous_issued_at,
        })
    }
}

/// Writes the signed zip to `tmp` and syncs it; the report and the SHA-256 of
/// its manifest.
fn write_zip(
    db: &Db,
    tmp: &Path,
    range: &Range,
    installation: &crate::store::Installation,
    signing_key: &crypto::SigningKey,
    (month, now, partial): (Month, OffsetDateTime, bool),
) -> Result<(ReportJson, String), ExportError> {
    let file = File::create(tmp)?;
    let mut zip = zip::ZipWriter::new(BufWriter::with_capacity(1 << 20, file));
    let (csv_sha256, tally, last_row_hash) = write_licenses_csv(&mut zip, db, range, month)?;
    let (counts, clock_anomalies, mut titles) = tally.finish();
    let labels: std::collections::HashMap<String, String> = db
        .list_keys()?
        .into_iter()
        .map(|k| (k.kid.to_string(), k.label))
        .collect();
    for (kid, title) in &mut titles {
        title.label = labels.get(kid).cloned().unwrap_or_default();
    }
    let (checkpoints, coverage) = month_record(db, month)?;
    if counts.licenses != (range.last_seq - range.first_seq + 1) as u64 {
        return Err(ExportError::RowsMissing {
            first: range.first_seq,
            last: range.last_seq,
            found: counts.licenses,
        });
    }
    let report = ReportJson {
        schema: SCHEMA.into(),
        installation: InstallationJson {
            id: installation.id.clone(),
            vessel_type: installation.vessel_type.as_str().into(),
            vessel_name: installation.vessel_name.clone(),
            public_key_sha256: sha256_hex(&signing_key.public_der()),
        },
        period: Period {
            month: month.to_string(),
            start: format_instant(month.start()).replace(".000Z", "Z"),
            end: format_instant(month.end()).replace(".000Z", "Z"),
        },
        partial,
        active: counts.licenses > 0,
        counts,
        repeat_fetches: db.counts(month)?.repeat_fetches,
        clock_anomalies,
        log: LogRange {
            first_seq: range.first_seq,
            last_seq: range.last_seq,
            first_prev_hash: range.first_prev_hash.clone(),
            last_row_hash,
        },
        report: ReportMeta {
            sequence: range.sequence,
            generated_at: format_instant(now),
            previous_report_sha256: range.previous_report_sha256.clone(),
        },
        software: Software {
            name: "berth".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        titles: Some(titles),
        checkpoints: Some(checkpoints),
        coverage: Some(coverage),
    };
    let manifest_sha256 = sign_into(&mut zip, &report, csv_sha256, signing_key)?;
    let file = zip.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((report, manifest_sha256))
}

/// The checkpoints made in `month` and when berth served in it.
fn month_record(db: &Db, month: Month) -> Result<(Vec<super::CheckpointRef>, super::Coverage), ExportError> {
    let (start, end) = (format_instant(month.start()), format_instant(month.end()));
    let checkpoints = db
        .checkpoints_made_between(&start, &end)?
        .into_iter()
        .map(|c| super::CheckpointRef {
            seq: c.seq,
            row_hash: c.row_hash,
            made_at: c.made_at,
        })
        .collect();
    let mut coverage = super::Coverage {
        log_unavailable: db
            .log_outages_between(&start, &end)?
            .into_iter()
            .map(super::LogUnavailable::from)
            .collect(),
        ..super::Coverage::default()
    };
    let mut previous_seen: Option<String> = None;
    for run in db.serving_periods_between(&start, &end)? {
        if let Some(previous) = previous_seen.as_deref().filter(|p| *p > run.started_at.as_str()) {
            coverage.clock_set_back.push(super::ClockSetBack {
                started_at: run.started_at.clone(),
                previous_last_seen_at: previous.to_owned(),
            });
        }
        previous_seen = Some(run.last_seen_at.clone());
        let ended = run.stopped_at.clone().unwrap_or_else(|| run.last_seen_at.clone());
        coverage.serving.push(super::ServingInterval {
            start: run.started_at.max(start.clone()),
            end: ended.min(end.clone()),
            clean_stop: run.stopped_at.is_some(),
        });
    }
    Ok((checkpoints, coverage))
}

/// `licenses.csv`, streamed, hashed, counted and chain-checked on the way:
/// this thread reads, checks and writes the CSV; a second one deflates and
/// hashes it (deflate alone was a quarter of an export's time). Returns the
/// CSV's SHA-256, the tally, and the last row's hash.
fn write_licenses_csv<W: Write + std::io::Seek + Send>(
    zip: &mut zip::ZipWriter<W>,
    db: &Db,
    range: &Range,
    month: Month,
) -> Result<(String, Tally, String), ExportError> {
    let fast = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(true);
    zip.start_file("licenses.csv", fast)?;
    let mut tally = Tally::new(month, range.previous_issued_at);
    let mut chain_head = range.first_prev_hash.clone();
    let csv_sha256 = std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<Vec<u8>>(4);
        let deflater = scope.spawn(move || -> std::io::Result<String> {
            let mut hashing = Hashing {
                inner: zip,
                hash: crypto::Sha256::new(),
            };
            for chunk in rx {
                hashing.write_all(&chunk)?;
            }
            Ok(hex(&hashing.hash.finish()))
        });
        let written = (|| -> Result<(), ExportError> {
            let mut csv = super::csv_writer(ChunkWriter::new(CHUNK, move |chunk| tx.send(chunk).is_ok()))?;
            db.for_each_log_row::<ExportError>(range.first_seq, range.last_seq, |r| {
                let computed = row_hash(&r.prev_hash, &r.chain_row());
                if r.prev_hash != chain_head || computed != r.row_hash {
                    return Err(ExportError::ChainBroken(r.seq));
                }
                tally
                    .add(r.seq, &r.issued_at, &r.key_system, &r.kids, &r.user_hash)
                    .map_err(bad_stamp(r.seq))?;
                super::write_csv_row(&mut csv, r)?;
                chain_head.clone_from(&r.row_hash);
                Ok(())
            })?;
            csv.flush()?;
            Ok(())
        })();
        // The sender is gone either way, so the deflater ends; its own error
        // (a full disk, say) explains a failed send better than ours.
        let hashed = deflater.join().expect("the deflate thread panicked");
        match (written, hashed) {
            (Ok(()), Ok(hash)) => Ok(hash),
            (Err(e @ (ExportError::ChainBroken(_) | ExportError::Store(_))), _) => Err(e),
            (_, Err(e)) => Err(ExportError::Io(e)),
            (Err(e), Ok(_)) => Err(e),
        }
    })?;
    Ok((csv_sha256, tally, chain_head))
}

/// Adds `report.json`, the manifest of both files, its signature and the
/// signer's public key; returns the manifest's SHA-256.
fn sign_into<W: Write + std::io::Seek>(
    zip: &mut zip::ZipWriter<W>,
    report: &ReportJson,
    csv_sha256: String,
    signing_key: &crypto::SigningKey,
) -> Result<String, ExportError> {
    let report_bytes = serde_json::to_vec_pretty(report).expect("a report serialises");
    let manifest = Manifest {
        files: [
            ("licenses.csv".to_owned(), csv_sha256),
            ("report.json".to_owned(), sha256_hex(&report_bytes)),
        ]
        .into_iter()
        .collect(),
    };
    let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    let signature = signing_key.sign(&manifest_bytes);
    let small = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in [
        ("report.json", report_bytes.as_slice()),
        ("manifest.json", manifest_bytes.as_slice()),
        ("manifest.sig", signature.as_slice()),
        ("signer.pem", signing_key.public_pem().as_bytes()),
    ] {
        zip.start_file(name, small)?;
        zip.write_all(bytes)?;
    }
    Ok(sha256_hex(&manifest_bytes))
}

/// Gives the zip its name and records the report. The file under its name
/// reaches the disk before the record does: a recorded report always has its
/// file, even after a power cut.
fn record(
    db: &mut Db,
    tmp: &Path,
    path: &Path,
    report: &ReportJson,
    manifest_sha256: String,
) -> Result<(), ExportError> {
    let record = ReportRecord {
        sequence: report.report.sequence,
        month: report.period.month.clone(),
        file_name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        manifest_sha256,
        zip_sha256: sha256_hex(&std::fs::read(tmp)?),
        first_seq: report.log.first_seq,
        last_seq: report.log.last_seq,
        last_row_hash: report.log.last_row_hash.clone(),
        licenses: report.counts.licenses as i64,
        active_users: report.counts.active_users as i64,
        generated_at: report.report.generated_at.clone(),
        uploaded_at: None,
        upload_attempts: 0,
        next_attempt_at: None,
        last_error: None,
    };
    std::fs::rename(tmp, path)?;
    crate::durable::sync_parent(path)?;
    if !db.record_report(&record)? {
        return Err(ExportError::RecordedMeanwhile(report.period.month.clone()));
    }
    Ok(())
}
