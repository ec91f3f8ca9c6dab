//! Exported reports (the chain of monthly reports and the upload outbox) and the
//! log reads a report needs.

use rusqlite::{OptionalExtension as _, params};

use super::{Db, StoreError};

/// An entry of the upload outbox.
#[derive(Debug, Clone, Copy)]
pub enum OutboxEntry<'a> {
    /// A report, by sequence.
    Report(i64),
    /// A checkpoint, by file name.
    Checkpoint(&'a str),
}

/// One exported (final) report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRecord {
    pub sequence: i64,
    pub month: String,
    pub file_name: String,
    pub manifest_sha256: String,
    pub zip_sha256: String,
    pub first_seq: i64,
    pub last_seq: i64,
    pub last_row_hash: String,
    pub licenses: i64,
    pub active_users: i64,
    pub generated_at: String,
    pub uploaded_at: Option<String>,
    pub upload_attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
}

/// One license log row, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogRow {
    pub seq: i64,
    pub issued_at: String,
    pub key_system: String,
    pub kids: String,
    pub license_type: String,
    pub user_hash: String,
    pub token_id: String,
    pub com_key_id: String,
    pub prev_hash: String,
    pub row_hash: String,
}

impl LogRow {
    /// The fields the hash chain covers.
    pub fn chain_row(&self) -> crate::chain::Row<'_> {
        crate::chain::Row {
            seq: self.seq,
            issued_at: &self.issued_at,
            key_system: &self.key_system,
            kids: &self.kids,
            license_type: &self.license_type,
            user_hash: &self.user_hash,
            token_id: &self.token_id,
            com_key_id: &self.com_key_id,
        }
    }
}

/// The license log's columns in [`log_row`]'s order.
pub(super) const LOG_COLUMNS: &str =
    "seq, issued_at, key_system, kids, license_type, user_hash, token_id, com_key_id, prev_hash, row_hash";

pub(super) fn log_row(r: &rusqlite::Row<'_>) -> Result<LogRow, StoreError> {
    let mut row = LogRow::default();
    read_log_row(r, &mut row)?;
    Ok(row)
}

/// Reads a row of [`LOG_COLUMNS`] into `row`, reusing its strings' buffers. A
/// field that is not UTF-8 text was not written by berth: [`StoreError::BadRow`].
fn read_log_row(r: &rusqlite::Row<'_>, row: &mut LogRow) -> Result<(), StoreError> {
    row.seq = r.get(0)?;
    let fields = [
        &mut row.issued_at,
        &mut row.key_system,
        &mut row.kids,
        &mut row.license_type,
        &mut row.user_hash,
        &mut row.token_id,
        &mut row.com_key_id,
        &mut row.prev_hash,
        &mut row.row_hash,
    ];
    for (i, field) in fields.into_iter().enumerate() {
        let text = r.get_ref(i + 1)?.as_str().map_err(|_| StoreError::BadRow {
            seq: row.seq,
            what: format!(
                "column {} is not UTF-8 text (the row was written outside berth)",
                LOG_COLUMNS.split(", ").nth(i + 1).unwrap_or("?")
            ),
        })?;
        field.clear();
        field.push_str(text);
    }
    Ok(())
}

const REPORT_COLUMNS: &str = "sequence, month, file_name, manifest_sha256, zip_sha256, first_seq, last_seq,
     last_row_hash, licenses, active_users, generated_at, uploaded_at, upload_attempts, next_attempt_at,
     last_error";

fn report_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReportRecord> {
    Ok(ReportRecord {
        sequence: r.get(0)?,
        month: r.get(1)?,
        file_name: r.get(2)?,
        manifest_sha256: r.get(3)?,
        zip_sha256: r.get(4)?,
        first_seq: r.get(5)?,
        last_seq: r.get(6)?,
        last_row_hash: r.get(7)?,
        licenses: r.get(8)?,
        active_users: r.get(9)?,
        generated_at: r.get(10)?,
        uploaded_at: r.get(11)?,
        upload_attempts: r.get(12)?,
        next_attempt_at: r.get(13)?,
        last_error: r.get(14)?,
    })
}

impl Db {
    pub fn reports(&self) -> Result<Vec<ReportRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {REPORT_COLUMNS} FROM reports ORDER BY sequence"))?;
        let rows = stmt.query_map([], report_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn last_report(&self) -> Result<Option<ReportRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {REPORT_COLUMNS} FROM reports ORDER BY sequence DESC LIMIT 1"),
                [],
                report_from_row,
            )
            .optional()?)
    }

    pub fn report_for_month(&self, month: &str) -> Result<Option<ReportRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {REPORT_COLUMNS} FROM reports WHERE month = ?1"),
                [month],
                report_from_row,
            )
            .optional()?)
    }

    /// Records an exported report. Returns false, changing nothing, when a report
    /// with this sequence or month exists already (another exporter won).
    pub fn record_report(&mut self, r: &ReportRecord) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO reports (sequence, month, file_name, manifest_sha256, zip_sha256,
                 first_seq, last_seq, last_row_hash, licenses, active_users, generated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                r.sequence,
                r.month,
                r.file_name,
                r.manifest_sha256,
                r.zip_sha256,
                r.first_seq,
                r.last_seq,
                r.last_row_hash,
                r.licenses,
                r.active_users,
                r.generated_at
            ],
        )?;
        Ok(n == 1)
    }

    /// Reports not yet accepted by the receiver whose next attempt is due.
    /// Not yet uploaded and due at `now`; every one not yet uploaded when
    /// `now` is None (an upload forced by hand ignores the backoff).
    pub fn pending_uploads(&self, now: Option<&str>) -> Result<Vec<ReportRecord>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {REPORT_COLUMNS} FROM reports
             WHERE uploaded_at IS NULL AND (?1 IS NULL OR next_attempt_at IS NULL OR next_attempt_at <= ?1)
             ORDER BY sequence"
        ))?;
        let rows = stmt.query_map([now], report_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records one upload attempt of an outbox entry (the reports and the
    /// checkpoints keep their uploads alike): done at `Ok(at)`, or failed with
    /// `Err((why, when to try next))`.
    pub fn record_upload(
        &self,
        entry: OutboxEntry<'_>,
        result: Result<&str, (&str, &str)>,
    ) -> Result<(), StoreError> {
        let (table, key_column) = match entry {
            OutboxEntry::Report(_) => ("reports", "sequence"),
            OutboxEntry::Checkpoint(_) => ("checkpoints", "file_name"),
        };
        let key: &dyn rusqlite::ToSql = match &entry {
            OutboxEntry::Report(sequence) => sequence,
            OutboxEntry::Checkpoint(name) => name,
        };
        match result {
            Ok(at) => self.conn.execute(
                &format!(
                    "UPDATE {table} SET uploaded_at = ?2, upload_attempts = upload_attempts + 1, last_error = NULL
                     WHERE {key_column} = ?1"
                ),
                params![key, at],
            )?,
            Err((why, next)) => self.conn.execute(
                &format!(
                    "UPDATE {table} SET upload_attempts = upload_attempts + 1, last_error = ?2, next_attempt_at = ?3
                     WHERE {key_column} = ?1"
                ),
                params![key, why, next],
            )?,
        };
        Ok(())
    }

    /// The newest row stamped before `before` (normally the month's last row).
    pub fn last_seq_before(&self, before: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq FROM license_log WHERE issued_at < ?1 ORDER BY seq DESC LIMIT 1",
                [before],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn last_seq(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT coalesce(max(seq), 0) FROM license_log", [], |r| r.get(0))?)
    }

    /// Calls `f` for every row with `from <= seq <= to`, in order, from one
    /// consistent snapshot. The row is lent, one buffer for them all: a month's
    /// report reads millions.
    pub fn for_each_log_row<E: From<StoreError>>(
        &self,
        from: i64,
        to: i64,
        mut f: impl FnMut(&LogRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {LOG_COLUMNS} FROM license_log WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq"
            ))
            .map_err(StoreError::from)?;
        let mut rows = stmt.query(params![from, to]).map_err(StoreError::from)?;
        let mut row = LogRow::default();
        while let Some(r) = rows.next().map_err(StoreError::from)? {
            read_log_row(r, &mut row)?;
            f(&row)?;
        }
        Ok(())
    }
}
