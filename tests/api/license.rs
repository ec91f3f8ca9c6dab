//! Happy paths: every way a player gets keys.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn stored_key_license() {
    let app = spawn_app().await;
    let token = app.sign(&app.payload(
        &[],
        json!({ "content_keys_source": { "stored": [ { "id": KID_A } ] } }),
    ));
    let (status, body, headers) = license_a(&app, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    assert_eq!(body["type"], "temporary");
    assert_eq!(body["keys"][0]["kty"], "oct");
    assert_eq!(body["keys"][0]["kid"], b64url_kid(KID_A));
    assert_eq!(body["keys"][0]["k"], URL_SAFE_NO_PAD.encode(KEY_A));
    assert_eq!(app.log_rows(), 1);
}

#[actix_web::test]
async fn inline_encrypted_key_wins_without_the_store() {
    let app = spawn_app().await;
    // A KID the store does not know, carried in the token encrypted with the
    // communication key: AES-256-CBC, IV = KID bytes, no padding (openssl here).
    let key = [0x5a_u8; 16];
    let iv = kid(KID_UNKNOWN).0;
    let mut crypter = openssl::symm::Crypter::new(
        openssl::symm::Cipher::aes_256_cbc(),
        openssl::symm::Mode::Encrypt,
        &app.com_secret,
        Some(&iv),
    )
    .unwrap();
    crypter.pad(false);
    let mut ct = vec![0u8; 32];
    let n = crypter.update(&key, &mut ct).unwrap();
    ct.truncate(n);
    let token = app.sign(&app.payload(
        &[],
        json!({ "content_keys_source": { "inline": [ { "id": KID_UNKNOWN, "encrypted_key": STANDARD.encode(&ct) } ] } }),
    ));
    let (status, body, _) =
        post_license(&app, Some(&token), &clearkey_body(&[KID_UNKNOWN], "temporary")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["keys"][0]["k"], URL_SAFE_NO_PAD.encode(key));
}

#[actix_web::test]
async fn license_request_source_and_multi_kid() {
    let app = spawn_app().await;
    let token = app.sign(&app.payload(&[], json!({ "content_keys_source": { "license_request": {} } })));
    let (status, body, _) =
        post_license(&app, Some(&token), &clearkey_body(&[KID_A, KID_B], "temporary")).await;
    assert_eq!(status, 200, "{body}");
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[1]["kid"], b64url_kid(KID_B));
    assert_eq!(keys[1]["k"], URL_SAFE_NO_PAD.encode(KEY_B));
    // One license, however many keys.
    assert_eq!(app.log_rows(), 1);
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    let kids: String = conn
        .query_row("SELECT kids FROM license_log", [], |r| r.get(0))
        .unwrap();
    let mut want = [KID_A, KID_B];
    want.sort();
    assert_eq!(kids, want.join(";"));
}

#[actix_web::test]
async fn padded_and_standard_base64_kids_are_accepted() {
    let app = spawn_app().await;
    let token = app.token(&[KID_A], json!({}));
    let body = json!({ "kids": [STANDARD.encode(kid(KID_A).0)], "type": "temporary" }).to_string();
    let (status, answer, _) = post_license(&app, Some(&token), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["keys"][0]["kid"],
        b64url_kid(KID_A),
        "answered unpadded base64url"
    );
}

/// A body that starts with a UTF-8 byte order mark (some HTTP stacks add
/// one) is a license like any other, logged once.
#[actix_web::test]
async fn a_body_with_a_byte_order_mark_is_a_license() {
    let app = spawn_app().await;
    let token = app.token(&[KID_A], json!({}));
    let body = format!("\u{feff}{}", clearkey_body(&[KID_A], "temporary"));
    let (status, answer, _) = post_license(&app, Some(&token), &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["keys"][0]["kid"], b64url_kid(KID_A));
    assert_eq!(app.log_rows(), 1);
}

#[actix_web::test]
async fn hls_key_bytes() {
    let app = spawn_app().await;
    let token = app.token(&[KID_A], json!({}));
    let mut res = client()
        .get(app.url(&format!("/hls/key/{KID_A}?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "application/octet-stream"
    );
    assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
    assert_eq!(res.body().await.unwrap().as_ref(), &KEY_A);
    // 32 hex digits work too.
    let hex_kid = KID_A.replace('-', "");
    let res = client()
        .get(app.url(&format!("/hls/key/{hex_kid}?AxDrmMessage={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    let systems: Vec<String> = conn
        .prepare("SELECT key_system FROM license_log ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // The same key fetched again with the same token is a repeat, not a license.
    assert_eq!(systems, ["hls"]);
    assert_eq!(
        app.db()
            .counts(berth::ids::Month::of(app.clock_now()))
            .unwrap()
            .repeat_fetches,
        1
    );
}

#[actix_web::test]
async fn persistent_license_needs_allow_persistence() {
    let app = spawn_app().await;
    let denied = app.token(&[KID_A], json!({}));
    let (status, body, headers) = post_license(
        &app,
        Some(&denied),
        &clearkey_body(&[KID_A], "persistent-license"),
    )
    .await;
    assert_error(status, &body, &headers, 403, "persistence_not_allowed");
    let allowed = app.token(&[KID_A], json!({ "license": { "allow_persistence": true } }));
    let (status, body, _) = post_license(
        &app,
        Some(&allowed),
        &clearkey_body(&[KID_A], "persistent-license"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "persistent-license");
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    let t: String = conn
        .query_row("SELECT license_type FROM license_log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(t, "persistent-license");
}

#[actix_web::test]
async fn token_travels_by_precedence() {
    let app = spawn_app().await;
    let good = app.token(&[KID_A], json!({}));
    let body = clearkey_body(&[KID_A], "temporary");
    // Authorization: Bearer, lowercase scheme.
    let mut res = client()
        .post(app.url("/AcquireLicense"))
        .insert_header(("authorization", format!("bearer {good}")))
        .send_body(body.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.body().await);
    // Query parameter.
    let res = client()
        .post(app.url(&format!("/clearkey?AxDrmMessage={good}")))
        .send_body(body.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The header wins over a broken Authorization and query.
    let res = client()
        .post(app.url("/clearkey?token=garbage"))
        .insert_header(("x-axdrm-message", good.as_str()))
        .insert_header(("Authorization", "Bearer garbage"))
        .send_body(body.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // And a broken header is not rescued by a good query token.
    let res = client()
        .post(app.url(&format!("/clearkey?token={good}")))
        .insert_header(("X-AxDRM-Message", "garbage"))
        .send_body(body.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // An empty place holds no token: the next one is used (a player set up with
    // an empty header, an `AxDrmMessage=` left in a URL template) ...
    let res = client()
        .post(app.url(&format!("/clearkey?AxDrmMessage=&token={good}")))
        .insert_header(("X-AxDRM-Message", " "))
        .send_body(body.clone())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // ... and with none given, the token is missing, not malformed.
    let mut res = client()
        .post(app.url("/clearkey?token="))
        .insert_header(("X-AxDRM-Message", ""))
        .insert_header(("Authorization", "Bearer "))
        .send_body(body)
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let error: serde_json::Value = res.json().await.unwrap();
    assert_eq!(error["error"], "token_missing");
    assert_eq!(app.log_rows(), 4);
}

#[actix_web::test]
async fn shaka_preflight_and_request() {
    let app = spawn_app().await;
    let res = client()
        .request(awc::http::Method::OPTIONS, app.url("/clearkey"))
        .insert_header(("Origin", "http://127.0.0.1:9000"))
        .insert_header(("Access-Control-Request-Method", "POST"))
        .insert_header(("Access-Control-Request-Headers", "x-axdrm-message"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let h = res.headers();
    assert_eq!(
        h.get("access-control-allow-origin").unwrap(),
        "http://127.0.0.1:9000"
    );
    // Any origin may read keys, but only a named one with credentials.
    assert!(h.get("access-control-allow-credentials").is_none());
    assert_eq!(h.get("access-control-max-age").unwrap(), "86400");
    assert_eq!(h.get("vary").unwrap(), "Origin");
    assert!(
        h.get("access-control-allow-methods")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let allowed = h
        .get("access-control-allow-headers")
        .unwrap()
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("x-axdrm-message"), "{allowed}");
    // Shaka's real request: no Content-Type.
    let token = app.token(&[KID_A], json!({}));
    let res = client()
        .post(app.url("/clearkey"))
        .insert_header(("Origin", "http://127.0.0.1:9000"))
        .insert_header(("x-axdrm-message", token))
        .send_body(clearkey_body(&[KID_A], "temporary"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("access-control-allow-origin").unwrap(),
        "http://127.0.0.1:9000"
    );
    assert_eq!(
        res.headers().get("access-control-expose-headers").unwrap(),
        "X-AxDRM-ErrorMessage"
    );
    assert_eq!(app.log_rows(), 1, "the preflight is not counted");
}

#[actix_web::test]
async fn dashjs_preflight_and_credentialed_request() {
    let app = spawn_app_with(|c| c.license.allowed_origins = vec!["http://localhost:3000".into()]).await;
    let res = client()
        .request(awc::http::Method::OPTIONS, app.url("/AcquireLicense"))
        .insert_header(("Origin", "http://localhost:3000"))
        .insert_header(("Access-Control-Request-Method", "POST"))
        .insert_header(("Access-Control-Request-Headers", "authorization,content-type"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let allowed = res
        .headers()
        .get("access-control-allow-headers")
        .unwrap()
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert_eq!(
        res.headers().get("access-control-allow-origin").unwrap(),
        "http://localhost:3000"
    );
    let token = app.token(&[KID_A], json!({}));
    let res = client()
        .post(app.url("/AcquireLicense"))
        .insert_header(("Origin", "http://localhost:3000"))
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send_body(clearkey_body(&[KID_A], "temporary"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("access-control-allow-credentials").unwrap(),
        "true"
    );
}

#[actix_web::test]
async fn origins_outside_the_allow_list_get_no_cors_headers() {
    let app = spawn_app_with(|c| c.license.allowed_origins = vec!["http://portal.local".into()]).await;
    let res = client()
        .get(app.url("/healthz"))
        .insert_header(("Origin", "http://evil.example"))
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let res = client()
        .get(app.url("/healthz"))
        .insert_header(("Origin", "http://portal.local"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers().get("access-control-allow-origin").unwrap(),
        "http://portal.local"
    );
}

#[actix_web::test]
async fn healthz_reports_ok_and_is_not_counted() {
    let app = spawn_app().await;
    let mut res = client().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["keys"]["content_keys"], 2);
    assert_eq!(app.log_rows(), 0);
}

#[actix_web::test]
async fn keys_imported_while_serving_are_picked_up() {
    let app = spawn_app().await;
    let kid_c = "12345678-1234-4234-8234-123456789abc";
    let token = app.token(&[kid_c], json!({}));
    let (status, body, headers) =
        post_license(&app, Some(&token), &clearkey_body(&[kid_c], "temporary")).await;
    assert_error(status, &body, &headers, 403, "key_unknown");
    let file = app.dir.path().join("new.json");
    std::fs::write(
        &file,
        json!({ "keys": [ { "kid": kid_c, "key": "000102030405060708090a0b0c0d0e0f" } ] }).to_string(),
    )
    .unwrap();
    let out = app.berth(&["keys", "import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    app.server().reload_keys();
    let mut status = 0;
    for _ in 0..50 {
        let (s, _, _) = post_license(&app, Some(&token), &clearkey_body(&[kid_c], "temporary")).await;
        status = s;
        if s == 200 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn graceful_stop_keeps_every_license() {
    let mut app = spawn_app().await;
    let token = app.token(&[KID_A], json!({}));
    for _ in 0..5 {
        let (status, _, _) = license_a(&app, &token).await;
        assert_eq!(status, 200);
    }
    app.stop().await;
    assert_eq!(app.log_rows(), 5);
    app.start().await;
    let (status, _, _) = license_a(&app, &token).await;
    assert_eq!(status, 200);
    let out = app.berth(&["log", "verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("6 rows"));
}

#[actix_web::test]
async fn a_key_and_com_key_imported_a_moment_ago_work_at_once() {
    let app = spawn_app().await;
    let kid_d = "22222222-3333-4444-8555-666666666666";
    let file = app.dir.path().join("fresh.json");
    std::fs::write(
        &file,
        json!({ "keys": [ { "kid": kid_d, "key": "0f0e0d0c0b0a09080706050403020100" } ] }).to_string(),
    )
    .unwrap();
    assert!(
        app.berth(&["keys", "import", file.to_str().unwrap()])
            .status
            .success()
    );
    let out = app.berth(&["comkey", "generate", "--json"]);
    let com: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = app.berth(&[
        "token",
        "mint",
        "--kid",
        kid_d,
        "--com-key-id",
        com["com_key_id"].as_str().unwrap(),
    ]);
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    // No reload, no waiting: the unknown KID and com key make berth look once more.
    let (status, body, _) = post_license(&app, Some(&token), &clearkey_body(&[kid_d], "temporary")).await;
    assert_eq!(status, 200, "{body}");
    // A KID nobody imported is still unknown, and asking again does not flood the store.
    // (A token each: one token looped from one address is rate limited.)
    for _ in 0..50 {
        let token = app.token(&[KID_UNKNOWN], json!({}));
        let (status, _, _) =
            post_license(&app, Some(&token), &clearkey_body(&[KID_UNKNOWN], "temporary")).await;
        assert_eq!(status, 403);
    }
}

/// The log writer answers a thread that has a mailbox through it (the
/// mailbox's task sends the answers on that thread, which is how the license
/// listener's workers are answered) and any other thread directly, also one
/// whose mailbox went with its LocalSet; either way each append gets its own
/// committed row, and the chain holds them all.
#[actix_web::test]
async fn log_answers_reach_threads_with_and_without_a_mailbox() {
    use berth::http::Mailbox;
    use berth::ids::{ComKeyId, KeySystem, LicenseType};
    use berth::store::{LogEntry, LogWriter, WriterConfig};

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    berth_init(&data, "mb1", "bus", "Mailbox");
    let clock: std::sync::Arc<dyn berth::clock::Clock> = std::sync::Arc::new(berth::clock::SystemClock);
    let (writer, log) = LogWriter::start(&data.join("berth.db"), WriterConfig::default(), clock).unwrap();
    let log = std::sync::Arc::new(log.with_courier(Mailbox::current));
    let entry = || LogEntry {
        key_system: KeySystem::ClearKey,
        kids: vec![KID_A.parse().unwrap()],
        license_type: LicenseType::Temporary,
        user_hash: None,
        token_id: None,
        com_key_id: ComKeyId(uuid::Uuid::from_bytes([7; 16])),
        single_use: None,
        repeatable: None,
    };

    // This thread, with a mailbox: 300 appends in flight at once.
    Mailbox::open_on_this_thread();
    Mailbox::open_on_this_thread(); // a second call changes nothing
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let log = log.clone();
            actix_web::rt::spawn(async move { log.append(entry(), std::time::Duration::from_secs(30)).await })
        })
        .collect();
    // Another thread at the same time: first inside a LocalSet with its own
    // mailbox, then, that LocalSet gone, without one (answered directly, not
    // into a mailbox nobody empties any more).
    let other = {
        let log = log.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            let local = tokio::task::LocalSet::new();
            let mut seqs = local.block_on(&rt, async {
                Mailbox::open_on_this_thread();
                appended_one_by_one(&log, 50, entry).await
            });
            drop(local);
            let later = rt.block_on(async {
                tokio::time::timeout(
                    std::time::Duration::from_secs(30),
                    appended_one_by_one(&log, 50, entry),
                )
                .await
            });
            seqs.extend(later.expect("answered without the mailbox"));
            seqs
        })
    };
    let mut seqs = Vec::new();
    for task in tasks {
        let answered = tokio::time::timeout(std::time::Duration::from_secs(30), task)
            .await
            .expect("answered through the mailbox");
        seqs.push(answered.unwrap().unwrap().seq);
    }
    seqs.extend(other.join().unwrap());
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=400).collect::<Vec<i64>>());
    drop(log);
    writer.join();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["log", "verify", "--data-dir", data.to_str().unwrap()])
        .env_remove("BERTH_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `n` appends one after another, their sequence numbers.
async fn appended_one_by_one(
    log: &berth::store::LogHandle,
    n: usize,
    entry: impl Fn() -> berth::store::LogEntry,
) -> Vec<i64> {
    let mut seqs = Vec::with_capacity(n);
    for _ in 0..n {
        seqs.push(
            log.append(entry(), std::time::Duration::from_secs(30))
                .await
                .unwrap()
                .seq,
        );
    }
    seqs
}
