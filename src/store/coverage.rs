//! What the box records of its own coverage: the checkpoint outbox (checkpoints
//! made and their upload state), the runs of `berth serve`, and the stretches
//! the license log could not be written.

use rusqlite::{OptionalExtension, params};

use super::{Db, StoreError};

/// A checkpoint made on this box and its upload state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckpointRecord {
    pub file_name: String,
    pub seq: i64,
    pub row_hash: String,
    pub made_at: String,
    pub uploaded_at: Option<String>,
    pub upload_attempts: i64,
    pub last_error: Option<String>,
}

const COLUMNS: &str = "file_name, seq, row_hash, made_at, uploaded_at, upload_attempts, last_error";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CheckpointRecord> {
    Ok(CheckpointRecord {
        file_name: r.get(0)?,
        seq: r.get(1)?,
        row_hash: r.get(2)?,
        made_at: r.get(3)?,
        uploaded_at: r.get(4)?,
        upload_attempts: r.get(5)?,
        last_error: r.get(6)?,
    })
}

/// A stretch the license log could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOutage {
    pub start: String,
    pub end: String,
    pub reason: String,
}

/// One run of `berth serve`: from its start to its clean stop, or to its
/// last sign of life when it did not stop cleanly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingPeriod {
    pub started_at: String,
    pub last_seen_at: String,
    pub stopped_at: Option<String>,
}

impl Db {
    /// Queues a checkpoint whose files are already on the disk.
    pub fn record_checkpoint(
        &self,
        file_name: &str,
        seq: i64,
        row_hash: &str,
        made_at: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO checkpoints (file_name, seq, row_hash, made_at) VALUES (?1, ?2, ?3, ?4)",
            params![file_name, seq, row_hash, made_at],
        )?;
        Ok(())
    }

    /// Checkpoints not uploaded yet whose next attempt is due at `now`, oldest first.
    /// Not yet uploaded and due at `now`; every one not yet uploaded when
    /// `now` is None (an upload forced by hand ignores the backoff).
    pub fn pending_checkpoints(&self, now: Option<&str>) -> Result<Vec<CheckpointRecord>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM checkpoints
             WHERE uploaded_at IS NULL AND (?1 IS NULL OR next_attempt_at IS NULL OR next_attempt_at <= ?1)
             ORDER BY made_at, seq"
        ))?;
        let rows = stmt.query_map([now], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Checkpoints made in `[start, end)` (instants as stored), oldest first.
    pub fn checkpoints_made_between(
        &self,
        start: &str,
        end: &str,
    ) -> Result<Vec<CheckpointRecord>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM checkpoints WHERE made_at >= ?1 AND made_at < ?2 ORDER BY made_at, seq"
        ))?;
        let rows = stmt.query_map([start, end], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest checkpoint made, and the newest uploaded.
    pub fn last_checkpoints(
        &self,
    ) -> Result<(Option<CheckpointRecord>, Option<CheckpointRecord>), StoreError> {
        let newest = |filter: &str| {
            self.conn
                .query_row(
                    &format!(
                        "SELECT {COLUMNS} FROM checkpoints {filter} ORDER BY made_at DESC, seq DESC LIMIT 1"
                    ),
                    [],
                    from_row,
                )
                .optional()
        };
        Ok((newest("")?, newest("WHERE uploaded_at IS NOT NULL")?))
    }

    /// Records that `berth serve` started at `at`.
    pub fn serving_started(&self, at: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO serving_periods (started_at, last_seen_at) VALUES (?1, ?1)",
            [at],
        )?;
        Ok(())
    }

    /// The run that started at `started` is alive at `at` (or stopped, cleanly).
    pub fn serving_seen(&self, started: &str, at: &str, stopped: bool) -> Result<(), StoreError> {
        let stop = if stopped { Some(at) } else { None };
        self.conn.execute(
            "UPDATE serving_periods SET last_seen_at = max(last_seen_at, ?2), stopped_at = coalesce(?3, stopped_at)
             WHERE started_at = ?1",
            params![started, at, stop],
        )?;
        Ok(())
    }

    /// The stretches the log could not be written that overlap `[start, end)`.
    pub fn log_outages_between(&self, start: &str, end: &str) -> Result<Vec<LogOutage>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT started_at, ended_at, reason FROM log_outages
             WHERE started_at < ?2 AND ended_at >= ?1 ORDER BY started_at",
        )?;
        let rows = stmt.query_map([start, end], |r| {
            Ok(LogOutage {
                start: r.get(0)?,
                end: r.get(1)?,
                reason: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The runs that overlap `[start, end)`, oldest first.
    pub fn serving_periods_between(&self, start: &str, end: &str) -> Result<Vec<ServingPeriod>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT started_at, last_seen_at, stopped_at FROM serving_periods
             WHERE started_at < ?2 AND coalesce(stopped_at, last_seen_at) >= ?1 ORDER BY started_at",
        )?;
        let rows = stmt.query_map([start, end], |r| {
            Ok(ServingPeriod {
                started_at: r.get(0)?,
                last_seen_at: r.get(1)?,
                stopped_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
