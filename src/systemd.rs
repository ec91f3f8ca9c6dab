//! The service manager: `READY=1`, `STATUS=`, `WATCHDOG=1`, `RELOADING=1`,
//! `STOPPING=1` through the `sd-notify` crate (pure Rust, MIT/Apache-2.0; no
//! libsystemd to link or ship). Without `NOTIFY_SOCKET` every call does nothing,
//! so development and tests run exactly the same code.
//!
//! Architecture Invariant: the one module besides `cli` that reads the
//! environment (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, through `sd-notify`;
//! `JOURNAL_STREAM`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use sd_notify::NotifyState;

use crate::license::LicenseService;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "could not notify the service manager");
    }
}

/// Whether stderr is the journal: systemd sets `JOURNAL_STREAM` to the device
/// and inode of the stream it connected, and journald stamps every line with
/// the time itself, so log lines need not carry their own.
pub fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::MetadataExt as _;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| stream.to_str() == Some(format!("{}:{}", m.dev(), m.ino()).as_str()))
}

pub fn ready() {
    send(&[NotifyState::Ready]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// Runs a slow start-up step (a migration that fills a table from a long
/// license log) with `status` in `systemctl status`, asking systemd every 10 s
/// for 30 s more start time as long as `progress` keeps moving: a box
/// upgraded with years of log is not killed mid-migration by
/// `TimeoutStartSec=` and restarted into the same work for ever, while a step
/// stuck on a hung disk still times out.
pub fn extend_start_while<T>(status: &str, progress: &AtomicU64, work: impl FnOnce() -> T) -> T {
    const MORE: u32 = 30_000_000;
    send(&[NotifyState::Status(status), NotifyState::ExtendTimeoutUsec(MORE)]);
    std::thread::scope(|scope| {
        let (done, finished) = mpsc::channel::<()>();
        scope.spawn(move || {
            let mut seen = progress.load(Ordering::Relaxed);
            while let Err(mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(Duration::from_secs(10)) {
                let now = progress.load(Ordering::Relaxed);
                if now != seen {
                    send(&[NotifyState::ExtendTimeoutUsec(MORE)]);
                    seen = now;
                }
            }
        });
        let out = work();
        drop(done);
        out
    })
}

/// The watchdog interval systemd asked for, if any.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

/// Pings the watchdog at half its interval, but only while the license log
/// writer is turning: a stuck writer (a hung disk) stops the pings so systemd
/// restarts berth. A full disk or a locked database does not stop them (the
/// writer keeps turning and answering 503 with the reason; a restart would not
/// free space), it shows in `STATUS=` and `/healthz` instead.
pub async fn watchdog(service: Arc<LicenseService>, period: Duration) {
    let mut warned = false;
    loop {
        actix_web::rt::time::sleep(period / 2).await;
        let writer = service.writer_health();
        if writer.is_stalled() {
            if !warned {
                tracing::error!(
                    since_secs = writer.since_heartbeat().as_secs(),
                    "the license log writer is stuck; withholding the watchdog ping"
                );
                warned = true;
            }
        } else {
            warned = false;
            send(&[NotifyState::Watchdog]);
        }
    }
}

/// Where systemd put the credentials it passes the service (`LoadCredential=`).
pub fn credentials_directory() -> Option<std::path::PathBuf> {
    std::env::var_os("CREDENTIALS_DIRECTORY").map(std::path::PathBuf::from)
}

/// `STATUS=` for `systemctl status`, every 5 s: this month's licenses and the last one.
pub async fn status_updates(
    data_dir: std::path::PathBuf,
    master: std::sync::Arc<crate::crypto::MasterKey>,
    service: std::sync::Arc<crate::license::LicenseService>,
) {
    use std::sync::{Arc, Mutex};
    let db =
        match actix_web::rt::task::spawn_blocking(move || crate::store::Db::open(&data_dir, master)).await {
            Ok(Ok(db)) => Arc::new(Mutex::new(db)),
            _ => return,
        };
    loop {
        let now = service.clock().now();
        let month = crate::ids::Month::of(now);
        let db = Arc::clone(&db);
        let licenses = actix_web::rt::task::spawn_blocking(move || {
            db.lock().expect("db lock").counts(month).map(|c| c.licenses)
        })
        .await
        .ok()
        .and_then(Result::ok);
        let last = service
            .last_issued_at()
            .map(|t| format!("last {} s ago", (now - t.at()).whole_seconds().max(0)))
            .unwrap_or_else(|| "none yet".to_owned());
        let state = match service.writer_health().failure() {
            Some(why) => format!("NOT LOGGING ({why})"),
            None => "serving".to_owned(),
        };
        let licenses =
            licenses.map_or_else(|| "? licenses".to_owned(), |n| crate::ids::counted(n, "license"));
        status(&format!("{state}; {licenses} in {month}; {last}"));
        actix_web::rt::time::sleep(std::time::Duration::from_secs(5)).await;
    }
}
