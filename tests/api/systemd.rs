//! `berth serve` under a service manager: the test owns the notify socket.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};

use crate::helpers::{berth_init, spawn_serve_process, terminate};
use std::time::{Duration, Instant};

/// Reads notify messages until `want` arrives or `within` passes; returns every line seen.
fn collect(sock: &UnixDatagram, within: Duration, want: Option<&str>) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut lines = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            for line in String::from_utf8_lossy(&buf[..n]).lines() {
                lines.push(line.to_owned());
                if want.is_some_and(|w| line == w) {
                    return lines;
                }
            }
        }
    }
    lines
}

fn count(lines: &[String], what: &str) -> usize {
    lines.iter().filter(|l| *l == what).count()
}

#[test]
fn ready_status_watchdog_and_stopping() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let bin = env!("CARGO_BIN_EXE_berth");
    berth_init(&data, "sd-1", "ship", "MS Notify");
    let sock_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let stall = tmp.path().join("stall");

    let (child, url) = spawn_serve_process(
        &data,
        &[
            ("NOTIFY_SOCKET", sock_path.as_os_str()),
            ("WATCHDOG_USEC", "400000".as_ref()),
            ("BERTH_LOG_BUSY_TIMEOUT_MS", "100".as_ref()),
            ("BERTH_TEST_STALL_WRITER_FILE", stall.as_os_str()),
        ],
        Stdio::null(),
    );
    let lines = collect(&sock, Duration::from_secs(20), Some("READY=1"));
    assert_eq!(lines.last().map(String::as_str), Some("READY=1"), "{lines:?}");
    // By READY the listener already answered its own health check, so it answers ours.
    let addr = url.trim_start_matches("http://").to_owned();
    let health = Command::new(bin)
        .args(["healthcheck", "--addr", &addr])
        .env_remove("BERTH_CONFIG")
        .output()
        .unwrap();
    assert!(
        health.status.success(),
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );

    let lines = collect(&sock, Duration::from_millis(1500), None);
    assert!(
        count(&lines, "WATCHDOG=1") >= 4,
        "pings at half the interval: {lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("STATUS=serving;") && l.contains("licenses in")),
        "{lines:?}"
    );

    // A stuck log writer: the pings stop (after the writer's own grace period) ...
    std::fs::write(&stall, b"").unwrap();
    let _ = collect(&sock, Duration::from_secs(4), None);
    let lines = collect(&sock, Duration::from_millis(1500), None);
    assert_eq!(count(&lines, "WATCHDOG=1"), 0, "{lines:?}");
    // ... and come back when it turns again.
    std::fs::remove_file(&stall).unwrap();
    let lines = collect(&sock, Duration::from_secs(3), None);
    assert!(count(&lines, "WATCHDOG=1") >= 1, "{lines:?}");

    // SIGHUP reloads keys between RELOADING=1 and READY=1.
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    let lines = collect(&sock, Duration::from_secs(5), Some("READY=1"));
    assert!(lines.iter().any(|l| l == "RELOADING=1"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{lines:?}"
    );

    let stopped = std::thread::spawn(move || terminate(child));
    let lines = collect(&sock, Duration::from_secs(10), Some("STOPPING=1"));
    assert_eq!(lines.last().map(String::as_str), Some("STOPPING=1"), "{lines:?}");
    assert!(stopped.join().unwrap().success());
}

#[test]
fn without_a_notify_socket_serve_runs_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    berth_init(&data, "sd-2", "bus", "Bus");
    let (child, url) = spawn_serve_process(&data, &[("WATCHDOG_USEC", "400000".as_ref())], Stdio::null());
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(terminate(child).success());
}

/// Under systemd, stderr is the journal, which stamps each line itself: berth
/// leaves its own timestamp out then, and only then.
#[test]
fn log_lines_leave_the_time_to_the_journal() {
    use std::os::unix::fs::MetadataExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    berth_init(&data, "sd-3", "train", "Train");
    for to_journal in [true, false] {
        let path = tmp.path().join(format!("stderr-{to_journal}"));
        let file = std::fs::File::create(&path).unwrap();
        let meta = file.metadata().unwrap();
        // Another stream's device and inode: stderr is not the journal.
        let stream = if to_journal {
            format!("{}:{}", meta.dev(), meta.ino())
        } else {
            format!("{}:{}", meta.dev(), meta.ino() + 1)
        };
        let (child, _) =
            spawn_serve_process(&data, &[("JOURNAL_STREAM", stream.as_ref())], Stdio::from(file));
        assert!(terminate(child).success());
        let out = std::fs::read_to_string(&path).unwrap();
        let first = out.lines().next().unwrap_or_default();
        assert!(first.contains("INFO"), "berth logged at start: {out}");
        let stamped = first.starts_with(|c: char| c.is_ascii_digit());
        assert_eq!(
            stamped, !to_journal,
            "to the journal: {to_journal}; first line: {first}"
        );
    }
}

/// A migration at start-up (one that fills a table from the whole log takes
/// minutes on years of log) shows in `STATUS=` and asks for more start time
/// than `TimeoutStartSec=`, before `READY=1`.
#[test]
fn a_migration_at_start_asks_for_more_time() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    berth_init(&data, "sd-4", "ship", "MS Upgrade");
    let conn = rusqlite::Connection::open(data.join("berth.db")).unwrap();
    conn.execute_batch("DROP TABLE usage_kid_daily; PRAGMA user_version = 2;")
        .unwrap();
    drop(conn);
    let sock_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let (child, _) = spawn_serve_process(&data, &[("NOTIFY_SOCKET", sock_path.as_os_str())], Stdio::null());
    let lines = collect(&sock, Duration::from_secs(20), Some("READY=1"));
    assert_eq!(lines.last().map(String::as_str), Some("READY=1"), "{lines:?}");
    let status = lines
        .iter()
        .position(|l| {
            l == "STATUS=applying database migrations: 0003_kid_usage, 0004_log_prune, 0005_key_repeats, 0006_sealed_keys, 0007_checkpoint_outbox, 0008_fairplay"
        })
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert_eq!(lines[status + 1], "EXTEND_TIMEOUT_USEC=30000000", "{lines:?}");
    assert!(terminate(child).success());
    let conn = rusqlite::Connection::open(data.join("berth.db")).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, berth::store::SCHEMA_VERSION);
}
