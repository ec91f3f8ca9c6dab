//! Which months are due for export: every closed month after the last exported
//! one (or from the installation's first month), in order.

use std::path::Path;

use time::OffsetDateTime;

use super::{ExportError, Exported, export};
use crate::ids::{Month, parse_instant};
use crate::store::Db;

pub fn due_months(db: &Db, now: OffsetDateTime) -> Result<Vec<Month>, ExportError> {
    let first = match db.last_report()? {
        Some(last) => last
            .month
            .parse::<Month>()
            .map_err(|_| ExportError::Refused("a stored report month is invalid".into()))?
            .next(),
        None => {
            let created = db.installation()?.created_at;
            Month::of(
                parse_instant(&created)
                    .map_err(|_| ExportError::Refused("the installation date is invalid".into()))?,
            )
        }
    };
    let current = Month::of(now);
    let mut months = Vec::new();
    let mut month = first;
    while month < current && months.len() < 1200 {
        months.push(month);
        month = month.next();
    }
    Ok(months)
}

/// Exports every due month; stops at the first failure (the next run retries).
pub fn export_due(db: &mut Db, now: OffsetDateTime, dir: &Path) -> Result<Vec<Exported>, ExportError> {
    let mut done = Vec::new();
    for month in due_months(db, now)? {
        done.push(export(db, month, now, false, dir)?);
    }
    Ok(done)
}
