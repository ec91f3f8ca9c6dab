//! Reading the license log for people: the admin UI's filtered, paginated view
//! and its CSV export. Pages are found by keyset (the last row's time and seq),
//! never by OFFSET, so page 10,000 costs what page 1 costs.

use rusqlite::ToSql;
use time::Date;
use time::macros::format_description;

use super::reports::{LOG_COLUMNS, log_row};
use super::{Db, LogRow, StoreError};
use crate::ids::{KeySystem, Kid, Month};

/// How much one KID has been licensed, from the per-KID daily aggregates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KidUsage {
    /// Licenses in the month asked for.
    pub licenses: i64,
    /// The last UTC day it was licensed on, if ever.
    pub last_day: Option<String>,
}

/// Which rows to show; every field narrows the set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// First day shown (UTC, inclusive).
    pub from: Option<Date>,
    /// Last day shown (UTC, inclusive).
    pub to: Option<Date>,
    pub kid: Option<Kid>,
    pub key_system: Option<KeySystem>,
}

/// Where a page starts: a row's `(issued_at, seq)`, rows strictly older
/// (`Older`) or strictly newer (`Newer`) than it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogCursor {
    Newest,
    Older(String, i64),
    Newer(String, i64),
}

/// One page, newest first, and whether there are rows beyond each end.
#[derive(Debug, Clone, Default)]
pub struct LogPage {
    pub rows: Vec<LogRow>,
    pub has_newer: bool,
    pub has_older: bool,
}

impl LogFilter {
    /// The WHERE clause (with only the conditions that are set, so that SQLite
    /// can use the `issued_at` index for the day range) and its parameters.
    fn clause(&self) -> (String, Vec<Box<dyn ToSql>>) {
        let mut clause = String::from("1");
        let mut params: Vec<Box<dyn ToSql>> = Vec::new();
        if let Some(from) = self.from {
            clause.push_str(" AND issued_at >= ?");
            params.push(Box::new(from.to_string()));
        }
        if let Some(to) = self.to {
            // Every stamp of day `to` sorts before the next day's date.
            clause.push_str(" AND issued_at < ?");
            params.push(Box::new(
                to.next_day()
                    .map_or_else(|| "9999-99".to_owned(), |d| d.to_string()),
            ));
        }
        if let Some(kid) = &self.kid {
            // `kids` is lowercase UUIDs joined by ';': a UUID matches only itself.
            clause.push_str(" AND instr(kids, ?) > 0");
            params.push(Box::new(kid.to_uuid_string()));
        }
        if let Some(ks) = self.key_system {
            clause.push_str(" AND key_system = ?");
            params.push(Box::new(ks.as_str()));
        }
        (clause, params)
    }

    /// The first and last day (`YYYY-MM-DD`, inclusive) the filter lets through.
    fn day_bounds(&self) -> (String, String) {
        let from = self.from.map(|d| d.to_string()).unwrap_or_default();
        let to = self.to.map_or_else(|| "9999-99".to_owned(), |d| d.to_string());
        (from, to)
    }

    /// The same filter narrowed to one UTC day.
    fn on(&self, day: Date) -> LogFilter {
        LogFilter {
            from: Some(day),
            to: Some(day),
            ..self.clone()
        }
    }
}

impl LogCursor {
    /// Whether the page may hold rows stamped on `day` (`YYYY-MM-DD`): not a
    /// day wholly newer than an `Older` cursor or wholly older than a `Newer` one.
    fn may_reach(&self, day: &str) -> bool {
        match self {
            LogCursor::Newest => true,
            LogCursor::Older(at, _) => day <= at.as_str(),
            LogCursor::Newer(at, _) => day >= at.get(..10).unwrap_or(at),
        }
    }
}

impl Db {
    /// Up to `limit` rows of the filtered log, newest first, starting at `cursor`.
    pub fn log_page(
        &self,
        filter: &LogFilter,
        cursor: &LogCursor,
        limit: usize,
    ) -> Result<LogPage, StoreError> {
        let mut rows = match &filter.kid {
            None => self.page_rows(filter, cursor, limit + 1)?,
            Some(kid) => {
                // Only the days the KID was licensed on, one at a time from the
                // cursor on, each read no further than its last row of the KID
                // (the day's count): a rare KID costs its own days, not a scan
                // of the log.
                let mut days = self.kid_days(filter, kid)?;
                if !matches!(cursor, LogCursor::Newer(..)) {
                    days.reverse();
                }
                let mut rows = Vec::new();
                for (day, licensed) in days {
                    if rows.len() > limit {
                        break;
                    }
                    if cursor.may_reach(&day.to_string()) {
                        let wanted = (limit + 1 - rows.len()).min(licensed.max(0) as usize);
                        rows.extend(self.page_rows(&filter.on(day), cursor, wanted)?);
                    }
                }
                rows
            }
        };
        let beyond = rows.len() > limit;
        rows.truncate(limit);
        let mut page = LogPage::default();
        match cursor {
            LogCursor::Newest => page.has_older = beyond,
            LogCursor::Older(..) => {
                page.has_older = beyond;
                page.has_newer = true;
            }
            LogCursor::Newer(..) => {
                rows.reverse();
                page.has_newer = beyond;
                page.has_older = true;
            }
        }
        page.rows = rows;
        Ok(page)
    }

    /// Up to `limit` rows of the filtered log beyond `cursor`, in the order the
    /// cursor walks (newest first, or oldest first for `Newer`).
    fn page_rows(
        &self,
        filter: &LogFilter,
        cursor: &LogCursor,
        limit: usize,
    ) -> Result<Vec<LogRow>, StoreError> {
        // SQLite bounds the index scan by one condition per side: where the
        // cursor is inside the filter's days, leave out the day bound on the
        // cursor's side, or the scan starts at the end of the day range and
        // reads every row between it and the cursor.
        let mut filter = filter.clone();
        match cursor {
            LogCursor::Newest => {}
            LogCursor::Older(at, _) => {
                if filter.day_bounds().1.as_str() >= at.get(..10).unwrap_or(at) {
                    filter.to = None;
                }
            }
            LogCursor::Newer(at, _) => {
                if filter.day_bounds().0 <= *at {
                    filter.from = None;
                }
            }
        }
        let (mut clause, mut params) = filter.clause();
        let order = match cursor {
            LogCursor::Newest => "DESC",
            LogCursor::Older(at, seq) => {
                clause.push_str(" AND (issued_at, seq) < (?, ?)");
                params.push(Box::new(at.clone()));
                params.push(Box::new(*seq));
                "DESC"
            }
            LogCursor::Newer(at, seq) => {
                clause.push_str(" AND (issued_at, seq) > (?, ?)");
                params.push(Box::new(at.clone()));
                params.push(Box::new(*seq));
                "ASC"
            }
        };
        let sql = format!(
            "SELECT {LOG_COLUMNS} FROM license_log WHERE {clause}
             ORDER BY issued_at {order}, seq {order} LIMIT ?"
        );
        params.push(Box::new(limit as i64));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        let mut page = Vec::new();
        while let Some(r) = rows.next()? {
            page.push(log_row(r)?);
        }
        Ok(page)
    }

    /// The UTC days, oldest first, on which `kid` was licensed within the
    /// filter's days and key system, each with how many licenses it had (from
    /// the per-KID daily aggregates).
    fn kid_days(&self, filter: &LogFilter, kid: &Kid) -> Result<Vec<(Date, i64)>, StoreError> {
        let (from, to) = filter.day_bounds();
        let mut stmt = self.conn.prepare_cached(
            "SELECT day, sum(licenses) FROM usage_kid_daily
             WHERE kid = ?1 AND day >= ?2 AND day <= ?3 AND (?4 IS NULL OR key_system = ?4)
             GROUP BY day ORDER BY day",
        )?;
        let key_system = filter.key_system.map(|ks| ks.as_str());
        let days = stmt
            .query_map(
                rusqlite::params![kid.to_uuid_string(), from, to, key_system],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
            )?
            .collect::<Result<Vec<_>, _>>()?;
        days.iter()
            .map(|(day, licensed)| {
                Date::parse(day, format_description!("[year]-[month]-[day]"))
                    .map(|d| (d, *licensed))
                    .map_err(|_| {
                        StoreError::Unreadable(format!("a usage_kid_daily day that is not a date: {day:?}"))
                    })
            })
            .collect()
    }

    /// Calls `f` for every row of the filtered log, oldest first (CSV export).
    pub fn for_each_filtered<E: From<StoreError>>(
        &self,
        filter: &LogFilter,
        mut f: impl FnMut(LogRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some(kid) = &filter.kid else {
            return self.each_row(filter, &mut f);
        };
        // One snapshot for the days and their rows; only the KID's days are read.
        let _snapshot = self.conn.unchecked_transaction().map_err(StoreError::from)?;
        for (day, _) in self.kid_days(filter, kid)? {
            self.each_row(&filter.on(day), &mut f)?;
        }
        Ok(())
    }

    fn each_row<E: From<StoreError>>(
        &self,
        filter: &LogFilter,
        f: &mut impl FnMut(LogRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let (clause, params) = filter.clause();
        let sql = format!("SELECT {LOG_COLUMNS} FROM license_log WHERE {clause} ORDER BY issued_at, seq");
        let mut stmt = self.conn.prepare(&sql).map_err(StoreError::from)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(StoreError::from)?;
        while let Some(r) = rows.next().map_err(StoreError::from)? {
            f(log_row(r)?)?;
        }
        Ok(())
    }

    /// Licenses of `kid` in `month` and the last day it was licensed on: two
    /// seeks into the per-KID aggregates, whatever the log's length.
    pub fn kid_usage(&self, kid: &Kid, month: Month) -> Result<KidUsage, StoreError> {
        let (from, until) = (month.start().date(), month.end().date());
        Ok(self
            .conn
            .prepare_cached(
                "SELECT (SELECT coalesce(sum(licenses), 0) FROM usage_kid_daily
                         WHERE kid = ?1 AND day >= ?2 AND day < ?3),
                        (SELECT max(day) FROM usage_kid_daily WHERE kid = ?1)",
            )?
            .query_row(
                rusqlite::params![kid.to_uuid_string(), from.to_string(), until.to_string()],
                |r| {
                    Ok(KidUsage {
                        licenses: r.get(0)?,
                        last_day: r.get(1)?,
                    })
                },
            )?)
    }

    /// How many rows the filter matches, from the daily aggregates (no log scan).
    pub fn count_filtered(&self, filter: &LogFilter) -> Result<i64, StoreError> {
        if let Some(kid) = &filter.kid {
            // The same days the page walks, so the count and the rows agree.
            return Ok(self.kid_days(filter, kid)?.iter().map(|(_, n)| n).sum());
        }
        let (from, to) = filter.day_bounds();
        let n: i64 = match filter.key_system {
            Some(ks) => self.conn.prepare_cached(
                "SELECT coalesce(sum(licenses), 0) FROM usage_daily WHERE day >= ?1 AND day <= ?2 AND key_system = ?3",
            )?
            .query_row(rusqlite::params![from, to, ks.as_str()], |r| r.get(0))?,
            None => self
                .conn
                .prepare_cached("SELECT coalesce(sum(licenses), 0) FROM usage_daily WHERE day >= ?1 AND day <= ?2")?
                .query_row(rusqlite::params![from, to], |r| r.get(0))?,
        };
        Ok(n)
    }
}
