//! Reading the license log for people: the admin UI's filtered, paginated view
//! and its CSV export. Pages are found by keyset (the last row's time and seq),
//! never by OFFSET, so page 10,000 costs what page 1 costs.

use rusqlite::ToSql;
use time::Date;

use super::reports::{LOG_COLUMNS, log_row};
use super::{Db, LogRow, StoreError};
use crate::ids::{KeySystem, Kid};

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
}

impl Db {
    /// Up to `limit` rows of the filtered log, newest first, starting at `cursor`.
    pub fn log_page(
        &self,
        filter: &LogFilter,
        cursor: &LogCursor,
        limit: usize,
    ) -> Result<LogPage, StoreError> {
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
             ORDER BY issued_at {order}, seq {order} LIMIT {}",
            limit + 1
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt
            .query_map(rusqlite::params_from_iter(params.iter()), log_row)?
            .collect::<Result<Vec<_>, _>>()?;
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

    /// Calls `f` for every row of the filtered log, oldest first (CSV export).
    pub fn for_each_filtered<E: From<StoreError>>(
        &self,
        filter: &LogFilter,
        mut f: impl FnMut(LogRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let (clause, params) = filter.clause();
        let sql = format!("SELECT {LOG_COLUMNS} FROM license_log WHERE {clause} ORDER BY issued_at, seq");
        let mut stmt = self.conn.prepare(&sql).map_err(StoreError::from)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(StoreError::from)?;
        while let Some(r) = rows.next().map_err(StoreError::from)? {
            f(log_row(r).map_err(StoreError::from)?)?;
        }
        Ok(())
    }

    /// How many rows the filter matches, from the daily aggregates (no log
    /// scan); `None` when it filters by KID, which the aggregates do not keep.
    pub fn count_filtered(&self, filter: &LogFilter) -> Result<Option<i64>, StoreError> {
        if filter.kid.is_some() {
            return Ok(None);
        }
        let from = filter.from.map(|d| d.to_string()).unwrap_or_default();
        let to = filter.to.map_or_else(|| "9999-99".to_owned(), |d| d.to_string());
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
        Ok(Some(n))
    }
}
