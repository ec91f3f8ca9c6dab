//! What the license log holds, as the license rules speak of it: an entry to
//! log, what logging it gave, why it could not be logged, and how the writer
//! that logs them is doing. The store's writer implements the log
//! ([`super::LicenseLog`]) in these terms; nothing here does I/O.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::histogram::Histogram;
use crate::ids::{ComKeyId, KeySystem, Kid, LicenseType, Timestamp};

/// One license to log.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub key_system: KeySystem,
    /// Sorted and without duplicates.
    pub kids: Vec<Kid>,
    pub license_type: LicenseType,
    /// `HMAC-SHA256(pepper, user_id)`, first 16 bytes.
    pub user_hash: Option<[u8; 16]>,
    pub token_id: Option<String>,
    pub com_key_id: ComKeyId,
    /// Set for single-use tokens: the id may be spent once, and is remembered
    /// until this instant (or forever).
    pub single_use: Option<Option<OffsetDateTime>>,
    /// Set for an HLS key fetch: the same token fetching the same key again
    /// before `until` is a repeat (delivered, counted as a repeat, no row).
    pub repeatable: Option<Repeatable>,
}

/// Identifies one token's fetch of one key, for [`LogEntry::repeatable`].
#[derive(Debug, Clone)]
pub struct Repeatable {
    /// The first 16 bytes of SHA-256 over the token's signature and the KID.
    pub digest: [u8; 16],
    pub until: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The new row's sequence number; for a repeat, the log's newest row.
    pub seq: i64,
    pub issued_at: Timestamp,
    /// A repeated fetch: delivered and counted as a repeat, no row written.
    pub repeat: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("the license token was already used")]
    TokenReused,
    #[error("the license log is unavailable: {0}")]
    Unavailable(String),
    /// The writer did not take the entry before its deadline; it never will.
    #[error("the log writer did not answer in time")]
    TimedOut,
}

/// What the writer thread reports about itself, for `/healthz`, the watchdog and
/// metrics.
#[derive(Debug, Default)]
pub struct WriterHealth {
    pub(crate) failure: Mutex<Option<String>>,
    /// Milliseconds since the writer started, at the last loop turn.
    pub(crate) heartbeat_ms: AtomicU64,
    pub(crate) committed: AtomicU64,
    pub(crate) last_commit_us: AtomicU64,
    pub(crate) commits: Histogram,
    pub(crate) queued: AtomicU64,
    pub(crate) stalled_for_test: AtomicBool,
    pub(crate) started: std::sync::OnceLock<Instant>,
    /// How long one loop turn may take when the database is locked.
    pub(crate) busy_timeout: Duration,
}

impl WriterHealth {
    /// `None` when the last write succeeded, else why it failed.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().expect("health lock").clone()
    }

    /// How long since the writer thread last went round its loop.
    pub fn since_heartbeat(&self) -> Duration {
        let started = self.started.get_or_init(Instant::now);
        let now_ms = started.elapsed().as_millis() as u64;
        Duration::from_millis(now_ms.saturating_sub(self.heartbeat_ms.load(Ordering::Relaxed)))
    }

    /// True when the writer has not gone round its loop for longer than a locked
    /// database can explain: it is stuck (a hung disk, a hung fsync).
    pub fn is_stalled(&self) -> bool {
        self.since_heartbeat() > self.busy_timeout + Duration::from_secs(3)
    }

    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    pub fn last_commit(&self) -> Duration {
        Duration::from_micros(self.last_commit_us.load(Ordering::Relaxed))
    }

    /// How long each commit (one batch, one fsync) took.
    pub fn commits(&self) -> &Histogram {
        &self.commits
    }

    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Makes the writer stop taking work, as a hung disk would (for watchdog tests).
    pub fn stall_for_test(&self, stalled: bool) {
        self.stalled_for_test.store(stalled, Ordering::Relaxed);
    }

    pub(crate) fn beat(&self) {
        let started = self.started.get_or_init(Instant::now);
        self.heartbeat_ms
            .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub(crate) fn set_failure(&self, failure: Option<String>) {
        *self.failure.lock().expect("health lock") = failure;
    }
}
