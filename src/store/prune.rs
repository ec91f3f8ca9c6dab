//! Pruning the license log: the rows of months whose signed reports hold them
//! are removed, oldest first, so that years of licenses do not fill the disk.
//! The rules (which months, which reports must exist) are `report::prune`'s;
//! this is the SQL.

use std::time::Duration;

use rusqlite::{OptionalExtension as _, TransactionBehavior, params};

use super::{Db, StoreError};

/// Where the kept log begins once rows have been pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneMark {
    /// The first row kept; every row below it may be removed, none at or above.
    pub first_seq: i64,
    /// That row's `prev_hash`: the `row_hash` of the last row removed.
    pub prev_hash: String,
    /// The last month whose rows were removed, and its report's sequence.
    pub through_month: String,
    pub report_sequence: i64,
    pub pruned_at: String,
}

impl PruneMark {
    /// The UTC day of the prune, `YYYY-MM-DD`.
    pub fn day(&self) -> &str {
        self.pruned_at.get(..10).unwrap_or(&self.pruned_at)
    }
}

impl Db {
    pub fn prune_mark(&self) -> Result<Option<PruneMark>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT first_seq, prev_hash, through_month, report_sequence, pruned_at FROM log_pruned",
                [],
                |r| {
                    Ok(PruneMark {
                        first_seq: r.get(0)?,
                        prev_hash: r.get(1)?,
                        through_month: r.get(2)?,
                        report_sequence: r.get(3)?,
                        pruned_at: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// The lowest `seq` in the log, if it holds any row.
    pub fn first_log_seq(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT min(seq) FROM license_log", [], |r| r.get(0))?)
    }

    /// Records `mark` (the line only moves up) and removes every row below it,
    /// oldest first, `chunk` rows per transaction with `pause` between them, and
    /// checkpoints its own pages after each: a serving log writer waits for one
    /// short transaction at most, and finds the lock free when it asks (SQLite's
    /// busy handler polls with growing sleeps, so back-to-back transactions kept
    /// it out for most of a second), and never pays for copying the pruned
    /// pages back into the database. A prune cut short (a power cut) leaves rows
    /// just below the line, which the next prune removes; the chain stays
    /// checkable meanwhile. Returns the number of rows removed.
    pub fn prune_log(&mut self, mark: &PruneMark, chunk: i64, pause: Duration) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: Option<i64> = tx
            .query_row("SELECT first_seq FROM log_pruned", [], |r| r.get(0))
            .optional()?;
        if let Some(current) = current.filter(|c| *c > mark.first_seq) {
            return Err(StoreError::AlreadyPruned {
                through: current,
                asked: mark.first_seq,
            });
        }
        tx.execute(
            "INSERT INTO log_pruned (singleton, first_seq, prev_hash, through_month, report_sequence, pruned_at)
             VALUES (1, ?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (singleton) DO UPDATE SET first_seq = ?1, prev_hash = ?2, through_month = ?3,
                 report_sequence = ?4, pruned_at = ?5",
            params![
                mark.first_seq,
                mark.prev_hash,
                mark.through_month,
                mark.report_sequence,
                mark.pruned_at
            ],
        )?;
        tx.commit()?;
        let mut removed = 0;
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(low) = tx.query_row("SELECT min(seq) FROM license_log", [], |r| {
                r.get::<_, Option<i64>>(0)
            })?
            else {
                break;
            };
            if low >= mark.first_seq {
                break;
            }
            let below = mark.first_seq.min(low.saturating_add(chunk.max(1)));
            removed += tx.execute("DELETE FROM license_log WHERE seq < ?1", [below])? as u64;
            tx.commit()?;
            self.conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
            std::thread::sleep(pause);
        }
        Ok(removed)
    }
}
