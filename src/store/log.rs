//! The license log writer: one thread owns one connection, takes entries from a
//! bounded queue, and commits them in batches (group commit: one fsync for many
//! licenses). Each caller is answered only after its row's transaction commits.
//!
//! The hash chain and the usage aggregates are written in the same transaction as
//! the rows, so a crash leaves all three consistent.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension as _, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::batch::{BatchTransaction, Known, Stamp, Statements, append_rows, write_aggregates};
use super::{StoreError, connect};
use crate::chain::GENESIS;
use crate::clock::Clock;
use crate::ids::{ComKeyId, Kid, Timestamp, format_instant};
pub use crate::license::entry::{AppendError, Appended, LogEntry, Repeatable, WriterHealth};

/// What the writer answers for one license.
pub type Outcome = Result<Appended, AppendError>;
/// Where one license's outcome goes.
pub type Reply = oneshot::Sender<Outcome>;

pub(super) struct Job {
    pub(super) entry: LogEntry,
    reply: Reply,
    /// Who has the job: the writer takes it, or the caller gives up on it at
    /// its deadline, whichever comes first; never both.
    claim: Arc<AtomicU8>,
    /// How the waiting thread wants its answer handed over, if it has a way.
    courier: Option<Arc<dyn Courier>>,
}

/// [`Job::claim`]: nobody has decided yet.
const WAITING: u8 = 0;
/// The writer took the job: its outcome (commit or failure) is the answer.
const TAKEN: u8 = 1;
/// The caller's deadline passed first: the writer must not write the job.
const GIVEN_UP: u8 = 2;

impl Job {
    /// The writer takes the job, unless its caller has given up on it.
    pub(super) fn take(&self) -> bool {
        self.claim
            .compare_exchange(WAITING, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// Hands the writer's answers to the thread that waits for them, where that
/// thread has a cheaper way to be woken than the writer sending each answer
/// itself (the license listener's workers: `http`'s mailbox). The writer
/// leaves every answer of a batch, then wakes each courier once.
pub trait Courier: Send + Sync {
    /// Keeps an answer for its thread; gives it back when it cannot (its
    /// thread is gone), and the writer then sends it directly.
    fn leave(&self, reply: Reply, outcome: Outcome) -> Result<(), (Reply, Outcome)>;
    /// Has the thread send what was left.
    fn wake(&self);
}

/// Finds the courier of the calling thread, if it has one.
pub type FindCourier = fn() -> Option<Arc<dyn Courier>>;

/// Answers every job of a batch: through its courier, waking each courier
/// once, or directly.
fn answer(batch: &mut Vec<Job>, results: impl Iterator<Item = Outcome>) {
    let mut woken: Vec<Arc<dyn Courier>> = Vec::new();
    for (job, result) in batch.drain(..).zip(results) {
        let unsent = match job.courier {
            Some(courier) => match courier.leave(job.reply, result) {
                Ok(()) => {
                    if !woken
                        .iter()
                        .any(|c| std::ptr::addr_eq(Arc::as_ptr(c), Arc::as_ptr(&courier)))
                    {
                        woken.push(courier);
                    }
                    None
                }
                Err(unsent) => Some(unsent),
            },
            None => Some((job.reply, result)),
        };
        if let Some((reply, result)) = unsent {
            let _ = reply.send(result);
        }
    }
    for courier in woken {
        courier.wake();
    }
}

#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub queue_capacity: usize,
    pub max_batch: usize,
    pub busy_timeout: Duration,
}

impl Default for WriterConfig {
    fn default() -> WriterConfig {
        WriterConfig {
            queue_capacity: 16_384,
            max_batch: 4_096,
            busy_timeout: Duration::from_secs(2),
        }
    }
}

impl crate::license::LicenseLog for LogHandle {
    fn append(&self, entry: LogEntry, timeout: Duration) -> crate::license::Appending<'_> {
        Box::pin(LogHandle::append(self, entry, timeout))
    }
}

/// A cheap, cloneable way to append to the log.
#[derive(Clone)]
pub struct LogHandle {
    tx: SyncSender<Job>,
    health: Arc<WriterHealth>,
    courier: FindCourier,
}

impl LogHandle {
    /// Queues the entry and waits until it is committed (or refused).
    ///
    /// If the writer has not taken the entry within `timeout`, the entry is
    /// withdrawn and `TimedOut` returned: it is then never written, so a license
    /// refused for lack of time is never counted nor its token spent. An entry
    /// the writer took before the deadline is waited for to the end: its
    /// commit decides, both for the log and for the caller.
    pub async fn append(&self, entry: LogEntry, timeout: Duration) -> Result<Appended, AppendError> {
        let (reply, mut answer) = oneshot::channel();
        let claim = Arc::new(AtomicU8::new(WAITING));
        // Counted before it is sent: the writer may take the job (and count it
        // off) before try_send returns.
        self.health.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.tx.try_send(Job {
            entry,
            reply,
            claim: Arc::clone(&claim),
            courier: (self.courier)(),
        }) {
            self.health.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(AppendError::Unavailable(match e {
                TrySendError::Full(_) => "the log queue is full".into(),
                TrySendError::Disconnected(_) => "the log writer has stopped".into(),
            }));
        }
        let stopped = |_| Err(AppendError::Unavailable("the log writer has stopped".into()));
        match tokio::time::timeout(timeout, &mut answer).await {
            Ok(outcome) => outcome.unwrap_or_else(stopped),
            Err(_) => match claim.compare_exchange(WAITING, GIVEN_UP, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => Err(AppendError::TimedOut),
                Err(_) => answer.await.unwrap_or_else(stopped),
            },
        }
    }

    pub fn health(&self) -> &Arc<WriterHealth> {
        &self.health
    }

    /// Answers reach a calling thread through the courier `find` gives it.
    pub fn with_courier(mut self, find: FindCourier) -> LogHandle {
        self.courier = find;
        self
    }
}

/// The writer thread. Dropping every [`LogHandle`] lets it finish the queue and
/// stop; [`LogWriter::join`] waits for that.
pub struct LogWriter {
    thread: JoinHandle<()>,
}

impl LogWriter {
    pub fn start(
        db_path: &Path,
        config: WriterConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<(LogWriter, LogHandle), StoreError> {
        let conn = connect(db_path, config.busy_timeout)?;
        let head = read_head(&conn)?;
        let forgotten_until: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'spent_forgotten_until'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let forgotten_until = forgotten_until
            .map(|text| {
                text.parse::<Timestamp>().map_err(|_| {
                    StoreError::Unreadable(format!(
                        "a meta.spent_forgotten_until {text:?} that is not a date-time"
                    ))
                })
            })
            .transpose()?;
        let (tx, rx) = sync_channel(config.queue_capacity);
        let health = Arc::new(WriterHealth {
            busy_timeout: config.busy_timeout,
            ..WriterHealth::default()
        });
        health.beat();
        let thread_health = Arc::clone(&health);
        let thread = std::thread::Builder::new()
            .name("berth-log-writer".into())
            .spawn(move || {
                Writer {
                    head,
                    clock,
                    health: thread_health,
                    max_batch: config.max_batch,
                    counted: CountedUsers::default(),
                    last_used_minute: HashMap::new(),
                    forgotten_until,
                    unavailable_since: None,
                }
                .run(&conn, rx)
            })
            .map_err(|source| StoreError::Io {
                what: "starting the log writer thread".into(),
                source,
            })?;
        let courier: FindCourier = || None;
        Ok((LogWriter { thread }, LogHandle { tx, health, courier }))
    }

    /// Waits for the writer to drain its queue and stop.
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("the log writer thread panicked");
        }
    }
}

#[derive(Clone)]
pub(super) struct Head {
    pub(super) seq: i64,
    pub(super) hash: String,
    /// `None` for an empty log.
    pub(super) issued_at: Option<Timestamp>,
}

/// A row's `issued_at`, which berth wrote; anything else is a row it could not have.
pub(super) fn instant(seq: i64, text: &str) -> Result<Timestamp, StoreError> {
    text.parse().map_err(|_| StoreError::BadRow {
        seq,
        what: format!("issued_at {text:?} is not a date-time"),
    })
}

fn read_head(conn: &Connection) -> Result<Head, StoreError> {
    let newest: Option<(i64, String, String)> = conn
        .query_row(
            "SELECT seq, row_hash, issued_at FROM license_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(match newest {
        Some((seq, hash, issued_at)) => Head {
            seq,
            hash,
            issued_at: Some(instant(seq, &issued_at)?),
        },
        None => Head {
            seq: 0,
            hash: GENESIS.to_owned(),
            issued_at: None,
        },
    })
}

/// The writer's state besides its connection, which `run` holds with the
/// statements prepared on it.
struct Writer {
    head: Head,
    clock: Arc<dyn Clock>,
    health: Arc<WriterHealth>,
    max_batch: usize,
    counted: CountedUsers,
    /// Per communication key, the minute (`YYYY-MM-DDTHH:MM`) its `last_used_at`
    /// was last written in, by a committed batch. "Last used" is written once a
    /// minute per key, not once per batch: at a vessel's rates every license is
    /// its own batch, and that update was one page of the five or six each
    /// commit writes to the WAL.
    last_used_minute: HashMap<ComKeyId, String>,
    /// The latest `usable_until` among the spent single-use ids forgotten so
    /// far (empty: none). A single-use token usable no later than this may have
    /// been spent and forgotten, so it is refused: only a clock set back can
    /// bring such a token here, and moving the clock must not re-enable it.
    /// Spent single-use ids up to this instant have been forgotten.
    forgotten_until: Option<Timestamp>,
    /// Since when, and why, the log cannot be written (none: it can). The
    /// stretch goes into `log_outages` once a write succeeds again.
    unavailable_since: Option<(String, String)>,
}

/// Passengers (user hashes) the writer knows are already in `usage_users` for
/// a month, so that their next licenses skip that insert (about 4 % of the
/// instructions per license when passengers come back: `tests/bench/run
/// --instructions` with `BENCH_PASSENGERS=1000`). Holds only what
/// committed batches wrote; starts empty, and past its limit the database
/// alone answers, as it always can.
#[derive(Default)]
pub(super) struct CountedUsers {
    month: String,
    /// User hashes are HMAC outputs no one can aim at a bucket without the
    /// pepper: foldhash, not SipHash.
    users: HashSet<[u8; 16], foldhash::fast::RandomState>,
}

/// About 2 MB: a month of a ship's passengers.
const MAX_COUNTED_USERS: usize = 100_000;

impl CountedUsers {
    pub(super) fn has(&self, month: &str, user: &[u8; 16]) -> bool {
        self.month == month && self.users.contains(user)
    }

    /// After a commit: these users are now counted for `month`.
    fn remember(&mut self, month: &str, users: &[[u8; 16]]) {
        if self.month != month {
            self.month = month.to_owned();
            self.users.clear();
        }
        for user in users {
            if self.users.len() >= MAX_COUNTED_USERS {
                break;
            }
            self.users.insert(*user);
        }
    }
}

/// The log's `kids` column: the KIDs as UUIDs, sorted, without duplicates,
/// joined by `;`. Sorting the bytes sorts the text (lowercase hex keeps the
/// order of the nibbles, and the hyphens sit in the same places).
pub fn join_kids(kids: &[Kid]) -> String {
    // The license service hands them over sorted and without duplicates
    // already; only others pay for a sorted copy.
    let copy;
    let sorted = if kids.is_sorted_by(|a, b| a < b) {
        kids
    } else {
        let mut kids = kids.to_vec();
        kids.sort_unstable();
        kids.dedup();
        copy = kids;
        &copy
    };
    let mut out = String::with_capacity(sorted.len() * 37);
    for (i, kid) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(
            uuid::Uuid::from_bytes(kid.0)
                .hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer()),
        );
    }
    out
}

impl Writer {
    /// Never inlined: `tests/bench/run --instructions` counts the writer
    /// thread's instructions by this function's name.
    #[inline(never)]
    fn run(mut self, conn: &Connection, rx: Receiver<Job>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        // Prepared by the first batch, and again after a batch that could not
        // prepare them (that batch is answered 503, like any failed write).
        let mut statements = None;
        loop {
            self.health.beat();
            while self.health.stalled_for_test.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(job) => batch.push(job),
                Err(RecvTimeoutError::Timeout) => {
                    self.idle(conn);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.health
                .queued
                .fetch_sub(batch.len() as u64, Ordering::Relaxed);
            self.commit_batch(conn, &mut statements, &mut batch);
        }
    }

    fn commit_batch<'c>(
        &mut self,
        conn: &'c Connection,
        statements: &mut Option<Statements<'c>>,
        batch: &mut Vec<Job>,
    ) {
        let started = Instant::now();
        let written = match statements {
            Some(statements) => Ok(statements),
            None => Statements::prepare(conn).map(|prepared| statements.insert(prepared)),
        }
        .and_then(|statements| self.write(statements, batch));
        match written {
            Ok((head, results)) => {
                self.head = head;
                let n = results.iter().filter(|r| matches!(r, Ok(a) if !a.repeat)).count() as u64;
                self.health.committed.fetch_add(n, Ordering::Relaxed);
                let took = started.elapsed();
                self.health.commits.record(took);
                self.health
                    .last_commit_us
                    .store(took.as_micros() as u64, Ordering::Relaxed);
                self.health.set_failure(None);
                self.available_again(conn);
                answer(batch, results.into_iter());
            }
            Err(e) => {
                let reason = describe(&e);
                tracing::error!(error = %e, rows = batch.len(), "license log commit failed; answering 503");
                self.became_unavailable(&reason);
                self.health.set_failure(Some(reason.clone()));
                let refused = std::iter::repeat_with(|| Err(AppendError::Unavailable(reason.clone())));
                answer(batch, refused);
            }
        }
    }

    /// Writes one batch in one transaction; returns the new head and each job's
    /// outcome. Nothing is visible to anyone until the commit returns.
    fn write(
        &mut self,
        statements: &mut Statements<'_>,
        batch: &[Job],
    ) -> Result<(Head, Vec<Outcome>), rusqlite::Error> {
        let stamp = Stamp::new(self.clock.now());
        let mut tx = BatchTransaction::begin(statements)?;
        let known = Known {
            forgotten_until: self.forgotten_until,
            counted: &self.counted,
        };
        let (head, results, mut tally) = append_rows(tx.statements(), batch, &stamp, &self.head, &known)?;
        // "Last used" on the communication keys page: at most one update per
        // key and minute.
        tally
            .com_keys_used
            .retain(|id| self.last_used_minute.get(id).map(String::as_str) != Some(stamp.minute()));
        // A clock set back stamps rows earlier than the row before them; they are
        // kept as stamped and counted, never reordered or dropped.
        let clock_went_back =
            self.head.issued_at.is_some_and(|before| stamp.issued_at < before) && head.seq > self.head.seq;
        write_aggregates(tx.statements(), &stamp, &tally, clock_went_back)?;
        tx.commit()?;
        self.counted.remember(&stamp.month, &tally.users);
        for id in tally.com_keys_used {
            self.last_used_minute.insert(id, stamp.minute().to_owned());
        }
        Ok((head, results))
    }

    /// Between requests: forget expired single-use token ids, and while the last
    /// write failed, probe with a real write so health recovers by itself.
    fn idle(&mut self, conn: &Connection) {
        let now = format_instant(self.clock.now());
        let result = (|| -> rusqlite::Result<Option<(Timestamp, String)>> {
            let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
            let forgetting: Option<String> = tx.query_row(
                "SELECT max(usable_until) FROM used_tokens WHERE usable_until IS NOT NULL AND usable_until < ?1",
                [&now],
                |r| r.get(0),
            )?;
            let forgetting = forgetting.and_then(|f| Some((f.parse::<Timestamp>().ok()?, f)));
            let forgetting =
                forgetting.filter(|(at, _)| self.forgotten_until.is_none_or(|known| *at > known));
            if let Some((_, until)) = &forgetting {
                tx.execute(
                    "DELETE FROM used_tokens WHERE usable_until IS NOT NULL AND usable_until <= ?1",
                    [until],
                )?;
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('spent_forgotten_until', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [until],
                )?;
            }
            tx.execute("DELETE FROM key_deliveries WHERE usable_until < ?1", [&now])?;
            if self.health.failure().is_some() {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('writer_probe', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [&now],
                )?;
            }
            tx.commit()?;
            Ok(forgetting)
        })();
        let result = result.map(|forgotten| {
            if let Some((until, _)) = forgotten {
                self.forgotten_until = Some(until);
            }
        });
        match result {
            Ok(()) => {
                if self.health.failure().is_some() {
                    tracing::info!("license log is writable again");
                }
                self.health.set_failure(None);
                self.available_again(conn);
                // Another process may have written while we failed; start from disk.
                if let Ok(head) = read_head(conn) {
                    self.head = head;
                }
            }
            Err(e) => {
                self.became_unavailable(&describe(&e));
                self.health.set_failure(Some(describe(&e)));
            }
        }
    }

    fn became_unavailable(&mut self, reason: &str) {
        if self.unavailable_since.is_none() {
            let since = crate::ids::format_instant(self.clock.now());
            self.unavailable_since = Some((since, reason.to_owned()));
        }
    }

    /// Records the stretch the log could not be written, now that it can.
    fn available_again(&mut self, conn: &Connection) {
        let Some((since, reason)) = self.unavailable_since.take() else {
            return;
        };
        let now = crate::ids::format_instant(self.clock.now());
        if let Err(e) = conn.execute(
            "INSERT INTO log_outages (started_at, ended_at, reason) VALUES (?1, ?2, ?3)",
            [&since, &now, &reason],
        ) {
            tracing::warn!(error = %e, "recording when the log could not be written failed");
        }
    }
}

/// A short reason for a failed write, for `/healthz` and the 503 message.
fn describe(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => "the disk is full".into(),
        Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => {
            "the database is locked by another process".into()
        }
        Some(rusqlite::ErrorCode::ReadOnly) => "the database is read-only".into(),
        Some(rusqlite::ErrorCode::SystemIoFailure) => "the disk reported an I/O error".into(),
        _ => "the database write failed".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn join_kids_sorts_as_text_and_drops_duplicates() {
        let kids: Vec<Kid> = [
            [0xff; 16], [0x0a; 16], [0x09; 16], [0xa0; 16], [0x0a; 16], [0; 16],
        ]
        .into_iter()
        .map(Kid)
        .collect();
        let by_text: BTreeSet<String> = kids.iter().map(Kid::to_uuid_string).collect();
        let joined = by_text.into_iter().collect::<Vec<_>>().join(";");
        assert_eq!(join_kids(&kids), joined);
        // Already sorted and unique, as the license service sends them.
        let mut sorted = kids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(join_kids(&sorted), joined);
        // Equal neighbours are not "sorted": the copy drops them.
        assert_eq!(
            join_kids(&[Kid([0; 16]), Kid([0; 16])]),
            "00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(join_kids(&kids[..1]), "ffffffff-ffff-ffff-ffff-ffffffffffff");
        assert_eq!(join_kids(&[]), "");
    }
}
