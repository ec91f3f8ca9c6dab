//! Numbered, embedded, append-only migrations tracked with `PRAGMA user_version`.

use std::collections::HashMap;

use rusqlite::{Connection, Transaction};

use super::StoreError;

/// A step of a migration that SQL alone does badly, run after its SQL in the
/// same transaction.
type Backfill = fn(&Transaction) -> rusqlite::Result<()>;

/// Every migration, in order; the position + 1 is its version.
const MIGRATIONS: &[(&str, &str, Option<Backfill>)] = &[
    ("0001_init", include_str!("../../migrations/0001_init.sql"), None),
    (
        "0002_reports",
        include_str!("../../migrations/0002_reports.sql"),
        None,
    ),
    (
        "0003_kid_usage",
        include_str!("../../migrations/0003_kid_usage.sql"),
        Some(count_licenses_per_kid),
    ),
    (
        "0004_log_prune",
        include_str!("../../migrations/0004_log_prune.sql"),
        None,
    ),
    (
        "0005_key_repeats",
        include_str!("../../migrations/0005_key_repeats.sql"),
        Some(add_repeats_column),
    ),
    (
        "0006_sealed_keys",
        include_str!("../../migrations/0006_sealed_keys.sql"),
        Some(add_period_column),
    ),
    (
        "0007_checkpoint_outbox",
        include_str!("../../migrations/0007_checkpoint_outbox.sql"),
        None,
    ),
    (
        "0008_fairplay",
        include_str!("../../migrations/0008_fairplay.sql"),
        None,
    ),
];

pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// Applies pending migrations; returns the names of those applied.
/// A database newer than this binary is refused untouched.
pub fn migrate(conn: &mut Connection) -> Result<Vec<&'static str>, StoreError> {
    migrate_to(conn, LATEST)
}

/// The migrations whose Rust step reads the whole log.
const READ_THE_LOG: &[&str] = &["0003_kid_usage"];

/// Whether the named migration reads the whole log, which on years of
/// licenses takes a while.
pub fn reads_the_log(name: &str) -> bool {
    READ_THE_LOG.contains(&name)
}

/// The migrations a database at schema `version` has yet to apply, by name.
pub fn pending(version: i64) -> Vec<&'static str> {
    MIGRATIONS
        .iter()
        .skip(version.max(0) as usize)
        .map(|(name, ..)| *name)
        .collect()
}

fn migrate_to(conn: &mut Connection, target: i64) -> Result<Vec<&'static str>, StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > LATEST {
        return Err(StoreError::TooNew {
            database: current,
            binary: LATEST,
        });
    }
    let mut applied = Vec::new();
    let pending = MIGRATIONS.iter().enumerate().take(target as usize);
    for (index, (name, sql, backfill)) in pending.skip(current as usize) {
        let tx = conn.transaction()?;
        let applying = |source| StoreError::Migration { name, source };
        tx.execute_batch(sql).map_err(applying)?;
        if let Some(backfill) = backfill {
            backfill(&tx).map_err(applying)?;
        }
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
        applied.push(*name);
    }
    Ok(applied)
}

/// `usage_daily.repeats`, where it is missing.
fn add_repeats_column(tx: &Transaction) -> rusqlite::Result<()> {
    let has: bool = tx.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('usage_daily') WHERE name = 'repeats'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        tx.execute_batch("ALTER TABLE usage_daily ADD COLUMN repeats INTEGER NOT NULL DEFAULT 0")?;
    }
    Ok(())
}

fn add_period_column(tx: &Transaction) -> rusqlite::Result<()> {
    let has: bool = tx.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('content_keys') WHERE name = 'period'",
        [],
        |r| r.get(0),
    )?;
    if !has {
        tx.execute_batch("ALTER TABLE content_keys ADD COLUMN period TEXT")?;
    }
    Ok(())
}

/// Fills `usage_kid_daily` from the rows logged before it existed. One pass
/// over the log, counting in memory by (day, key system, KID list): a few
/// thousand groups however long the log, and 10 M rows in seconds, where SQL's
/// GROUP BY sorts every row (31-42 s at 10 M rows, measured).
fn count_licenses_per_kid(tx: &Transaction) -> rusqlite::Result<()> {
    let mut groups: HashMap<String, i64> = HashMap::new();
    let mut key = String::new();
    let mut stmt = tx.prepare("SELECT issued_at, key_system, kids FROM license_log")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let (at, key_system, kids) = (
            row.get_ref(0)?.as_str()?,
            row.get_ref(1)?.as_str()?,
            row.get_ref(2)?.as_str()?,
        );
        key.clear();
        key.push_str(at.get(..10).unwrap_or(at));
        key.push('\n');
        key.push_str(key_system);
        key.push('\n');
        key.push_str(kids);
        match groups.get_mut(key.as_str()) {
            Some(n) => *n += 1,
            None => {
                groups.insert(key.clone(), 1);
            }
        }
    }
    let mut per_kid: HashMap<(&str, &str, &str), i64> = HashMap::new();
    for (key, n) in &groups {
        let mut parts = key.splitn(3, '\n');
        let (Some(day), Some(key_system), Some(kids)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        // `kids` is sorted and without duplicates (`join_kids`).
        for kid in kids.split(';').filter(|k| !k.is_empty()) {
            *per_kid.entry((kid, day, key_system)).or_default() += n;
        }
    }
    let mut insert =
        tx.prepare("INSERT INTO usage_kid_daily (kid, day, key_system, licenses) VALUES (?1, ?2, ?3, ?4)")?;
    for ((kid, day, key_system), n) in per_kid {
        insert.execute(rusqlite::params![kid, day, key_system, n])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "9eb4050d-e44b-4802-932e-27d75083e266";
    const B: &str = "6a9c2e0b-6d43-4e2c-9a1f-0c3b7d5e8f21";

    #[test]
    fn the_per_kid_aggregates_are_backfilled_from_the_log() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate_to(&mut conn, 2).unwrap(), ["0001_init", "0002_reports"]);
        let rows = [
            ("2026-10-30T12:00:00.000000Z", "clearkey", A.to_owned()),
            ("2026-10-30T13:00:00.000000Z", "clearkey", format!("{B};{A}")),
            ("2026-10-30T14:00:00.000000Z", "hls", A.to_owned()),
            ("2026-11-02T08:00:00.000000Z", "clearkey", format!("{B};{A}")),
            ("2026-11-02T09:00:00.000000Z", "clearkey", B.to_owned()),
        ];
        for (seq, (at, ks, kids)) in rows.iter().enumerate() {
            conn.execute(
                "INSERT INTO license_log VALUES (?1, ?2, ?3, ?4, 'temporary', '', '', '', '', '')",
                rusqlite::params![seq as i64 + 1, at, ks, kids],
            )
            .unwrap();
        }
        assert_eq!(migrate_to(&mut conn, 3).unwrap(), ["0003_kid_usage"]);
        let mut stmt = conn
            .prepare(
                "SELECT kid, day, key_system, licenses FROM usage_kid_daily ORDER BY kid, day, key_system",
            )
            .unwrap();
        let got: Vec<(String, String, String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let row = |kid: &str, day: &str, ks: &str, n| (kid.to_owned(), day.to_owned(), ks.to_owned(), n);
        assert_eq!(
            got,
            [
                row(B, "2026-10-30", "clearkey", 1),
                row(B, "2026-11-02", "clearkey", 2),
                row(A, "2026-10-30", "clearkey", 2),
                row(A, "2026-10-30", "hls", 1),
                row(A, "2026-11-02", "clearkey", 1),
            ]
        );
        drop(stmt);
        assert!(migrate_to(&mut conn, 3).unwrap().is_empty(), "applied once");
        assert_eq!(
            migrate(&mut conn).unwrap(),
            [
                "0004_log_prune",
                "0005_key_repeats",
                "0006_sealed_keys",
                "0007_checkpoint_outbox",
                "0008_fairplay"
            ]
        );
    }
}
