//! The only place that reads the wall clock. Everything that needs "now" takes a
//! [`Clock`], so tests run at a fixed instant.

use std::sync::Mutex;

use time::OffsetDateTime;

/// No clock berth runs under can truly read earlier than this: berth was
/// written in 2026. A clock that does was reset (a box without a real-time-clock
/// battery boots in 1970), and `init` refuses it, because the installation's
/// month is where its monthly reports begin.
pub const EARLIEST_PLAUSIBLE: OffsetDateTime = time::macros::datetime!(2026-01-01 00:00 UTC);

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that says what it is told to (for tests and what-if runs).
#[derive(Debug)]
pub struct FixedClock(Mutex<OffsetDateTime>);

impl FixedClock {
    pub fn new(at: OffsetDateTime) -> FixedClock {
        FixedClock(Mutex::new(at))
    }

    pub fn set(&self, at: OffsetDateTime) {
        *self.0.lock().expect("clock lock") = at;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().expect("clock lock")
    }
}
