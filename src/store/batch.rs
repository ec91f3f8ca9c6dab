//! One batch of the log writer: its rows, chained and inserted, and what they
//! add to the aggregates beside the log, in one transaction.

use rusqlite::{Connection, Statement, params};
use time::{OffsetDateTime, UtcOffset};

use super::log::{AppendError, Appended, CountedUsers, Head, Job, LogEntry, Outcome, join_kids};
use crate::chain::{Row, row_hash};
use crate::ids::{ComKeyId, KeySystem, Kid, Month, Timestamp, format_instant, hex};

/// The log writer's statements, prepared once for the writer's life. Taken
/// from rusqlite's statement cache instead, each use hashed its SQL text (to
/// find it, and again to put it back) and cleared its bindings: about 1,400
/// instructions, ten times a commit, and at a vessel's rates every license is
/// its own commit (issue 37). Each statement is reset after every use, so none
/// holds a lock between batches.
pub(super) struct Statements<'c> {
    conn: &'c Connection,
    begin: Statement<'c>,
    commit: Statement<'c>,
    spend: Statement<'c>,
    deliver: Statement<'c>,
    insert: Statement<'c>,
    upsert_day: Statement<'c>,
    upsert_kid_day: Statement<'c>,
    used: Statement<'c>,
    add_user: Statement<'c>,
    add_to_month: Statement<'c>,
}

impl<'c> Statements<'c> {
    pub(super) fn prepare(conn: &'c Connection) -> Result<Statements<'c>, rusqlite::Error> {
        Ok(Statements {
            conn,
            begin: conn.prepare("BEGIN IMMEDIATE")?,
            commit: conn.prepare("COMMIT")?,
            spend: conn
                .prepare("INSERT OR IGNORE INTO used_tokens (token_id, usable_until) VALUES (?1, ?2)")?,
            // A pair whose window has passed starts a new one (a new license).
            deliver: conn.prepare(
                "INSERT INTO key_deliveries (digest, usable_until) VALUES (?1, ?2)
                 ON CONFLICT (digest) DO UPDATE SET usable_until = excluded.usable_until
                 WHERE key_deliveries.usable_until < ?3",
            )?,
            insert: conn.prepare(
                "INSERT INTO license_log (seq, issued_at, key_system, kids, license_type,
                     user_hash, token_id, com_key_id, prev_hash, row_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?,
            upsert_day: conn.prepare(
                "INSERT INTO usage_daily (day, key_system, licenses, without_user, repeats)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (day, key_system) DO UPDATE SET
                     licenses = licenses + excluded.licenses,
                     without_user = without_user + excluded.without_user,
                     repeats = repeats + excluded.repeats",
            )?,
            upsert_kid_day: conn.prepare(
                "INSERT INTO usage_kid_daily (kid, day, key_system, licenses) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kid, day, key_system) DO UPDATE SET licenses = licenses + excluded.licenses",
            )?,
            used: conn.prepare("UPDATE com_keys SET last_used_at = ?2 WHERE id = ?1")?,
            add_user: conn.prepare("INSERT OR IGNORE INTO usage_users (month, user_hash) VALUES (?1, ?2)")?,
            add_to_month: conn.prepare(
                "INSERT INTO usage_monthly (month, active_users, clock_anomalies) VALUES (?1, ?2, ?3)
                 ON CONFLICT (month) DO UPDATE SET
                     active_users = active_users + excluded.active_users,
                     clock_anomalies = clock_anomalies + excluded.clock_anomalies",
            )?,
        })
    }
}

/// A batch's transaction, begun and committed with the writer's prepared
/// statements (rusqlite's `Transaction` parses `BEGIN IMMEDIATE` and `COMMIT`
/// for every batch). Dropped before its commit, it rolls back, as rusqlite's
/// does.
pub(super) struct BatchTransaction<'s, 'c> {
    statements: &'s mut Statements<'c>,
}

impl<'s, 'c> BatchTransaction<'s, 'c> {
    pub(super) fn begin(
        statements: &'s mut Statements<'c>,
    ) -> Result<BatchTransaction<'s, 'c>, rusqlite::Error> {
        statements.begin.execute([])?;
        Ok(BatchTransaction { statements })
    }

    pub(super) fn statements(&mut self) -> &mut Statements<'c> {
        self.statements
    }

    pub(super) fn commit(self) -> Result<(), rusqlite::Error> {
        self.statements.commit.execute([])?;
        Ok(())
    }
}

impl Drop for BatchTransaction<'_, '_> {
    fn drop(&mut self) {
        // Committed, or SQLite already rolled back (a full disk can): nothing open.
        let conn = self.statements.conn;
        if !conn.is_autocommit() {
            let rolled_back = conn.prepare_cached("ROLLBACK").and_then(|mut s| s.execute([]));
            if let Err(e) = rolled_back {
                tracing::error!(error = %e, "rolling back a failed license log batch failed");
            }
        }
    }
}

/// When a batch is written, in the forms its rows and aggregates use.
pub(super) struct Stamp {
    pub(super) issued_at: Timestamp,
    /// `issued_at` as the log's rows hold it.
    text: String,
    day: String,
    pub(super) month: String,
}

impl Stamp {
    pub(super) fn new(now: OffsetDateTime) -> Stamp {
        let issued_at = Timestamp::new(now);
        let text = issued_at.to_string();
        // The day and the month (UTC, as the text) are the text's first ten
        // and seven characters: one formatting a commit instead of three.
        let (day, month) = match (text.get(..10), text.get(..7)) {
            (Some(day), Some(month)) if !text.starts_with('-') => (day.to_owned(), month.to_owned()),
            _ => (
                now.to_offset(UtcOffset::UTC).date().to_string(),
                Month::of(now).to_string(),
            ),
        };
        Stamp {
            issued_at,
            text,
            day,
            month,
        }
    }

    /// `YYYY-MM-DDTHH:MM`.
    pub(super) fn minute(&self) -> &str {
        self.text.get(..16).unwrap_or(&self.text)
    }
}

/// What the writer knows beyond the database: how far spent ids were
/// forgotten, and which users are already counted this month.
pub(super) struct Known<'a> {
    pub(super) forgotten_until: Option<Timestamp>,
    pub(super) counted: &'a CountedUsers,
}

// `daily` is indexed by a key system's discriminant: ALL lists them in that order.
const _: () = {
    let mut i = 0;
    while i < KeySystem::ALL.len() {
        assert!(KeySystem::ALL[i] as usize == i);
        i += 1;
    }
};

/// What a batch adds to the aggregates beside the log. Neither count is a
/// hash map: three key systems index an array, and a batch's few KIDs sit in
/// a sorted list (hashing them cost 800 instructions a license, issue 37).
#[derive(Default)]
pub(super) struct Tally {
    /// Per key system, as [`KeySystem::ALL`] orders them: licenses, licenses
    /// without a user, repeats.
    daily: [(i64, i64, i64); KeySystem::ALL.len()],
    /// Per KID and key system, sorted: licenses.
    kid_daily: Vec<((Kid, KeySystem), i64)>,
    /// Users this batch may add to the month's count (not known counted yet).
    pub(super) users: Vec<[u8; 16]>,
    pub(super) com_keys_used: Vec<ComKeyId>,
}

impl Tally {
    fn license(&mut self, entry: &LogEntry, known: &Known<'_>, month: &str) {
        for (i, kid) in entry.kids.iter().enumerate() {
            if !entry.kids[..i].contains(kid) {
                let key = (*kid, entry.key_system);
                match self.kid_daily.binary_search_by_key(&key, |(k, _)| *k) {
                    Ok(at) => self.kid_daily[at].1 += 1,
                    Err(at) => self.kid_daily.insert(at, (key, 1)),
                }
            }
        }
        let slot = &mut self.daily[entry.key_system as usize];
        slot.0 += 1;
        match entry.user_hash {
            None => slot.1 += 1,
            Some(user) if !known.counted.has(month, &user) => self.users.push(user),
            Some(_) => {}
        }
    }

    fn repeat(&mut self, key_system: KeySystem) {
        self.daily[key_system as usize].2 += 1;
    }
}

/// The batch's rows, each chained to the one before: a job its caller gave up
/// on is not written, a spent single-use token is refused, an HLS key fetched
/// again is a repeat (no row). Returns the new head, each job's outcome and
/// what the rows add to the aggregates.
///
/// Longer than the rest on purpose: it is the license path's inner loop, with
/// its statements prepared once for the writer's life, and every step of a row
/// (refuse, repeat, chain, insert, count) is visible in order here.
pub(super) fn append_rows(
    st: &mut Statements<'_>,
    batch: &[Job],
    stamp: &Stamp,
    head: &Head,
    known: &Known<'_>,
) -> Result<(Head, Vec<Outcome>, Tally), rusqlite::Error> {
    let mut head = head.clone();
    let mut results = Vec::with_capacity(batch.len());
    let mut tally = Tally::default();
    let appended = |seq, repeat| {
        Ok(Appended {
            seq,
            issued_at: stamp.issued_at,
            repeat,
        })
    };
    for job in batch {
        if !job.take() {
            results.push(Err(AppendError::TimedOut));
            continue;
        }
        let entry = &job.entry;
        if let (Some(until), Some(id)) = (entry.single_use, &entry.token_id) {
            let maybe_forgotten = until
                .zip(known.forgotten_until)
                .is_some_and(|(until, forgotten)| Timestamp::new(until) <= forgotten);
            if maybe_forgotten || st.spend.execute(params![id, until.map(format_instant)])? == 0 {
                results.push(Err(AppendError::TokenReused));
                continue;
            }
        }
        if let Some(repeatable) = &entry.repeatable {
            let until = format_instant(repeatable.until);
            if st
                .deliver
                .execute(params![hex(&repeatable.digest), until, stamp.text])?
                == 0
            {
                tally.repeat(entry.key_system);
                results.push(appended(head.seq, true));
                continue;
            }
        }
        let kids = join_kids(&entry.kids);
        let user_hash = entry.user_hash.map(|h| hex(&h)).unwrap_or_default();
        let mut com_key_text = uuid::Uuid::encode_buffer();
        let com_key_id = entry.com_key_id.0.hyphenated().encode_lower(&mut com_key_text);
        let row = Row {
            seq: head.seq + 1,
            issued_at: &stamp.text,
            key_system: entry.key_system.as_str(),
            kids: &kids,
            license_type: entry.license_type.as_str(),
            user_hash: &user_hash,
            token_id: entry.token_id.as_deref().unwrap_or(""),
            com_key_id,
        };
        let hash = row_hash(&head.hash, &row);
        st.insert.execute(params![
            row.seq,
            row.issued_at,
            row.key_system,
            row.kids,
            row.license_type,
            row.user_hash,
            row.token_id,
            row.com_key_id,
            head.hash,
            hash,
        ])?;
        let seq = row.seq;
        if !tally.com_keys_used.contains(&entry.com_key_id) {
            tally.com_keys_used.push(entry.com_key_id);
        }
        tally.license(entry, known, &stamp.month);
        results.push(appended(seq, false));
        head = Head {
            seq,
            hash,
            issued_at: Some(stamp.issued_at),
        };
    }
    Ok((head, results, tally))
}

/// The aggregates beside the log, in the rows' transaction: licenses per day
/// and key system, per day and KID, the communication keys' last use, and
/// the month's active users and clock anomalies.
pub(super) fn write_aggregates(
    st: &mut Statements<'_>,
    stamp: &Stamp,
    tally: &Tally,
    clock_went_back: bool,
) -> Result<(), rusqlite::Error> {
    let touched = KeySystem::ALL
        .iter()
        .zip(&tally.daily)
        .filter(|(_, n)| **n != (0, 0, 0));
    for (key_system, (licenses, without_user, repeats)) in touched {
        st.upsert_day.execute(params![
            stamp.day,
            key_system.as_str(),
            licenses,
            without_user,
            repeats
        ])?;
    }
    for ((kid, key_system), licenses) in &tally.kid_daily {
        st.upsert_kid_day.execute(params![
            kid.to_uuid_string(),
            stamp.day,
            key_system.as_str(),
            licenses
        ])?;
    }
    for id in &tally.com_keys_used {
        st.used.execute(params![id.to_string(), stamp.text])?;
    }
    let mut new_users = 0i64;
    for user in &tally.users {
        new_users += st.add_user.execute(params![stamp.month, hex(user)])? as i64;
    }
    let anomalies = i64::from(clock_went_back);
    if new_users > 0 || anomalies > 0 {
        st.add_to_month
            .execute(params![stamp.month, new_users, anomalies])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_stamp_days_and_months_in_utc() {
        for (now, day, month) in [
            (datetime!(2026-12-31 23:59:59.9996 UTC), "2026-12-31", "2026-12"),
            (datetime!(2027-01-01 00:30 +01:00), "2026-12-31", "2026-12"),
            (datetime!(0999-02-03 04:05:06 UTC), "0999-02-03", "0999-02"),
            (datetime!(9999-12-31 23:59:59.999 UTC), "9999-12-31", "9999-12"),
        ] {
            let stamp = Stamp::new(now);
            assert_eq!(stamp.text, Timestamp::new(now).to_string());
            assert_eq!(stamp.day, day);
            assert_eq!(stamp.day, now.to_offset(UtcOffset::UTC).date().to_string());
            assert_eq!(stamp.month, month);
            assert_eq!(stamp.month, Month::of(now).to_string());
            assert_eq!(stamp.minute(), &stamp.text[..16]);
        }
    }
}
