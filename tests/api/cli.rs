//! The `berth` binary as crew and ground staff use it.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use serde_json::Value;

use crate::helpers::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn dir_snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn init_prints_once_and_refuses_to_run_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let data = data.to_str().unwrap();
    let args = [
        "init",
        "--data-dir",
        data,
        "--installation-id",
        "ship-7",
        "--vessel-type",
        "ship",
        "--vessel-name",
        "MS Example",
        "--json",
    ];
    let out = berth(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "installation_id",
        "com_key_id",
        "com_key_secret",
        "admin_user",
        "admin_password",
        "signing_key_sha256",
    ] {
        assert!(v[field].as_str().is_some_and(|s| !s.is_empty()), "{field} in {v}");
    }
    assert_eq!(v["signing_key_sha256"].as_str().unwrap().len(), 64);
    let before = dir_snapshot(std::path::Path::new(data));
    let out = berth(&args);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(
        before,
        dir_snapshot(std::path::Path::new(data)),
        "nothing changed"
    );
}

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    assert_eq!(berth(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        berth(&["init", "--vessel-type", "spaceship"]).status.code(),
        Some(2)
    );
    assert_eq!(berth(&["stats", "--month", "2026-13"]).status.code(), Some(2));
    for month in ["9999-12", "0000-01"] {
        let out = berth(&["stats", "--month", month]);
        assert_eq!(out.status.code(), Some(2), "{month}: {}", stderr(&out));
        assert!(stderr(&out).contains("YYYY-MM"), "{}", stderr(&out));
        let out = berth(&["report", "export", "--month", month]);
        assert_eq!(out.status.code(), Some(2), "{month}: {}", stderr(&out));
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = berth(&["stats", "--data-dir", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("berth init"), "{}", stderr(&out));
    let out = berth(&["--config", "/nonexistent/named.toml", "stats"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("/nonexistent/named.toml"));
}

#[test]
fn bad_config_names_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("berth.toml");
    std::fs::write(
        &path,
        "[license]\nlisten = \"127.0.0.1:1\"\nclok_tolerance_secs = 3\n",
    )
    .unwrap();
    let out = berth(&["--config", path.to_str().unwrap(), "config", "show"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("clok_tolerance_secs"), "{}", stderr(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["config", "show"])
        .env_remove("BERTH_CONFIG")
        .env("BERTH_LICENSE_LISTEN", "127.0.0.1:9999")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1:9999"));
    let example = berth(&["config", "example"]);
    assert!(String::from_utf8_lossy(&example.stdout).contains("[license]"));
}

/// A file whose keys are all there already is a no-op; one key conflicting
/// with a stored one refuses the whole file; no listing prints a key.
#[actix_web::test]
async fn key_import_is_all_or_nothing_and_never_prints_keys() {
    let app = spawn_app().await;
    let dir = app.dir.path();
    let same = dir.join("same.json");
    std::fs::write(
        &same,
        format!(r#"{{"keys":[{{"kid":"{KID_A}","key":"{}"}}]}}"#, hex(&KEY_A)),
    )
    .unwrap();
    let out = app.berth(&["keys", "import", same.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["added"].as_u64(), v["unchanged"].as_u64()),
        (Some(0), Some(1)),
        "re-import is a no-op"
    );

    let new_kid = NEW_KID;
    let conflict = dir.join("conflict.json");
    std::fs::write(
        &conflict,
        format!(
            r#"{{"keys":[{{"kid":"{new_kid}","key":"{}"}},{{"kid":"{KID_A}","key":"{}"}}]}}"#,
            hex(&[9; 16]),
            hex(&[8; 16])
        ),
    )
    .unwrap();
    let out = app.berth(&["keys", "import", conflict.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("different value"), "{}", stderr(&out));
    let list = app.berth(&["keys", "list", "--json"]);
    let v: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(
        v["keys"].as_array().unwrap().len(),
        2,
        "nothing from the failed import"
    );
    let text = String::from_utf8_lossy(&app.berth(&["keys", "list"]).stdout).into_owned();
    assert!(text.contains(KID_A));
    assert!(!text.contains(&hex(&KEY_A)) && !String::from_utf8_lossy(&list.stdout).contains(&hex(&KEY_A)));
}

const NEW_KID: &str = "abcdefab-cdef-4bcd-8bcd-abcdefabcdef";

/// A clear CPIX document's key imports without a warning; sixteen zero
/// bytes import with one; an encrypted value without DeliveryData, junk and
/// a missing file are refused.
#[actix_web::test]
async fn key_files_import_with_warnings_where_due_and_junk_is_refused() {
    let app = spawn_app().await;
    let dir = app.dir.path();
    let new_kid = NEW_KID;
    let cpix = dir.join("keys.cpix.xml");
    std::fs::write(
        &cpix,
        format!(
            r#"<?xml version="1.0"?>
<cpix:CPIX xmlns:cpix="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc" contentId="film">
 <cpix:ContentKeyList><cpix:ContentKey kid="{new_kid}"><cpix:Data><pskc:Secret><pskc:PlainValue>{}</pskc:PlainValue></pskc:Secret></cpix:Data></cpix:ContentKey></cpix:ContentKeyList>
</cpix:CPIX>"#,
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [9u8; 16])
        ),
    )
    .unwrap();
    let out = app.berth(&["keys", "import", cpix.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("imported 1 new key (0 already present)"), "{said}");
    assert_eq!(stderr(&out), "", "a real key imports without a warning");
    // A key of sixteen zero bytes: imported, with a warning.
    let zeros = dir.join("zeros.json");
    let zero_kid = "00000000-1111-4222-8333-444444444444";
    std::fs::write(
        &zeros,
        format!(r#"{{"keys":[{{"kid":"{zero_kid}","key":"{}"}}]}}"#, hex(&[0; 16])),
    )
    .unwrap();
    let out = app.berth(&["keys", "import", zeros.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "berth: warning: key {zero_kid} is all zeros: a placeholder rather than a content key? Check the export"
        )
    );
    let encrypted = dir.join("enc.cpix.xml");
    std::fs::write(
        &encrypted,
        std::fs::read_to_string(&cpix)
            .unwrap()
            .replace("PlainValue", "EncryptedValue"),
    )
    .unwrap();
    let out = app.berth(&["keys", "import", encrypted.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("encrypted, but the document has no DeliveryData"),
        "{}",
        stderr(&out)
    );
    for junk in [&b""[..], b"\x00\x01\x02", b"{\"keys\":", b"<cpix:CPIX"] {
        let path = dir.join("junk");
        std::fs::write(&path, junk).unwrap();
        let out = app.berth(&["keys", "import", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{junk:?}");
    }
    let out = app.berth(&["keys", "import", "/nonexistent/keys.json"]);
    assert_eq!(out.status.code(), Some(1));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[actix_web::test]
async fn comkeys_and_minted_tokens_work_end_to_end() {
    let app = spawn_app().await;
    let out = app.berth(&["comkey", "generate", "--json"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v["com_key_id"].as_str().unwrap().to_owned();
    let secret_file = app.dir.path().join("secret");
    std::fs::write(
        &secret_file,
        format!("{}\n", v["com_key_secret"].as_str().unwrap()),
    )
    .unwrap();
    let out = app.berth(&[
        "comkey",
        "add",
        "--id",
        &id,
        "--secret-file",
        secret_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "duplicate id refused");
    std::fs::write(&secret_file, "c2hvcnQ=").unwrap();
    let out = app.berth(&[
        "comkey",
        "add",
        "--id",
        "11111111-1111-4111-8111-111111111111",
        "--secret-file",
        secret_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "short secret refused");
    let list = String::from_utf8_lossy(&app.berth(&["comkey", "list"]).stdout).into_owned();
    assert!(list.contains(&id));
    assert!(!list.contains(v["com_key_secret"].as_str().unwrap()));

    for extra in [vec![], vec!["--inline-keys"]] {
        let mut args = vec![
            "token",
            "mint",
            "--kid",
            KID_A,
            "--com-key-id",
            &id,
            "--user-id",
            "u1",
        ];
        args.extend(extra);
        let out = app.berth(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stderr(&out), "", "a known key is minted without a warning");
        let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        app.server().reload_keys();
        let mut status = 0;
        for _ in 0..30 {
            let (s, _, _) = license_a(&app, &token).await;
            status = s;
            if s == 200 {
                break;
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(status, 200);
    }
    // A key that is not in the store: the token is minted (the key may be
    // imported later), with a warning that says what the player would get.
    let unknown = "22222222-2222-4222-8222-222222222222";
    let out = app.berth(&["token", "mint", "--kid", unknown, "--com-key-id", &id]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains(&format!("key {unknown} is not in the key store"))
            && stderr(&out).contains("key_unknown"),
        "{}",
        stderr(&out)
    );
    let out = app.berth(&["comkey", "remove", &id]);
    assert!(out.status.success());
}

#[test]
fn migrate_refuses_a_newer_database() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    berth_init(&data, "b1", "bus", "Bus 1");
    let out = berth(&["migrate", "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
    let conn = rusqlite::Connection::open(data.join("berth.db")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    for args in [vec!["migrate"], vec!["stats"], vec!["keys", "list"]] {
        let mut args = args.clone();
        args.extend(["--data-dir", data.to_str().unwrap()]);
        let out = berth(&args);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("newer"), "{}", stderr(&out));
    }
}

/// Every `(kid, day, key_system, licenses)` row of the per-KID aggregates.
fn kid_usage(data: &std::path::Path) -> Vec<(String, String, String, i64)> {
    let conn = rusqlite::Connection::open(data.join("berth.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT kid, day, key_system, licenses FROM usage_kid_daily ORDER BY kid, day, key_system")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A database from before the per-KID aggregates (schema 2) gets them filled
/// from its log by `berth migrate`, equal to what the log writer keeps.
#[actix_web::test]
async fn migrate_fills_the_per_kid_aggregates_from_an_existing_log() {
    use berth::ids::{ComKeyId, KeySystem, Kid, LicenseType};
    use berth::store::{LogEntry, LogWriter, WriterConfig};
    use time::macros::datetime;

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    berth_init(&data, "m1", "ship", "MS Migrate");
    let clock = std::sync::Arc::new(berth::clock::FixedClock::new(datetime!(2026-10-30 23:59 UTC)));
    let (writer, log) =
        LogWriter::start(&data.join("berth.db"), WriterConfig::default(), clock.clone()).unwrap();
    let (a, b): (Kid, Kid) = (KID_A.parse().unwrap(), KID_B.parse().unwrap());
    // Across midnight, with a KID twice in one license (counted once).
    for (i, kids) in [vec![a], vec![a, b], vec![b, a, b], vec![b]]
        .into_iter()
        .enumerate()
    {
        clock.set(datetime!(2026-10-30 23:59 UTC) + time::Duration::minutes(i as i64));
        for key_system in [KeySystem::ClearKey, KeySystem::Hls] {
            log.append(
                LogEntry {
                    key_system,
                    kids: kids.clone(),
                    license_type: LicenseType::Temporary,
                    user_hash: None,
                    token_id: None,
                    com_key_id: ComKeyId(uuid::Uuid::from_bytes([7; 16])),
                    single_use: None,
                    repeatable: None,
                },
                std::time::Duration::from_secs(30),
            )
            .await
            .unwrap();
        }
    }
    drop(log);
    writer.join();
    let kept = kid_usage(&data);
    let row = |kid: &str, day: &str, ks: &str, n| (kid.to_owned(), day.to_owned(), ks.to_owned(), n);
    assert_eq!(
        kept,
        [
            row(KID_B, "2026-10-31", "clearkey", 3),
            row(KID_B, "2026-10-31", "hls", 3),
            row(KID_A, "2026-10-30", "clearkey", 1),
            row(KID_A, "2026-10-30", "hls", 1),
            row(KID_A, "2026-10-31", "clearkey", 2),
            row(KID_A, "2026-10-31", "hls", 2),
        ]
    );

    let conn = rusqlite::Connection::open(data.join("berth.db")).unwrap();
    conn.execute_batch("DROP TABLE usage_kid_daily; PRAGMA user_version = 2;")
        .unwrap();
    drop(conn);
    let out = berth(&["migrate", "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(
        "applying 0003_kid_usage, 0004_log_prune, 0005_key_repeats, 0006_sealed_keys, 0007_checkpoint_outbox, 0008_fairplay (on a long license log"
    ));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "applied 0003_kid_usage, 0004_log_prune, 0005_key_repeats, 0006_sealed_keys, 0007_checkpoint_outbox, 0008_fairplay"
    );
    assert_eq!(kid_usage(&data), kept);
}

#[test]
fn a_wrong_master_key_is_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let d = data.to_str().unwrap();
    berth_init(&data, "t1", "train", "ICE");
    let json = tmp.path().join("k.json");
    std::fs::write(
        &json,
        format!(r#"{{"keys":[{{"kid":"{KID_A}","key":"{}"}}]}}"#, hex(&KEY_A)),
    )
    .unwrap();
    assert!(
        berth(&["keys", "import", json.to_str().unwrap(), "--data-dir", d])
            .status
            .success()
    );
    std::fs::remove_file(data.join("master.key")).unwrap();
    std::fs::write(data.join("master.key"), hex(&[1; 32])).unwrap();
    let out = berth(&["token", "mint", "--kid", KID_A, "--data-dir", d]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("master key"), "{}", stderr(&out));
}

#[test]
fn crew_users() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let d = data.to_str().unwrap();
    berth_init(&data, "t1", "other", "X");
    let out = berth(&[
        "user",
        "add",
        "maria",
        "--role",
        "viewer",
        "--json",
        "--data-dir",
        d,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["password"].as_str().unwrap().len() >= 16);
    assert_eq!(
        berth(&["user", "add", "maria", "--data-dir", d]).status.code(),
        Some(1)
    );
    assert_eq!(
        berth(&["user", "add", "x", "--role", "root", "--data-dir", d])
            .status
            .code(),
        Some(2)
    );
    let list = String::from_utf8_lossy(&berth(&["user", "list", "--data-dir", d]).stdout).into_owned();
    assert!(list.contains("maria") && list.contains("admin"));
    assert!(!list.contains("argon2"), "hashes are not printed");
    assert!(
        berth(&["user", "passwd", "maria", "--data-dir", d])
            .status
            .success()
    );
    assert!(
        berth(&["user", "remove", "maria", "--data-dir", d])
            .status
            .success()
    );
    assert_eq!(
        berth(&["user", "remove", "maria", "--data-dir", d]).status.code(),
        Some(1)
    );
    let db = std::fs::read(data.join("berth.db")).unwrap();
    assert!(
        !db.windows(16)
            .any(|w| w == &v["password"].as_str().unwrap().as_bytes()[..16])
    );
}

#[actix_web::test]
async fn backup_while_serving_and_restore_refuses_to_lose_licenses() {
    let app = spawn_app().await;
    let token = app.token(&[KID_A], serde_json::json!({}));
    for _ in 0..3 {
        assert_eq!(
            post_license(&app, Some(&token), &clearkey_body(&[KID_A], "temporary"))
                .await
                .0,
            200
        );
    }
    let backup = app.dir.path().join("backup.db");
    let out = app.berth(&["backup", "--out", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 licenses"));
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = app.berth(&["backup", "--out", backup.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "never overwrites");
    assert!(stderr(&out).contains("exists; refusing to overwrite it"));
    // A directory that does not exist, or the live database itself: a clear line, nothing written.
    let nowhere = app.dir.path().join("no/such/dir/b.db");
    let out = app.berth(&["backup", "--out", nowhere.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with(&format!("berth: cannot create {}: ", nowhere.display())),
        "{}",
        stderr(&out)
    );
    let live = app.data_dir().join("berth.db");
    let out = app.berth(&["backup", "--out", live.to_str().unwrap()]);
    assert!(stderr(&out).contains("exists; refusing to overwrite it"));
    // The copy is consistent and its chain verifies.
    let copy_dir = app.dir.path().join("copy");
    std::fs::create_dir(&copy_dir).unwrap();
    std::fs::copy(&backup, copy_dir.join("berth.db")).unwrap();
    std::fs::copy(app.data_dir().join("master.key"), copy_dir.join("master.key")).unwrap();
    let out = berth(&["log", "verify", "--data-dir", copy_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    assert_eq!(
        post_license(&app, Some(&token), &clearkey_body(&[KID_A], "temporary"))
            .await
            .0,
        200
    );
    let out = app.berth(&["restore", backup.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("stop it first"),
        "a running server holds the data dir: {}",
        stderr(&out)
    );
}

#[test]
fn restore_refuses_an_older_log_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let d = data.to_str().unwrap();
    berth_init(&data, "r1", "ship", "R");
    let backup = tmp.path().join("b.db");
    assert!(
        berth(&["backup", "--out", backup.to_str().unwrap(), "--data-dir", d])
            .status
            .success()
    );
    // One license written after the backup, the way the writer would.
    let conn = rusqlite::Connection::open(data.join("berth.db")).unwrap();
    conn.execute(
        "INSERT INTO license_log VALUES (1, '2026-11-01T00:00:00.000Z', 'clearkey', 'x', 'temporary', '', '', 'c', ?1, 'h')",
        [berth::chain::GENESIS],
    )
    .unwrap();
    drop(conn);
    let out = berth(&["restore", backup.to_str().unwrap(), "--data-dir", d]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("lose 1"), "{}", stderr(&out));
    let out = berth(&["restore", backup.to_str().unwrap(), "--data-dir", d, "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = berth(&["restore", "/nonexistent.db", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(1));
    std::fs::write(tmp.path().join("junk.db"), b"not a database at all").unwrap();
    let out = berth(&[
        "restore",
        tmp.path().join("junk.db").to_str().unwrap(),
        "--data-dir",
        d,
    ]);
    assert_eq!(out.status.code(), Some(1));
}

/// The usual reason to restore: the database cannot be read any more. Without
/// --force that is said plainly; with it the backup takes its place and the
/// unreadable file is kept beside, with its WAL, never deleted.
#[test]
fn restore_replaces_an_unreadable_database_when_forced_and_keeps_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let d = data.to_str().unwrap();
    berth_init(&data, "r2", "train", "T");
    let backup = tmp.path().join("b.db");
    let out = berth(&["backup", "--out", backup.to_str().unwrap(), "--data-dir", d]);
    assert!(out.status.success(), "{}", stderr(&out));
    let garbage = b"\x00\xffnot a database, after a disk fault".repeat(500);
    std::fs::write(data.join("berth.db"), &garbage).unwrap();
    // Any command says what is wrong and what to do.
    let out = berth(&["stats", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("berth.db is damaged (file is not a database)")
            && stderr(&out).contains("berth restore FILE --force"),
        "{}",
        stderr(&out)
    );
    std::fs::write(data.join("berth.db-wal"), b"a stray WAL").unwrap();

    let out = berth(&["restore", backup.to_str().unwrap(), "--data-dir", d]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot be read") && stderr(&out).contains("berth restore --force"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(data.join("berth.db")).unwrap(),
        garbage,
        "untouched"
    );

    let out = berth(&[
        "restore",
        backup.to_str().unwrap(),
        "--data-dir",
        d,
        "--force",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kept = v["kept_unreadable"].as_str().unwrap();
    assert!(kept.starts_with("berth.db.unreadable-"), "{v}");
    assert_eq!(std::fs::read(data.join(kept)).unwrap(), garbage);
    assert_eq!(
        std::fs::read(data.join(format!("{kept}-wal"))).unwrap(),
        b"a stray WAL"
    );
    assert!(
        !data.join("berth.db-wal").exists()
            || std::fs::read(data.join("berth.db-wal")).unwrap() != b"a stray WAL"
    );
    let out = berth(&["log", "verify", "--data-dir", d]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(v["installation_id"], "r2");
}

#[test]
fn init_takes_the_installation_from_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("berth.toml");
    let data = tmp.path().join("d");
    std::fs::write(
        &config,
        format!("data_dir = {:?}\n[installation]\nid = \"ac-42\"\nvessel_type = \"aircraft\"\nvessel_name = \"A321 D-AIEA\"\n", data),
    )
    .unwrap();
    let out = berth(&["init", "--config", config.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["installation_id"], "ac-42");
    assert_eq!(v["vessel_type"], "aircraft");
    std::fs::write(&config, "[installation]\nvessel_type = \"zeppelin\"\n").unwrap();
    let out = berth(&["config", "show", "--config", config.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("installation.vessel_type"),
        "{}",
        stderr(&out)
    );
}

/// Output read by a pipe whose reader has gone (`berth ... | head`) ends the
/// command quietly, and output that cannot be written (a full disk) fails with
/// one line: neither panics.
#[test]
fn output_nobody_reads_or_that_cannot_be_written() {
    let example_to = |stdout: std::process::Stdio| {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["config", "example"])
            .env_remove("BERTH_CONFIG")
            .stdout(stdout)
            .output()
            .unwrap()
    };
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = example_to(writer.into());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");

    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = example_to(full.into());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "berth: cannot write to standard output: No space left on device (os error 28)\n"
    );
}

/// A box whose clock was reset (1970, no real-time-clock battery) is not
/// initialised: its reports would begin in 1970. Nothing is written.
#[test]
fn init_refuses_a_clock_from_before_berth() {
    let tmp = tempfile::tempdir().unwrap();
    let config = berth::config::Config {
        data_dir: tmp.path().join("d"),
        ..Default::default()
    };
    let args = berth::installation::NewInstallation {
        id: "bus-9".parse().unwrap(),
        vessel_type: berth::store::VesselType::Bus,
        vessel_name: "Bus 9".parse().unwrap(),
        admin_user: "admin".into(),
    };
    let reset = berth::clock::FixedClock::new(time::OffsetDateTime::UNIX_EPOCH);
    let err = berth::installation::create(&config, &args, &reset).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the clock says 1970-01-01T00:00:00.000Z, which is before berth existed: set it \
         (timedatectl set-time 'YYYY-MM-DD HH:MM:SS') and run init again, because the monthly \
         reports begin at the month of init"
    );
    assert!(!config.data_dir.exists(), "nothing is written");
    let set = berth::clock::FixedClock::new(berth::clock::EARLIEST_PLAUSIBLE);
    assert!(berth::installation::create(&config, &args, &set).is_ok());
}
