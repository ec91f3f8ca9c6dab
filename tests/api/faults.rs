//! Faults: power cuts under load and a disk that fills up. Every license a
//! client got a 200 for must be in the log afterwards, the chain must verify,
//! SQLite must pass its integrity check, and berth must serve again by itself.
//! Those that make real filesystems (a small tmpfs, ext4 on a loop device)
//! need root, as CI runs; elsewhere they say they were skipped.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use time::macros::datetime;

use crate::helpers::*;

/// Token ids of every license a client received.
type Acked = Arc<Mutex<Vec<String>>>;

fn logged_token_ids(db: &Path) -> HashSet<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT token_id FROM license_log").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn integrity(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// Clients that request licenses with fresh token ids until `stop` is set,
/// recording the token id of every 200. Each token is signed just before it
/// is sent (signing thousands up front, most never sent, was most of this
/// test's time in a debug build).
fn load(
    app: &TestApp,
    url: &str,
    clients: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
    acked: Acked,
) -> Vec<actix_web::rt::task::JoinHandle<()>> {
    (0..clients)
        .map(|c| {
            let (url, stop, acked) = (url.to_owned(), stop.clone(), acked.clone());
            let mut payload = app.payload(&[KID_A], json!({ "session": { "user_id": format!("seat-{c}") } }));
            let secret = app.com_secret;
            actix_web::rt::spawn(async move {
                let client = client();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let id = uuid_like();
                    payload["id"] = json!(id);
                    let token = sign_hs256(&secret, &payload);
                    let sent = client
                        .post(format!("{url}/clearkey"))
                        .insert_header(("X-AxDRM-Message", token))
                        .timeout(Duration::from_secs(5))
                        .send_body(clearkey_body(&[KID_A], "temporary"))
                        .await;
                    if let Ok(mut res) = sent
                        && res.status() == 200
                    {
                        // The key arrived: that license is acknowledged.
                        if res.body().await.is_ok_and(|b| b.len() > 20) {
                            acked.lock().unwrap().push(id);
                        }
                    }
                }
            })
        })
        .collect()
}

#[actix_web::test]
async fn power_cuts_under_load_lose_no_acknowledged_license() {
    let mut app = spawn_app().await;
    app.stop().await;
    let acked: Acked = Arc::new(Mutex::new(Vec::new()));
    let mut seed = 0x2545_f491_u64;
    for round in 0..20 {
        let (mut child, url) = spawn_serve_process(app.data_dir(), &[], Stdio::null());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients = load(&app, &url, 16, stop.clone(), acked.clone());
        // A pseudo-random moment between 150 and 650 ms into the load.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        actix_web::rt::time::sleep(Duration::from_millis(150 + seed % 500)).await;
        child.kill().unwrap(); // SIGKILL: no shutdown, no flush, like a power cut.
        child.wait().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for c in clients {
            let _ = c.await;
        }
        let logged = logged_token_ids(&app.db_path());
        let acked_now = acked.lock().unwrap().clone();
        let missing: Vec<_> = acked_now.iter().filter(|id| !logged.contains(*id)).collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} acknowledged licenses missing: {missing:?}",
            missing.len()
        );
        assert_eq!(integrity(&app.db_path()), "ok", "round {round}");
    }
    let total = acked.lock().unwrap().len();
    assert!(total > 200, "the load really ran ({total} licenses acknowledged)");
    // No manual step: berth starts, verifies and serves after the last cut.
    let out = app.berth(&["log", "verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    app.start().await;
    licensed(&app).await;
}

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The real binary with `args`; panics unless it succeeds, and returns what
/// it printed.
fn berth_ok(args: &[&str]) -> String {
    let out = berth(args);
    assert!(
        out.status.success(),
        "berth {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn is_root() -> bool {
    let uid = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&uid.stdout).trim() == "0"
}

/// Mounts `source` at a new directory `at` with `mount`'s `args`, unmounted
/// when the guard drops.
fn mount(args: &[&str], source: &Path, at: &Path) -> Mount {
    std::fs::create_dir(at).unwrap();
    let out = Command::new("mount")
        .args(args)
        .arg(source)
        .arg(at)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mount {args:?} {}: {}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Mount(at.to_owned())
}

/// An ext4 filesystem in a 64 MB file under `base`, mounted through a loop
/// device at `base/<name>`, with ext4's own periodic commit pushed to 60 s so
/// that in a short test only what a program syncs reaches the file. Returns the
/// file and the mount.
fn loop_disk(base: &Path, name: &str) -> (std::path::PathBuf, Mount) {
    let image = base.join(format!("{name}.img"));
    std::fs::File::create(&image).unwrap().set_len(64 << 20).unwrap();
    let made = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "mkfs.ext4: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let mount = mount(&["-o", "loop,commit=60"], &image, &base.join(name));
    (image, mount)
}

/// What a power cut leaves of `image`: a copy of the file, which holds what
/// had reached the device and not what waited in the page cache (`kill -9`
/// keeps that), mounted at `at`, where ext4 replays its journal.
fn after_power_cut(image: &Path, at: &Path) -> Mount {
    let cut = image.with_extension("cut");
    std::fs::copy(image, &cut).unwrap();
    mount(&["-o", "loop"], &cut, at)
}

/// A power cut loses what the page cache held; SIGKILL (the test above) keeps
/// it, so a berth that answered before its commit reached the disk would pass
/// there. Here the data dir is on `loop_disk`; under load berth is frozen
/// (SIGSTOP) and the disk cut (`after_power_cut`). Mounted again, ext4 replays
/// its journal and SQLite its WAL, and every license a client had received by
/// the freeze must be there. With `synchronous=NORMAL` (the WAL synced only at
/// checkpoints) this test fails, with about one license in fifteen missing.
#[ignore = "loop mounts need root: as root, tests/run runs it (cargo test -- --ignored)"]
#[actix_web::test]
async fn a_power_cut_loses_no_license_a_player_received() {
    assert!(
        is_root(),
        "a_power_cut_loses_no_license_a_player_received: loop mounts need root"
    );
    let base = tempfile::tempdir().unwrap();
    let (image, disk_mount) = loop_disk(base.path(), "disk");
    let disk = base.path().join("disk");
    let mut app = spawn_app_with(|c| {
        c.data_dir = disk.join("data");
        c.reports.auto_export = false;
    })
    .await;
    app.stop().await;

    let (mut child, url) = spawn_serve_process(app.data_dir(), &[], Stdio::null());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked: Acked = Arc::new(Mutex::new(Vec::new()));
    let clients = load(&app, &url, 16, stop.clone(), acked.clone());
    actix_web::rt::time::sleep(Duration::from_millis(800)).await;
    let frozen = Command::new("kill")
        .args(["-STOP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(frozen.success());
    // Every license a client holds now was answered before this moment, so
    // its commit had reached the device before the copy starts.
    let received = acked.lock().unwrap().clone();
    let after = base.path().join("after");
    let _after_mount = after_power_cut(&image, &after);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    child.kill().unwrap();
    child.wait().unwrap();
    for c in clients {
        let _ = c.await;
    }
    drop(disk_mount);
    let data = after.join("data");
    let logged = logged_token_ids(&data.join("berth.db"));
    let missing: Vec<_> = received.iter().filter(|id| !logged.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} licenses players received are not on the disk: {missing:?}",
        missing.len(),
        received.len()
    );
    assert!(
        received.len() > 50,
        "the load really ran ({} licenses)",
        received.len()
    );
    assert_eq!(integrity(&data.join("berth.db")), "ok");
    berth_ok(&["log", "verify", "--data-dir", data.to_str().unwrap()]);
}

/// `berth init` writes the master key to a file and the keys it seals to the
/// database: a power cut right after it must leave both, or the installation
/// holds keys nobody can read.
#[ignore = "loop mounts need root: as root, tests/run runs it (cargo test -- --ignored)"]
#[test]
fn a_power_cut_right_after_init_leaves_the_installation_whole() {
    assert!(
        is_root(),
        "a_power_cut_right_after_init_leaves_the_installation_whole: loop mounts need root"
    );
    let base = tempfile::tempdir().unwrap();
    let (image, disk_mount) = loop_disk(base.path(), "disk");
    berth_init(&base.path().join("disk/data"), "cut-1", "bus", "Bus 7");
    let after = base.path().join("after");
    let _after_mount = after_power_cut(&image, &after);
    drop(disk_mount);
    // Minting a token opens the database and unseals its communication key
    // with the master key from the file.
    let data = after.join("data");
    let minted = berth_ok(&[
        "token",
        "mint",
        "--kid",
        KID_A,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(minted.starts_with("eyJ"), "{minted}");
    assert_eq!(integrity(&after.join("data/berth.db")), "ok");
}

/// An export records the report in the database once its file is in place:
/// after a power cut right after it, the report is listed, its file is there
/// under its name, and it verifies.
#[ignore = "loop mounts need root: as root, tests/run runs it (cargo test -- --ignored)"]
#[actix_web::test]
async fn a_power_cut_right_after_an_export_leaves_the_report_and_its_file() {
    assert!(
        is_root(),
        "a_power_cut_right_after_an_export_leaves_the_report_and_its_file: loop mounts need root"
    );
    let base = tempfile::tempdir().unwrap();
    let (image, disk_mount) = loop_disk(base.path(), "disk");
    let app = spawn_app_with(|c| {
        c.data_dir = base.path().join("disk/data");
        c.reports.auto_export = false;
    })
    .await;
    app.installed_at(datetime!(2026-10-01 08:00 UTC));
    app.clock.set(datetime!(2026-10-15 09:00 UTC));
    licensed(&app).await;
    let exported = berth::report::export(
        &mut app.db(),
        "2026-10".parse().unwrap(),
        datetime!(2026-11-03 10:00 UTC),
        false,
        &app.data_dir().join("reports"),
    )
    .unwrap()
    .path;
    let after = base.path().join("after");
    let _after_mount = after_power_cut(&image, &after);
    drop(disk_mount);

    let data = after.join("data");
    let name = exported.file_name().unwrap().to_str().unwrap();
    let listed = berth_ok(&["report", "list", "--json", "--data-dir", data.to_str().unwrap()]);
    assert!(listed.contains(name), "{listed}");
    berth_ok(&[
        "report",
        "verify",
        data.join("reports").join(name).to_str().unwrap(),
    ]);
}

/// A backup written to a stick that is pulled (or loses power) right after
/// "backed up" is whole, and so is a database restored just before a power
/// cut: SQLite does not sync what `VACUUM INTO` writes, nor does a copy.
#[ignore = "loop mounts need root: as root, tests/run runs it (cargo test -- --ignored)"]
#[actix_web::test]
async fn a_power_cut_right_after_a_backup_or_a_restore_loses_neither() {
    assert!(
        is_root(),
        "a_power_cut_right_after_a_backup_or_a_restore_loses_neither: loop mounts need root"
    );
    let app = spawn_app().await;
    for _ in 0..3 {
        licensed(&app).await;
    }
    let base = tempfile::tempdir().unwrap();

    let (stick_image, stick_mount) = loop_disk(base.path(), "stick");
    let backup = base.path().join("stick/berth-backup.db");
    let from = app.data_dir().to_str().unwrap();
    berth_ok(&["backup", "--out", backup.to_str().unwrap(), "--data-dir", from]);
    let stick = base.path().join("stick-after");
    let _stick_after = after_power_cut(&stick_image, &stick);
    drop(stick_mount);
    let backup = stick.join("berth-backup.db");
    assert_eq!(integrity(&backup), "ok");
    assert_eq!(logged_token_ids(&backup).len(), 3);

    // A new box: the master key, kept apart from the backup, then the restore.
    let (disk_image, disk_mount) = loop_disk(base.path(), "disk");
    let data = base.path().join("disk/data");
    std::fs::create_dir(&data).unwrap();
    let key = data.join("master.key");
    std::fs::copy(app.data_dir().join("master.key"), &key).unwrap();
    std::fs::File::open(&key).unwrap().sync_all().unwrap();
    berth::durable::sync_parent(&key).unwrap();
    berth_ok(&[
        "restore",
        backup.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let after = base.path().join("disk-after");
    let _disk_after = after_power_cut(&disk_image, &after);
    drop(disk_mount);
    let data = after.join("data");
    assert_eq!(integrity(&data.join("berth.db")), "ok");
    assert_eq!(logged_token_ids(&data.join("berth.db")).len(), 3);
    berth_ok(&["log", "verify", "--data-dir", data.to_str().unwrap()]);
}

/// Writes `filler` until the filesystem holds not one more byte.
fn fill_to_the_last_byte(filler: &Path) {
    use std::io::Write as _;
    let mut f = std::fs::File::create(filler).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let byte = [0u8; 1];
    while f.write_all(&byte).is_ok() {}
    let _ = f.sync_all();
}

/// Licenses until berth answers 503 `log_unavailable` (with Retry-After and
/// no key), within a minute: the token ids it acknowledged before.
async fn licenses_until_503(app: &TestApp) -> Vec<String> {
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let mut payload = app.payload(&[KID_A], json!({}));
        let id = uuid_like();
        payload["id"] = json!(id);
        let (status, body, headers) = post_license(
            app,
            Some(&app.sign(&payload)),
            &clearkey_body(&[KID_A], "temporary"),
        )
        .await;
        match status {
            200 => acked.push(id),
            503 => {
                assert_error(status, &body, &headers, 503, "log_unavailable");
                assert!(headers.get("retry-after").is_some());
                assert!(body.get("keys").is_none(), "no key without a log row");
                return acked;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    panic!("the disk filled up, but berth never said so");
}

#[ignore = "mounting a tmpfs needs root: as root, tests/run runs it (cargo test -- --ignored)"]
#[actix_web::test]
async fn a_full_disk_gives_503_hands_out_nothing_and_recovers() {
    assert!(
        is_root(),
        "a_full_disk_gives_503: a real small filesystem needs root"
    );
    let base = tempfile::tempdir().unwrap();
    let mount_point = base.path().join("small");
    let _mount = mount(
        &["-t", "tmpfs", "-o", "size=3m"],
        Path::new("tmpfs"),
        &mount_point,
    );
    let app = spawn_app_with(|c| {
        c.data_dir = mount_point.join("data");
        c.reports.auto_export = false;
    })
    .await;

    let filler = mount_point.join("filler");
    fill_to_the_last_byte(&filler);
    let acked = licenses_until_503(&app).await;
    let mut res = client().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let health: serde_json::Value = res.json().await.unwrap();
    assert!(health["database"].as_str().unwrap().contains("full"), "{health}");

    // Space comes back: berth recovers by itself.
    std::fs::remove_file(&filler).unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        let token = app.token(&[KID_A], json!({}));
        if post_license(&app, Some(&token), &clearkey_body(&[KID_A], "temporary"))
            .await
            .0
            == 200
        {
            recovered = true;
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered);
    // The stretch the log could not be written is on record, for the report's coverage.
    let outages = app.db().log_outages_between("1970", "9999").unwrap();
    assert_eq!(outages.len(), 1, "{outages:?}");
    assert_eq!(outages[0].reason, "the disk is full");
    assert!(outages[0].start <= outages[0].end);
    let health: serde_json::Value = client()
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    let logged = logged_token_ids(&app.db_path());
    assert!(acked.iter().all(|id| logged.contains(id)));
    assert_eq!(integrity(&app.db_path()), "ok");
    let out = app.berth(&["log", "verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
