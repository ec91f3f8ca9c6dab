//! Which months are due for export: every closed month after the last exported
//! one (or from the installation's first month), in order.

use std::path::Path;

use time::OffsetDateTime;

use super::{ExportError, Exported, export};
use crate::ids::{Month, parse_instant};
use crate::store::Db;

pub fn due_months(db: &Db, now: OffsetDateTime) -> Result<Vec<Month>, ExportError> {
    Ok(ended_from(next_month(db)?, now))
}

/// The months from `first` that have ended by `now`, in order.
pub fn ended_from(first: Month, now: OffsetDateTime) -> Vec<Month> {
    let current = Month::of(now);
    let mut months = Vec::new();
    let mut month = first;
    while month < current && months.len() < 1200 {
        months.push(month);
        month = month.next();
    }
    months
}

/// The month the next report is for, ended or not: the one after the last
/// exported, or the first.
pub fn next_month(db: &Db) -> Result<Month, ExportError> {
    match db.last_report()? {
        Some(last) => Ok(last
            .month
            .parse::<Month>()
            .map_err(|_| ExportError::Refused("a stored report month is invalid".into()))?
            .next()),
        None => first_month(db),
    }
}

/// The month of the first report: the installation's first month. Licenses
/// stamped before it (a clock set right only after `init`) count in the first
/// report, as clock anomalies, like every row stamped outside its report's
/// month; starting earlier would let one row stamped 1970 by a reset clock
/// oblige fifty years of empty reports.
pub fn first_month(db: &Db) -> Result<Month, ExportError> {
    let created = parse_instant(&db.installation()?.created_at)
        .map_err(|_| ExportError::Refused("the installation date is invalid".into()))?;
    Ok(Month::of(created))
}

/// Exports every due month; stops at the first failure (the next run retries).
pub fn export_due(db: &mut Db, now: OffsetDateTime, dir: &Path) -> Result<Vec<Exported>, ExportError> {
    let mut done = Vec::new();
    for month in due_months(db, now)? {
        done.push(export(db, month, now, false, dir)?);
    }
    Ok(done)
}
