//! Which months are due for export: every closed month after the last exported
//! one (or from the installation's first month), in order; and the server's
//! background task that exports them, uploads reports and prunes the log.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::MasterKey;

use time::OffsetDateTime;

use super::{ExportError, Exported, export};
use crate::ids::Month;
use crate::store::{Db, StoreError};

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
            .map_err(|_| StoreError::Unreadable(format!("a report month {:?} that is not one", last.month)))?
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
    Ok(Month::of(db.installation()?.created_at.at()))
}

/// Exports every due month; stops at the first failure (the next run retries).
pub fn export_due(db: &mut Db, now: OffsetDateTime, dir: &Path) -> Result<Vec<Exported>, ExportError> {
    let mut done = Vec::new();
    for month in due_months(db, now)? {
        done.push(export(db, month, now, false, dir)?);
    }
    Ok(done)
}

/// Exports closed months, uploads pending reports and prunes the log
/// (`log.keep_months`), every `reports.check_interval_secs`, for as long as
/// the server runs.
pub async fn report_task(config: Config, master: Arc<MasterKey>, clock: Arc<dyn Clock>) {
    let mut prune_waits = String::new();
    let uploader = if config.upload.url.is_empty() {
        None
    } else {
        match super::Uploader::new(&config.upload) {
            Ok(u) => Some(u),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "report uploads are off: the upload settings do not work");
                None
            }
        }
    };
    let interval = Duration::from_secs(config.reports.check_interval_secs);
    loop {
        if config.reports.auto_export {
            let (data_dir, master, now) = (config.data_dir.clone(), Arc::clone(&master), clock.now());
            let exported = actix_web::rt::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
                let mut db = Db::open(&data_dir, master)?;
                let done = super::export_due(&mut db, now, &data_dir.join("reports"))?;
                Ok(done
                    .into_iter()
                    .filter(|e| e.new)
                    .map(|e| e.report.period.month)
                    .collect())
            })
            .await;
            match exported {
                Ok(Ok(months)) if !months.is_empty() => tracing::info!(?months, "exported monthly reports"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %format!("{e:#}"), "automatic report export failed; will retry")
                }
                Err(e) => tracing::error!(error = %e, "automatic report export failed; will retry"),
            }
        }
        if let Some(uploader) = &uploader
            && let Err(e) = uploader.upload_pending(&config, clock.now(), false).await
        {
            tracing::error!(error = %format!("{e:#}"), "report upload pass failed");
        }
        if config.log.keep_months > 0 {
            prune_old_months(&config, &master, clock.now(), &mut prune_waits).await;
        }
        // Wake at the turn of the month too, so that a month is exported in the
        // first second after it ends rather than up to an interval later.
        let now = clock.now();
        let to_month_end = (Month::of(now).end() - now).unsigned_abs() + Duration::from_secs(1);
        actix_web::rt::time::sleep(interval.min(to_month_end)).await;
    }
}

/// `log.keep_months`: prunes the months before the kept ones. Why it cannot yet
/// (a report not exported or not uploaded) is logged when it changes, not at
/// every pass.
async fn prune_old_months(
    config: &Config,
    master: &Arc<MasterKey>,
    now: time::OffsetDateTime,
    waits: &mut String,
) {
    let before = (0..config.log.keep_months).fold(Month::of(now), |m, _| m.previous());
    let (data_dir, master) = (config.data_dir.clone(), Arc::clone(master));
    let uploads = !config.upload.url.is_empty();
    let pruned = actix_web::rt::task::spawn_blocking(move || {
        let mut db = Db::open(&data_dir, master)?;
        super::prune(&mut db, before, &data_dir.join("reports"), uploads, now).map_err(anyhow::Error::from)
    })
    .await;
    match pruned {
        Ok(Ok(p)) => {
            waits.clear();
            if let Some(mark) = p.mark.filter(|_| p.removed > 0) {
                tracing::info!(
                    removed = p.removed,
                    first_seq = mark.first_seq,
                    through = %mark.through_month,
                    "pruned the license log: the months through {} are in their signed reports",
                    mark.through_month
                );
            }
        }
        Ok(Err(e)) => {
            let why = format!("{e:#}");
            if *waits != why {
                tracing::info!(reason = %why, "the license log keeps months older than log.keep_months for now");
                *waits = why;
            }
        }
        Err(e) => tracing::error!(error = %e, "pruning the license log failed; will retry"),
    }
}
