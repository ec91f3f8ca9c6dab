//! Counting, the hash chain, concurrency, and secrecy at rest.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use time::macros::datetime;

use crate::helpers::*;

#[actix_web::test]
async fn mixed_traffic_logs_exactly_the_successes() {
    let app = spawn_app().await;
    let ok_alice = app.token(&[KID_A, KID_B], json!({ "session": { "user_id": "alice" } }));
    let ok_bob = app.token(&[KID_A], json!({ "session": { "user_id": "bob" } }));
    let anonymous = app.token(&[KID_A], json!({ "session": {} }));
    let body_a = clearkey_body(&[KID_A], "temporary");
    let mut successes = 0;
    let mut hls = 0;
    for round in 0..3 {
        for (token, body) in [(&ok_alice, &body_a), (&ok_bob, &body_a), (&anonymous, &body_a)] {
            let (s, _, _) = post_license(&app, Some(token), body).await;
            assert_eq!(s, 200);
            successes += 1;
        }
        // Errors, preflights, health checks, Widevine certificate requests.
        let (s, _, _) = post_license(&app, None, &body_a).await;
        assert_eq!(s, 401);
        let (s, _, _) = post_license(&app, Some(&ok_bob), &clearkey_body(&[KID_B], "temporary")).await;
        assert_eq!(s, 403);
        let _ = client()
            .request(awc::http::Method::OPTIONS, app.url("/clearkey"))
            .insert_header(("Origin", "http://x"))
            .send()
            .await
            .unwrap();
        let _ = client().get(app.url("/healthz")).send().await.unwrap();
        let res = client()
            .post(app.url("/clearkey"))
            .insert_header(("X-AxDRM-Message", ok_bob.as_str()))
            .send_body(vec![0x08u8, 0x04])
            .await
            .unwrap();
        assert_eq!(res.status(), 501);
        if round == 0 {
            let res = client()
                .get(app.url(&format!("/hls/key/{KID_A}?token={ok_bob}")))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            hls += 1;
        }
    }
    assert_eq!(app.log_rows(), successes + hls);

    let out = app.berth(&["stats", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    let counts = &stats["counts"];
    assert_eq!(counts["licenses"], successes + hls);
    assert_eq!(counts["active_users"], 2);
    assert_eq!(counts["licenses_without_user"], 3);
    assert_eq!(counts["by_key_system"]["clearkey"], successes);
    assert_eq!(counts["by_key_system"]["hls"], hls);
    let today = time::OffsetDateTime::now_utc().date().to_string();
    assert_eq!(counts["by_day"][&today], successes + hls);
    assert_eq!(stats["month"], today[..7]);

    let out = app.berth(&["log", "verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Tamper with one row the way an operator with sqlite3 could.
    app.tamper("DROP TRIGGER license_log_no_update; UPDATE license_log SET kids = 'ffffffff-ffff-ffff-ffff-ffffffffffff' WHERE seq = 4;");
    let out = app.berth(&["log", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("row 4"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
}

/// Three licenses, then `edit` run with `sqlite3`'s powers (the triggers
/// dropped); returns the app and `berth log verify --json`'s verdict, a failure.
async fn edited_log(edit: &str) -> (TestApp, Value) {
    let app = spawn_app().await;
    let token = app.token(&[KID_A], json!({}));
    for _ in 0..3 {
        let (s, _, _) = license_a(&app, &token).await;
        assert_eq!(s, 200);
    }
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    conn.execute_batch(&format!(
        "DROP TRIGGER license_log_no_delete; DROP TRIGGER license_log_no_update; {edit}"
    ))
    .unwrap();
    let out = app.berth(&["log", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    (app, report)
}

#[actix_web::test]
async fn a_deleted_row_breaks_the_chain() {
    let (_app, report) = edited_log("DELETE FROM license_log WHERE seq = 2;").await;
    assert_eq!(report["seq"], 3);
}

#[actix_web::test]
async fn a_row_edited_into_bytes_that_are_not_text_breaks_the_chain() {
    let (app, report) =
        edited_log("UPDATE license_log SET token_id = CAST(X'FF' AS TEXT) WHERE seq = 2;").await;
    assert_eq!(report["seq"], 2);
    assert!(
        report["problem"]
            .as_str()
            .unwrap()
            .contains("column token_id is not UTF-8 text"),
        "{report}"
    );
    // The month's report refuses to carry it, and says where it is.
    let month = berth::ids::Month::of(time::OffsetDateTime::now_utc()).to_string();
    let out = app.berth(&["report", "export", "--month", &month, "--partial"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("row 2: column token_id is not UTF-8 text"),
        "{stderr}"
    );
}

#[actix_web::test]
async fn five_hundred_concurrent_licenses() {
    let app = spawn_app().await;
    let mut handles = Vec::new();
    for i in 0..500 {
        let token = app.token(&[KID_A], json!({ "session": { "user_id": format!("seat-{i}") } }));
        let url = app.url("/clearkey");
        handles.push(actix_web::rt::spawn(async move {
            let mut res = client()
                .post(url)
                .insert_header(("X-AxDRM-Message", token))
                .send_body(clearkey_body(&[KID_A], "temporary"))
                .await
                .expect("request");
            let status = res.status().as_u16();
            let _ = res.body().await;
            status
        }));
    }
    // While they run, /healthz's queue depth stays within what was sent (it
    // once wrapped below zero when the writer took a job before it was counted).
    let health_url = app.url("/healthz");
    let sampler = actix_web::rt::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..40 {
            let mut res = client().get(health_url.as_str()).send().await.expect("healthz");
            let body: Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap();
            seen.push(body["log_writer"]["queued"].as_u64().unwrap());
        }
        seen
    });
    let mut ok = 0;
    let mut statuses = std::collections::BTreeMap::new();
    for h in handles {
        let status = h.await.unwrap();
        *statuses.entry(status).or_insert(0) += 1;
        if status == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 500, "statuses: {statuses:?}");
    let seen = sampler.await.unwrap();
    assert!(seen.iter().all(|q| *q <= 500), "queue depths seen: {seen:?}");
    assert_eq!(app.log_rows(), 500);
    let out = app.berth(&["log", "verify"]);
    assert!(out.status.success());
    let out = app.berth(&["stats", "--json"]);
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["counts"]["active_users"], 500);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[actix_web::test]
async fn no_secret_is_stored_in_clear() {
    let app = spawn_app().await;
    let user_id = "passenger-raw-id-8f3a2c";
    let token = app.token(&[KID_A, KID_B], json!({ "session": { "user_id": user_id } }));
    for _ in 0..3 {
        let (s, _, _) = post_license(&app, Some(&token), &clearkey_body(&[KID_A, KID_B], "temporary")).await;
        assert_eq!(s, 200);
    }
    let mut files = Vec::new();
    for name in ["berth.db", "berth.db-wal"] {
        let path = app.data_dir().join(name);
        if let Ok(bytes) = std::fs::read(&path) {
            files.push((name, bytes));
        }
    }
    assert!(
        files.iter().any(|(n, _)| *n == "berth.db-wal"),
        "the WAL is scanned too"
    );
    let secret_b64 = STANDARD.encode(app.com_secret);
    let key_hex_a: String = KEY_A.iter().map(|b| format!("{b:02x}")).collect();
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("content key A", KEY_A.to_vec()),
        ("content key B", KEY_B.to_vec()),
        ("content key A hex", key_hex_a.into_bytes()),
        ("communication secret", app.com_secret.to_vec()),
        ("communication secret b64", secret_b64.into_bytes()),
        ("raw user id", user_id.as_bytes().to_vec()),
        ("token", token.as_bytes()[..40].to_vec()),
    ];
    for (file, bytes) in &files {
        for (what, needle) in &needles {
            assert!(!contains(bytes, needle), "{what} found in {file}");
        }
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(app.data_dir().join("master.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(app.data_dir()).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700);
}

/// The log writer remembers which passengers each month has already counted,
/// to skip their insert: across batches, a new month, a clock set back and a
/// restart (which forgets), each passenger still counts once per month.
#[actix_web::test]
async fn each_passenger_counts_once_per_month() {
    let mut app = spawn_app().await;
    async fn deliver(app: &TestApp, user: &str) {
        let token = app.token(&[KID_A], json!({ "session": { "user_id": user } }));
        let (s, b, _) = license_a(app, &token).await;
        assert_eq!(s, 200, "{b}");
    }
    app.clock.set(datetime!(2026-09-10 12:00 UTC));
    for user in ["u1", "u1", "u2", "u1"] {
        deliver(&app, user).await;
    }
    // u2's only October license is the month's first: it must count there.
    app.clock.set(datetime!(2026-10-01 00:00 UTC));
    for user in ["u2", "u4"] {
        deliver(&app, user).await;
    }
    // Set back into September: u1 and u2 are not new there; u3 and u4 are.
    app.clock.set(datetime!(2026-09-20 12:00 UTC));
    for user in ["u1", "u3", "u4", "u2"] {
        deliver(&app, user).await;
    }
    app.clock.set(datetime!(2026-10-02 08:00 UTC));
    deliver(&app, "u4").await;
    app.stop().await;
    app.start().await;
    for user in ["u1", "u4"] {
        deliver(&app, user).await;
    }
    for (month, licenses, users) in [("2026-09", 8, 4), ("2026-10", 5, 3)] {
        let out = app.berth(&["stats", "--month", month, "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(stats["counts"]["licenses"], licenses, "{month}");
        assert_eq!(stats["counts"]["active_users"], users, "{month}");
    }
}
