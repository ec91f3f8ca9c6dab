//! The health of a running berth, for `/healthz`, the watchdog, the crew
//! dashboard and the ground receiver's disk check: the license path's state
//! (its log writer, its keys, the clock against the log) and free disk space.
//! No HTTP here: `http` serves it.

use crate::ids::format_instant;
use crate::license::LicenseService;

/// The health of the license path, shared by `/healthz`, the watchdog and the
/// admin dashboard: `/healthz`'s JSON body.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    /// "ok" or "unavailable".
    pub status: &'static str,
    pub problems: Vec<String>,
    /// "ok", or why the last write failed.
    pub database: String,
    pub log_writer: WriterState,
    pub keys: KeyCounts,
    pub clock: ClockState,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct WriterState {
    pub responding: bool,
    pub queued: u64,
    pub committed: u64,
    pub last_commit_ms: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyCounts {
    pub content_keys: usize,
    pub communication_keys: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ClockState {
    pub now: String,
    pub newest_license: Option<String>,
    /// The wall clock reads earlier than the newest license (by over a minute).
    pub behind_log: bool,
}

impl Health {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

pub fn report(service: &LicenseService) -> Health {
    let writer = service.writer_health();
    let failure = writer.failure();
    let stalled = writer.is_stalled();
    let now = service.clock().now();
    let newest = service.last_issued_at();
    let behind_log = newest.is_some_and(|n| n.at() > now + time::Duration::minutes(1));
    let mut problems = Vec::new();
    if let Some(why) = &failure {
        problems.push(format!("database: {why}"));
    }
    if stalled {
        problems.push("the log writer is not responding".to_owned());
    }
    Health {
        status: if problems.is_empty() { "ok" } else { "unavailable" },
        problems,
        database: failure.unwrap_or_else(|| "ok".to_owned()),
        log_writer: WriterState {
            responding: !stalled,
            queued: writer.queued(),
            committed: writer.committed(),
            last_commit_ms: writer.last_commit().as_secs_f64() * 1000.0,
        },
        keys: KeyCounts {
            content_keys: service.keys().content_key_count(),
            communication_keys: service.keys().com_key_count(),
        },
        clock: ClockState {
            now: format_instant(now),
            newest_license: newest.map(|at| at.to_string()),
            behind_log,
        },
    }
}

/// Free space on the data dir's filesystem, for the dashboard.
pub fn disk_free_bytes(dir: &std::path::Path) -> Option<u64> {
    rustix::fs::statvfs(dir)
        .ok()
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}
