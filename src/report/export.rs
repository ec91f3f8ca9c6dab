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
use crate::ids::{Month, format_instant, hex};
use crate::store::{Db, ReportRecord, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Refused(String),
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
    std::fs::create_dir_all(dir)?;
    // The directory's own name too, for the first export into it (where its
    // parent can be read: `--out` may name any directory).
    let _ = crate::durable::sync_parent(dir);
    // One export at a time across processes (the server's automatic export, the
    // timer, a crew member at the CLI); the lock goes with the file handle.
    let lock = File::create(dir.join(".export.lock"))?;
    lock.lock()?;
    // An export interrupted by a power cut leaves a temporary file; none is in use now.
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    if !partial && month.end() > now {
        return Err(ExportError::Refused(format!(
            "{month} has not ended yet (it ends {}); use --partial for a preview",
            format_instant(month.end())
        )));
    }
    if !partial && let Some(existing) = db.report_for_month(&month.to_string())? {
        let path = dir.join(&existing.file_name);
        if path.exists() {
            let report = super::verify_file(&path, None)
                .map_err(|e| {
                    ExportError::Refused(format!(
                        "{month} was exported before, but {} fails verification: {e}",
                        path.display()
                    ))
                })?
                .report;
            return Ok(Exported {
                path,
                report,
                new: false,
            });
        }
        return Err(ExportError::Refused(format!(
            "{month} was exported before as {}, which is missing from {}",
            existing.file_name,
            dir.display()
        )));
    }
    let last = db.last_report()?;
    let expected = super::next_month(db)?;
    if month != expected {
        // A first report for another month would bill the licenses before it
        // in the wrong month, or begin the chain years early (a typo'd year) so
        // that every month since had to be exported, empty, before this one.
        return Err(ExportError::Refused(if last.is_none() {
            format!(
                "the first report to export is {expected}, the installation's first month (reports go month by month, none skipped)"
            )
        } else {
            format!("the next report to export is {expected} (reports go month by month, none skipped)")
        }));
    }
    let sequence = last.as_ref().map_or(1, |l| l.sequence + 1);
    let first_seq = last.as_ref().map_or(1, |l| l.last_seq + 1);
    let first_prev_hash = last
        .as_ref()
        .map_or_else(|| GENESIS.to_owned(), |l| l.last_row_hash.clone());
    let previous_report_sha256 = last.as_ref().map(|l| l.manifest_sha256.clone());
    let end = if partial {
        db.last_seq()?
    } else {
        db.last_seq_before(&format_instant(month.end()))?.unwrap_or(0)
    };
    let last_seq = end.max(first_seq - 1);
    let previous_issued_at = match last.as_ref() {
        Some(l) if l.last_seq > 0 => {
            let mut at = None;
            db.for_each_log_row::<StoreError>(l.last_seq, l.last_seq, |r| {
                at = Some(r.issued_at.clone());
                Ok(())
            })?;
            at
        }
        _ => None,
    };

    let signing_key = db.signing_key()?;
    let public_der = signing_key.public_der();
    let tmp = dir.join(format!(".tmp-{}.zip", hex(&crypto::random::<8>())));
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut zip = zip::ZipWriter::new(BufWriter::with_capacity(1 << 20, file));
        let fast = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(1))
            .large_file(true);
        let small = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);

        // licenses.csv, streamed, hashed, counted and chain-checked on the way:
        // this thread reads, checks and writes the CSV; a second one deflates
        // and hashes it (deflate alone was a quarter of an export's time).
        zip.start_file("licenses.csv", fast)?;
        let mut tally = Tally::new(month, previous_issued_at);
        let mut chain_head = first_prev_hash.clone();
        let csv_sha256 = std::thread::scope(|scope| {
            let (tx, rx) = sync_channel::<Vec<u8>>(4);
            let zip = &mut zip;
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
                let mut csv =
                    super::csv_writer(ChunkWriter::new(CHUNK, move |chunk| tx.send(chunk).is_ok()))?;
                db.for_each_log_row::<ExportError>(first_seq, last_seq, |r| {
                    let computed = row_hash(&r.prev_hash, &r.chain_row());
                    if r.prev_hash != chain_head || computed != r.row_hash {
                        return Err(ExportError::Refused(format!(
                            "the license log is broken at row {}; run `berth log verify` and investigate before exporting",
                            r.seq
                        )));
                    }
                    tally.add(r.seq, &r.issued_at, &r.key_system, &r.user_hash);
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
                (Err(e @ (ExportError::Refused(_) | ExportError::Store(_))), _) => Err(e),
                (_, Err(e)) => Err(ExportError::Io(e)),
                (Err(e), Ok(_)) => Err(e),
            }
        })?;
        let (counts, clock_anomalies) = tally.finish();
        if counts.licenses != (last_seq - first_seq + 1) as u64 {
            return Err(ExportError::Refused(format!(
                "rows {first_seq}..{last_seq} are not all in the log (found {}); run `berth log verify`",
                counts.licenses
            )));
        }
        let report = ReportJson {
            schema: SCHEMA.into(),
            installation: InstallationJson {
                id: installation.id.clone(),
                vessel_type: installation.vessel_type.as_str().into(),
                vessel_name: installation.vessel_name.clone(),
                public_key_sha256: sha256_hex(&public_der),
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
                first_seq,
                last_seq,
                first_prev_hash: first_prev_hash.clone(),
                last_row_hash: chain_head,
            },
            report: ReportMeta {
                sequence,
                generated_at: format_instant(now),
                previous_report_sha256,
            },
            software: Software {
                name: "berth".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
        };
        let report_bytes = serde_json::to_vec_pretty(&report).expect("a report serialises");
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
        for (name, bytes) in [
            ("report.json", report_bytes.as_slice()),
            ("manifest.json", manifest_bytes.as_slice()),
            ("manifest.sig", signature.as_slice()),
            ("signer.pem", signing_key.public_pem().as_bytes()),
        ] {
            zip.start_file(name, small)?;
            zip.write_all(bytes)?;
        }
        let file = zip.finish()?.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok((report, sha256_hex(&manifest_bytes)))
    })();
    let (report, manifest_sha256) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let name = file_name(&installation.id, month, sequence, partial);
    let path = dir.join(&name);
    if !partial {
        let record = ReportRecord {
            sequence,
            month: month.to_string(),
            file_name: name.clone(),
            manifest_sha256,
            zip_sha256: sha256_hex(&std::fs::read(&tmp)?),
            first_seq,
            last_seq,
            last_row_hash: report.log.last_row_hash.clone(),
            licenses: report.counts.licenses as i64,
            active_users: report.counts.active_users as i64,
            generated_at: report.report.generated_at.clone(),
            uploaded_at: None,
            upload_attempts: 0,
            next_attempt_at: None,
            last_error: None,
        };
        // The file under its name reaches the disk before the record does:
        // a recorded report always has its file, even after a power cut.
        std::fs::rename(&tmp, &path)?;
        crate::durable::sync_parent(&path)?;
        if !db.record_report(&record)? {
            return Err(ExportError::Refused(format!(
                "{month} was recorded by another exporter meanwhile"
            )));
        }
    } else {
        std::fs::rename(&tmp, &path)?;
        let _ = crate::durable::sync_parent(&path);
    }
    drop(lock);
    Ok(Exported {
        path,
        report,
        new: true,
    })
}
