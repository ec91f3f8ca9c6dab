//! `berth log prune --before YYYY-MM`: removes the license log rows of the
//! months before YYYY-MM, once their signed reports are on the box (and, when an
//! upload address is configured, on the ground).
//!
//! What makes it safe: a row goes only when the report that holds it has been
//! exported, its zip is in the reports directory and verifies (signature,
//! hashes, chain, counts) as the very report berth recorded, so every pruned
//! row stays in a signed file. The last row of the last pruned month stays in
//! the log: the next report's chain begins with its hash, and the log writer,
//! `berth restore` and the reports read the newest row as before.

use std::path::Path;
use std::time::Duration;

use time::OffsetDateTime;

use super::{next_month, verify_file};
use crate::ids::{Month, format_instant};
use crate::store::{Db, PruneMark, StoreError};

/// Rows removed per transaction (about a millisecond's work), and the pause
/// after each, in which a serving log writer takes the lock: a month of a
/// million licenses goes in about half a minute, in the background.
const CHUNK: i64 = 500;
const PAUSE: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(
        "{through} has no report yet (the next to export is {next}): a month's licenses are pruned only once its signed report exists"
    )]
    NoReport { through: Month, next: Month },
    #[error("row {seq} is not the last row of the report for {month}: run `berth log verify`")]
    NotLastRow { seq: i64, month: String },
    #[error("the report for {0} has not been uploaded yet; its rows stay in the log until it has")]
    NotUploaded(String),
    #[error("the report for {month} does not verify ({source}); its rows stay in the log")]
    ReportBroken {
        month: String,
        source: super::VerifyError,
    },
    #[error("{} is not the report berth exported for {month}; its rows stay in the log", .path.display())]
    NotTheRecordedReport { path: std::path::PathBuf, month: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Export(#[from] super::ExportError),
}

/// What a prune did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// Rows removed by this call (0 when there was nothing more to remove).
    pub removed: u64,
    /// Where the log now begins (None: it was never pruned).
    pub mark: Option<PruneMark>,
}

/// Removes the rows of every month before `before`. `uploads` is whether an
/// upload address is configured: then each report must have been uploaded.
pub fn prune(
    db: &mut Db,
    before: Month,
    reports_dir: &Path,
    uploads: bool,
    now: OffsetDateTime,
) -> Result<Pruned, PruneError> {
    let installation = db.installation()?;
    let through = before.previous();
    let next = next_month(db)?;
    if through >= next {
        return Err(PruneError::NoReport { through, next });
    }
    let current = db.prune_mark()?;
    let reports = db.reports()?;
    let Some(last) = reports.iter().find(|r| r.month == through.to_string()) else {
        // Before the installation's first month: nothing was ever logged there.
        return Ok(Pruned {
            removed: 0,
            mark: current,
        });
    };
    let start = current.as_ref().map_or(1, |m| m.first_seq);
    if last.last_seq <= start {
        // Nothing new; finish a prune that was cut short, if one was.
        let removed = match &current {
            Some(mark) => db.prune_log(mark, CHUNK, PAUSE)?,
            None => 0,
        };
        return Ok(Pruned {
            removed,
            mark: current,
        });
    }
    check_reports_hold_the_rows(
        &reports,
        last,
        start,
        reports_dir,
        uploads,
        &installation.public_key_der,
    )?;
    let mut anchor = None;
    db.for_each_log_row::<StoreError>(last.last_seq, last.last_seq, |r| {
        anchor = Some((r.prev_hash.clone(), r.row_hash.clone()));
        Ok(())
    })?;
    let Some((prev_hash, _)) = anchor.filter(|(_, hash)| *hash == last.last_row_hash) else {
        return Err(PruneError::NotLastRow {
            seq: last.last_seq,
            month: last.month.clone(),
        });
    };
    let mark = PruneMark {
        first_seq: last.last_seq,
        prev_hash,
        through_month: last.month.clone(),
        report_sequence: last.sequence,
        pruned_at: format_instant(now),
    };
    let removed = db.prune_log(&mark, CHUNK, PAUSE)?;
    Ok(Pruned {
        removed,
        mark: Some(mark),
    })
}

/// Every report holding a row about to go must be on the ground when uploads
/// are configured (checked first: it is cheap, and the server asks at every
/// pass while a vessel is offline), and on the box, intact, the one berth
/// recorded.
fn check_reports_hold_the_rows(
    reports: &[crate::store::ReportRecord],
    last: &crate::store::ReportRecord,
    start: i64,
    reports_dir: &Path,
    uploads: bool,
    public_key_der: &[u8],
) -> Result<(), PruneError> {
    let holding: Vec<_> = reports
        .iter()
        .filter(|r| r.sequence <= last.sequence && r.last_seq >= start && r.first_seq <= r.last_seq)
        .collect();
    if let Some(report) = holding.iter().find(|r| uploads && r.uploaded_at.is_none()) {
        return Err(PruneError::NotUploaded(report.month.clone()));
    }
    for report in holding {
        let path = reports_dir.join(&report.file_name);
        let verified = verify_file(&path, None).map_err(|source| PruneError::ReportBroken {
            month: report.month.clone(),
            source,
        })?;
        if verified.manifest_sha256 != report.manifest_sha256 || verified.public_key_der != public_key_der {
            return Err(PruneError::NotTheRecordedReport {
                path,
                month: report.month.clone(),
            });
        }
    }
    Ok(())
}
