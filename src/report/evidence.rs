//! What an installation's signed evidence proves, with the ground's clock
//! bounding the box's: the rows billed for each month are never fewer than
//! its checkpoints prove.
//!
//! The rule (the reference, "Billing against the box's clock", says the same):
//!
//! - Log rows are numbered from 1 at `init` with no gaps, and every row is one
//!   license; a checkpoint of row N signed by the installation's key proves N
//!   rows existed when it was made.
//! - A checkpoint's time is the receiver's time of receipt (`.received` beside
//!   it) when there is one, else its own `made_at`, a claim. A checkpoint or
//!   report stamped later than its receipt by more than the tolerance, or a
//!   `made_at` in the future of the billing clock, marks the installation's
//!   clock as ahead (a problem).
//! - For each month X that has ended by the billing clock, the rows billed
//!   through X are the most of: the last row of the counted reports of X and
//!   before, the highest row proven by a checkpoint whose time is before X
//!   ends, and the rows billed through the month before. The month's
//!   licenses are the difference. So rows a checkpoint proves cannot leave
//!   the bill by being stamped into a month that is never reported; rows
//!   billed early are not billed again when a later report holds them.
//! - Two checkpoints of one row with different hashes are a problem; both
//!   still prove the row.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::Verified;
use super::checkpoint::Signed;
use crate::ground::archive::{CLOCK_TOLERANCE, clock_ahead, received_at};
use crate::ids::{Month, format_instant, parse_instant};

/// One month of an installation, as billed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthRows {
    pub month: Month,
    /// The licenses its counted report holds (0 without one).
    pub reported: u64,
    /// The licenses billed: at least what the evidence proves.
    pub billed: u64,
    /// The index of its counted report, if it has one.
    pub report: Option<usize>,
}

/// An installation's months as billed, and what did not bill as reported.
#[derive(Debug, Default)]
pub struct Proven {
    pub months: Vec<MonthRows>,
    pub problems: Vec<String>,
}

/// The months of one installation: `reports` are its counted reports in
/// sequence order (a chain), `checkpoints` those signed by its key, `now`
/// the billing clock.
pub fn months(
    reports: &[&Verified],
    report_files: &[&std::path::Path],
    checkpoints: &[&Signed],
    now: OffsetDateTime,
) -> Proven {
    let mut proven = Proven::default();
    for (v, path) in reports.iter().zip(report_files) {
        report_clock(v, path, &mut proven.problems);
    }
    let proofs = checkpoint_times(checkpoints, now, &mut proven.problems);
    // Every month with a counted report, or with a checkpoint's time in it,
    // that has ended by the billing clock.
    let mut wanted: BTreeMap<Month, Option<usize>> = BTreeMap::new();
    for (i, v) in reports.iter().enumerate() {
        if let Ok(month) = v.report.period.month.parse::<Month>() {
            wanted.insert(month, Some(i));
        }
    }
    for (_, at) in &proofs {
        wanted.entry(Month::of(*at)).or_insert(None);
    }
    let base = reports.first().map_or(0, |v| v.report.log.first_seq - 1).max(0);
    let mut billed_through = base;
    let mut reported_through = base;
    for (month, report) in wanted {
        if month.end() > now {
            continue;
        }
        let reported = report.map_or(0, |i| reports[i].report.counts.licenses);
        if let Some(i) = report {
            reported_through = reported_through.max(reports[i].report.log.last_seq);
        }
        let proven_rows = proofs
            .iter()
            .filter(|(_, at)| *at < month.end())
            .map(|(seq, _)| *seq)
            .max()
            .unwrap_or(0);
        let through = reported_through.max(proven_rows).max(billed_through);
        let billed = u64::try_from(through - billed_through).unwrap_or(0);
        if billed > reported {
            proven.problems.push(format!(
                "{month}: {} licenses a checkpoint proves (row {proven_rows}) are in no report up to {month} (reports reach row {reported_through}); billed in {month}",
                billed - reported
            ));
        } else if billed < reported {
            proven.problems.push(format!(
                "{month}: {} of the report's licenses were billed in an earlier month, when a checkpoint proved them",
                reported - billed
            ));
        }
        billed_through = through;
        proven.months.push(MonthRows {
            month,
            reported,
            billed,
            report,
        });
    }
    proven
}

/// A stored report whose stamps say its box's clock was ahead when the
/// receiver got it (the receiver's own rule, [`clock_ahead`]).
fn report_clock(v: &Verified, path: &std::path::Path, problems: &mut Vec<String>) {
    if let Some(why) = received_at(path).and_then(|received| clock_ahead(&v.report, received)) {
        problems.push(format!("clock ahead: {why}"));
    }
}

/// Each checkpoint's row and the time that bounds it; names clocks that are
/// ahead and rows checkpointed twice with different hashes.
fn checkpoint_times(
    checkpoints: &[&Signed],
    now: OffsetDateTime,
    problems: &mut Vec<String>,
) -> Vec<(i64, OffsetDateTime)> {
    let mut by_row: BTreeMap<i64, &str> = BTreeMap::new();
    let mut proofs = Vec::new();
    for c in checkpoints {
        let cp = &c.checkpoint;
        if let Some(other) = by_row.insert(cp.seq, &cp.row_hash)
            && other != cp.row_hash
        {
            problems.push(format!(
                "two checkpoints of row {} contradict each other ({}): the log was rewritten; both prove {} rows",
                cp.seq,
                c.path.display(),
                cp.seq
            ));
        }
        let made = parse_instant(&cp.made_at).ok();
        let at = match (received_at(&c.path), made) {
            (Some(received), made) => {
                if made.is_none_or(|m| m > received + CLOCK_TOLERANCE) {
                    problems.push(format!(
                        "clock ahead: the checkpoint of row {} says it was made at {}, but was received at {}",
                        cp.seq,
                        cp.made_at.chars().take(40).collect::<String>(),
                        format_instant(received)
                    ));
                }
                received.min(made.unwrap_or(received))
            }
            (None, Some(made)) if made > now + CLOCK_TOLERANCE => {
                problems.push(format!(
                    "clock ahead: the checkpoint of row {} says it was made at {}, in the future",
                    cp.seq, cp.made_at
                ));
                now
            }
            (None, Some(made)) => made,
            (None, None) => now,
        };
        proofs.push((cp.seq, at));
    }
    proofs
}
