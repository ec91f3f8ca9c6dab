//! `berth log verify`: the chain walked row by row.

use super::StoreError;
use crate::chain::{GENESIS, row_hash};

/// Where the chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainProblem {
    pub seq: i64,
    pub what: String,
}

impl std::fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "row {}: {}", self.seq, self.what)
    }
}

/// What `berth log verify` found in an intact log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    /// Rows walked.
    pub rows: u64,
    /// The first row's seq (1 unless the log was pruned).
    pub first_seq: i64,
    pub last_seq: i64,
    /// Where the kept log begins, when rows were pruned.
    pub pruned: Option<super::PruneMark>,
}

/// Walks the log in `seq` order and recomputes every hash. A pruned log is
/// checked from its first row: that row's `prev_hash` is taken as given (the row
/// it names was removed), and the row at the recorded line must carry the
/// recorded hash. Rows just below the line (a prune cut short) are walked too.
pub fn verify_chain(db: &super::Db) -> Result<Result<ChainSummary, ChainProblem>, StoreError> {
    let mark = db.prune_mark()?;
    let first = db.first_log_seq()?;
    let mut prev_seq = 0i64;
    let mut prev_hash = GENESIS.to_owned();
    if let (Some(mark), Some(first)) = (&mark, first) {
        if first > mark.first_seq {
            return Ok(Err(ChainProblem {
                seq: first,
                what: format!(
                    "the log begins at row {first}, but only the rows before row {} were pruned (rows missing)",
                    mark.first_seq
                ),
            }));
        }
        if first > 1 {
            prev_seq = first - 1;
            db.for_each_log_row::<StoreError>(first, first, |r| {
                prev_hash.clone_from(&r.prev_hash);
                Ok(())
            })?;
        }
    }
    let mut rows = 0u64;
    let mut problem = None;
    let walked = db.for_each_log_row::<StoreError>(1, i64::MAX, |r| {
        if problem.is_some() {
            return Ok(());
        }
        let what = if r.seq != prev_seq + 1 {
            Some(format!(
                "sequence jumps from {prev_seq} to {} (rows missing)",
                r.seq
            ))
        } else if r.prev_hash != prev_hash {
            Some(
                "prev_hash does not match the previous row (a row was removed, inserted or edited)"
                    .to_owned(),
            )
        } else if mark
            .as_ref()
            .is_some_and(|m| m.first_seq == r.seq && m.prev_hash != r.prev_hash)
        {
            Some("prev_hash does not match the hash recorded when the rows before it were pruned".to_owned())
        } else if row_hash(&prev_hash, &r.chain_row()) != r.row_hash {
            Some("row_hash does not match the row's contents (the row was edited)".to_owned())
        } else {
            None
        };
        match what {
            Some(what) => problem = Some(ChainProblem { seq: r.seq, what }),
            None => {
                rows += 1;
                prev_seq = r.seq;
                prev_hash.clone_from(&r.row_hash);
            }
        }
        Ok(())
    });
    // A row that cannot be read as berth writes rows is where the chain breaks,
    // unless it broke before.
    match (walked, problem) {
        (Ok(()) | Err(StoreError::BadRow { .. }), Some(problem)) => Ok(Err(problem)),
        (Err(StoreError::BadRow { seq, what }), None) => Ok(Err(ChainProblem { seq, what })),
        (Err(e), _) => Err(e),
        (Ok(()), None) => Ok(Ok(ChainSummary {
            rows,
            first_seq: first.unwrap_or(0),
            last_seq: prev_seq,
            pruned: mark,
        })),
    }
}
