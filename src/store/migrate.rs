//! Numbered, embedded, append-only migrations tracked with `PRAGMA user_version`.

use rusqlite::Connection;

use super::StoreError;

/// Every migration, in order; the position + 1 is its version.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("../../migrations/0001_init.sql")),
    ("0002_reports", include_str!("../../migrations/0002_reports.sql")),
];

pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// Applies pending migrations; returns the names of those applied.
/// A database newer than this binary is refused untouched.
pub fn migrate(conn: &mut Connection) -> Result<Vec<&'static str>, StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > LATEST {
        return Err(StoreError::TooNew {
            database: current,
            binary: LATEST,
        });
    }
    let mut applied = Vec::new();
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .map_err(|e| StoreError::Invalid(format!("applying migration {name}: {e}")))?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
        applied.push(*name);
    }
    Ok(applied)
}
