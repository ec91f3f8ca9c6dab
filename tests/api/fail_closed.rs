//! Issue 25: no key without an entitlement berth can enforce, and a count that
//! agrees with what was delivered.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

/// A usage policy that asks for hardware security and HDCP 2.2: berth cannot
/// enforce it on Clear Key, whichever source names the key.
#[actix_web::test]
async fn a_strict_usage_policy_denies_the_key_on_every_source() {
    let app = spawn_app().await;
    let policies = json!([ { "name": "strict", "widevine": { "device_security_level": "HW_SECURE_ALL", "hdcp": "HDCP_V2_2" } } ]);
    for source in [
        json!({ "inline": [ { "id": KID_A, "usage_policy": "strict" } ] }),
        json!({ "stored": [ { "id": KID_A, "usage_policy": "strict" } ] }),
        json!({ "license_request": { "usage_policy": "strict" } }),
    ] {
        let token = app.sign(&app.payload(
            &[],
            json!({ "content_keys_source": source, "content_key_usage_policies": policies }),
        ));
        let (status, body, headers) = license_a(&app, &token).await;
        assert_error(status, &body, &headers, 403, "unsupported_entitlement");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("device_security_level"),
            "{body}"
        );
        assert!(body.get("keys").is_none());
    }
    for (source, field) in [
        (
            json!({ "license_request": { "seed_id": "11111111-2222-4333-8444-555555555555" } }),
            "license_request.seed_id",
        ),
        (
            json!({ "inline": [ { "id": KID_A, "seed_id": "11111111-2222-4333-8444-555555555555" } ] }),
            "inline[0].seed_id",
        ),
        (
            json!({ "inline": [ { "id": KID_A, "iv": "AAAAAAAAAAAAAAAAAAAAAA==" } ] }),
            "inline[0].iv",
        ),
        (
            json!({ "stored": [ { "id": KID_A, "rotation": 1 } ] }),
            "stored[0].rotation",
        ),
    ] {
        let token = app.sign(&app.payload(&[], json!({ "content_keys_source": source })));
        let (status, body, headers) = license_a(&app, &token).await;
        assert_error(status, &body, &headers, 403, "unsupported_entitlement");
        assert!(
            body["message"].as_str().unwrap().contains(field),
            "{field}: {body}"
        );
    }
    assert_eq!(app.log_rows(), 0);
}

/// A request answered 503 because its row missed the deadline is never
/// committed afterwards: not counted, and its single-use token not spent.
#[actix_web::test]
async fn a_license_that_missed_its_deadline_is_neither_counted_nor_spent() {
    let app = spawn_app_with(|c| c.log.append_timeout_ms = 300).await;
    let single_use = json!({ "license_server": { "access_control": { "prevent_drm_message_reuse": true } } });
    let token = app.token(&[KID_A], single_use);
    let health = std::sync::Arc::clone(app.server().service().writer_health());
    health.stall_for_test(true);
    // The writer looks at the stall at the top of its loop: at the latest after
    // its one-second wait for work.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (status, body, headers) = license_a(&app, &token).await;
    assert_error(status, &body, &headers, 503, "log_unavailable");
    health.stall_for_test(false);
    // Let the writer go round its queue before looking.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.log_rows(), 0, "a license answered 503 was logged after all");
    let (status, body, _) = license_a(&app, &token).await;
    assert_eq!(
        status, 200,
        "the single-use token was spent by a license never delivered: {body}"
    );
    assert_eq!(app.log_rows(), 1);
}

/// A clock moved forward (the spent id is forgotten as expired) and back again
/// does not make a spent single-use token good for another license.
#[actix_web::test]
async fn a_clock_jump_forward_and_back_does_not_re_enable_a_spent_token() {
    let app = spawn_app().await;
    let single_use = json!({ "license_server": { "access_control": { "prevent_drm_message_reuse": true } } });
    let token = app.token(&[KID_A], single_use);
    let body = clearkey_body(&[KID_A], "temporary");
    let (status, _, _) = post_license(&app, Some(&token), &body).await;
    assert_eq!(status, 200);
    let now = app.clock_now();
    app.clock.set(now + time::Duration::days(2));
    // The writer forgets expired ids when idle (every second without work).
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    let spent = || -> i64 {
        conn.query_row("SELECT count(*) FROM used_tokens", [], |r| r.get(0))
            .unwrap()
    };
    for _ in 0..50 {
        if spent() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(spent(), 0, "the spent id was never forgotten");
    app.clock.set(now);
    let (status, reply, headers) = post_license(&app, Some(&token), &body).await;
    assert_error(status, &reply, &headers, 403, "token_reused");
    assert_eq!(app.log_rows(), 1);
    // A fresh single-use token is still good.
    let fresh = app.token(
        &[KID_A],
        json!({ "license_server": { "access_control": { "prevent_drm_message_reuse": true } } }),
    );
    let (status, _, _) = post_license(&app, Some(&fresh), &body).await;
    assert_eq!(status, 200);
}

/// CORS never hands keys to the `null` origin, and grants credentials only to
/// origins the configuration names.
#[actix_web::test]
async fn cors_never_grants_null_and_credentials_only_to_named_origins() {
    for allowed in [
        vec!["*".to_owned()],
        vec!["*".to_owned(), "http://portal.local".to_owned()],
    ] {
        let app = spawn_app_with(|c| c.license.allowed_origins = allowed.clone()).await;
        let token = app.token(&[KID_A], json!({}));
        let send = |origin: &'static str| {
            client()
                .post(app.url("/clearkey"))
                .insert_header(("Origin", origin))
                .insert_header(("X-AxDRM-Message", token.clone()))
                .send_body(clearkey_body(&[KID_A], "temporary"))
        };
        let null = send("null").await.unwrap();
        assert_cors(null.headers(), "null", false, false);
        let preflight = client()
            .request(awc::http::Method::OPTIONS, app.url("/clearkey"))
            .insert_header(("Origin", "null"))
            .insert_header(("Access-Control-Request-Method", "POST"))
            .send()
            .await
            .unwrap();
        assert_cors(preflight.headers(), "null", false, false);
        let other = send("http://evil.example").await.unwrap();
        assert_cors(other.headers(), "http://evil.example", true, false);
        if allowed.len() > 1 {
            let portal = send("http://portal.local").await.unwrap();
            assert_cors(portal.headers(), "http://portal.local", true, true);
        }
    }
}

/// One token looped from one address is cut to the limit by default; many
/// tokens from one address, or one token from many addresses, are not.
#[actix_web::test]
async fn a_token_replayed_in_a_loop_counts_at_most_sixty() {
    let app = spawn_app().await;
    let token = app.token(&[KID_A], json!({}));
    let body = clearkey_body(&[KID_A], "temporary");
    let started = std::time::Instant::now();
    let mut ok = 0;
    for _ in 0..300 {
        let (status, reply, headers) = post_license(&app, Some(&token), &body).await;
        match status {
            200 => ok += 1,
            _ => {
                assert_error(status, &reply, &headers, 429, "rate_limited");
                assert!(headers.get("retry-after").is_some());
            }
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the loop took {:?}",
        started.elapsed()
    );
    assert!(ok <= 60, "{ok} of 300 looped requests were licensed");
    assert!(ok >= 40, "the burst is 40: {ok}");
    assert_eq!(app.log_rows(), ok);
    // 200 passengers' own tokens from this same address are not limited.
    for _ in 0..200 {
        let (status, reply, _) = post_license(&app, Some(&app.token(&[KID_A], json!({}))), &body).await;
        assert_eq!(status, 200, "{reply}");
    }
}

/// One token shared by a fleet of seatbacks, each at its own address (here
/// 850 loopback addresses), is not limited.
#[actix_web::test]
async fn one_token_from_many_addresses_is_not_limited() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = spawn_app().await;
    let token = app.token(&[KID_A], json!({}));
    let body = clearkey_body(&[KID_A], "temporary");
    for seat in 0..850u32 {
        let from = std::net::Ipv4Addr::new(127, 0, 1 + (seat / 250) as u8, 1 + (seat % 250) as u8);
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((from, 0).into()).unwrap();
        let mut stream = socket.connect(app.addr).await.unwrap();
        let request = format!(
            "POST /clearkey HTTP/1.1\r\nHost: berth\r\nConnection: close\r\nX-AxDRM-Message: {token}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "seat {seat} from {from}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    assert_eq!(app.log_rows(), 850);
}

/// An HLS key fetched again and again with one token (video.js fetches it for
/// every segment) is delivered each time and counted once; the repeats show in
/// `stats` and the report, and a single-use token still cannot repeat.
#[actix_web::test]
async fn hls_key_fetched_again_is_delivered_and_counted_once() {
    let app = spawn_app().await;
    app.installed_at(app.clock_now() - time::Duration::days(40));
    let token = app.token(&[KID_A], json!({}));
    let fetch = |token: String, kid: &'static str| {
        let url = app.url(&format!("/hls/key/{kid}?token={token}"));
        async move {
            let mut res = client().get(url).send().await.unwrap();
            (res.status().as_u16(), res.body().await.unwrap().to_vec())
        }
    };
    for _ in 0..30 {
        let (status, key) = fetch(token.clone(), KID_A).await;
        assert_eq!(status, 200);
        assert_eq!(key, KEY_A);
    }
    assert_eq!(
        app.log_rows(),
        1,
        "30 fetches of one key with one token are one license"
    );
    // Another key with the same token, and the same key with another token,
    // are licenses of their own.
    let both = app.token(&[KID_A, KID_B], json!({}));
    for kid in [KID_A, KID_B, KID_A] {
        assert_eq!(fetch(both.clone(), kid).await.0, 200);
    }
    assert_eq!(app.log_rows(), 3);
    let single = app.token(
        &[KID_A],
        json!({ "license_server": { "access_control": { "prevent_drm_message_reuse": true } } }),
    );
    assert_eq!(fetch(single.clone(), KID_A).await.0, 200);
    assert_eq!(fetch(single, KID_A).await.0, 403);
    assert_eq!(app.log_rows(), 4);

    let out = app.berth(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["counts"]["licenses"], 4);
    assert_eq!(stats["counts"]["repeat_fetches"], 30);
    let out = app.berth(&["stats"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("repeat key fetches:     30"));
    let month = berth::ids::Month::of(app.clock_now()).to_string();
    let out = app.berth(&[
        "report",
        "export",
        "--month",
        &month,
        "--partial",
        "--out",
        app.dir.path().to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exported: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(exported["report"]["counts"]["licenses"], 4);
    assert_eq!(exported["report"]["repeat_fetches"], 30);
}

/// `berth init --secrets-file` (what the Debian package's postinst runs) puts
/// the communication secret and crew password in a new 0600 file and prints
/// neither.
#[test]
fn init_writes_its_secrets_to_a_private_file_and_prints_none() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let secrets = dir.path().join("initial-secrets");
    // `berth init` of a ship into `data`, its secrets to `secrets`.
    let init = |data: &std::path::Path, id: &str, secrets: &std::path::Path| {
        berth(&[
            "init",
            "--data-dir",
            data.to_str().unwrap(),
            "--installation-id",
            id,
            "--vessel-type",
            "ship",
            "--vessel-name",
            "MS Test",
            "--secrets-file",
            secrets.to_str().unwrap(),
        ])
    };
    let out = init(&data, "deb-1", &secrets);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let text = std::fs::read_to_string(&secrets).unwrap();
    assert_eq!(
        std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("{name} in {text}"))
            .to_owned()
    };
    let (secret, password) = (value("communication_secret"), value("crew_password"));
    assert!(secret.len() >= 43 && password.len() >= 12);
    assert!(
        !printed.contains(&secret) && !printed.contains(&password),
        "{printed}"
    );
    assert!(printed.contains(secrets.to_str().unwrap()), "{printed}");
    // The secret in the file is the one berth verifies tokens with.
    let id = value("communication_key_id");
    let out = berth(&[
        "token",
        "mint",
        "--data-dir",
        data.to_str().unwrap(),
        "--kid",
        KID_A,
        "--com-key-id",
        &id,
    ]);
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let payload = token.trim().split('.').nth(1).unwrap();
    let signing_input = &token.trim()[..token.trim().rfind('.').unwrap()];
    let resigned = sign_with(
        &base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &secret).unwrap(),
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap(),
        )
        .unwrap(),
    );
    assert_eq!(
        resigned.rsplit('.').next(),
        token.trim().rsplit('.').next(),
        "{signing_input}"
    );
    // An existing file is never overwritten, and nothing is created then.
    let again = dir.path().join("again");
    let out = init(&again, "deb-2", &secrets);
    assert_eq!(out.status.code(), Some(1));
    assert!(!again.join("berth.db").exists());
}

/// A communication secret is never taken from the command line: `comkey add`
/// reads it from standard input or a file.
#[actix_web::test]
async fn comkey_add_reads_the_secret_from_standard_input_never_the_command_line() {
    use std::io::Write as _;
    let app = spawn_app().await;
    let secret = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [9u8; 32]);
    let id = "33333333-4444-4555-8666-777777777777";
    let out = app.berth(&["comkey", "add", "--id", id, "--secret", &secret]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--secret-file") && !stderr.contains(&secret),
        "{stderr}"
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "comkey",
            "add",
            "--id",
            id,
            "--data-dir",
            app.data_dir().to_str().unwrap(),
        ])
        .env_remove("BERTH_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{secret}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    app.server().service().keys().reload().await;
    let mut payload = app.payload(&[KID_A], json!({}));
    payload["com_key_id"] = id.into();
    let token = sign_hs256(&[9u8; 32], &payload);
    let (status, body, _) = license_a(&app, &token).await;
    assert_eq!(status, 200, "{body}");
}

/// Reports leave only over HTTPS: an `http://` upload URL is refused by the
/// configuration check and by `report upload`, unless explicitly allowed.
#[actix_web::test]
async fn upload_refuses_plain_http_unless_explicitly_allowed() {
    let app = spawn_app().await;
    let config = app.dir.path().join("plain.toml");
    std::fs::write(&config, "[upload]\nurl = \"http://127.0.0.1:9/incoming/\"\n").unwrap();
    for args in [vec!["report", "upload"], vec!["config", "show"]] {
        let out = app.berth(&[&args[..], &["--config", config.to_str().unwrap()]].concat());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("upload.url") && stderr.contains("https://"),
            "{args:?}: {stderr}"
        );
    }
    std::fs::write(
        &config,
        "[upload]\nurl = \"http://127.0.0.1:9/incoming/\"\nallow_plain_http = true\nretry_min_secs = 1\n",
    )
    .unwrap();
    let out = app.berth(&["config", "show", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Deleting the newest rows of the log (the triggers dropped, as root can)
/// leaves an intact chain; `log verify` compares the log with the reports
/// exported from it, recorded and on disk, and names the loss.
#[actix_web::test]
async fn log_verify_notices_rows_removed_from_the_end_that_a_report_covered() {
    let app = spawn_app().await;
    let month = berth::ids::Month::of(app.clock_now()).previous();
    app.installed_at(month.start());
    app.clock.set(month.start() + time::Duration::days(3));
    for _ in 0..3 {
        licensed(&app).await;
    }
    app.clock.set(month.end() + time::Duration::hours(1));
    let out = app.berth(&["report", "export", "--month", &month.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = app.berth(&["log", "verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    app.tamper("DROP TRIGGER IF EXISTS license_log_no_delete; DELETE FROM license_log WHERE seq = 3;");
    let out = app.berth(&["log", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rows were removed from the end"), "{stderr}");
    // With the report's record gone too, its file still tells.
    app.tamper("DELETE FROM reports;");
    let out = app.berth(&["log", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("report file") && stderr.contains("rows were removed from the end"),
        "{stderr}"
    );
}

/// Rows deleted back past a checkpoint the box signed, with no report to
/// tell: the checkpoint still in `checkpoints/` names the loss.
#[actix_web::test]
async fn log_verify_notices_rows_removed_back_past_a_checkpoint() {
    let app = spawn_app().await;
    for _ in 0..4 {
        licensed(&app).await;
    }
    let out = app.berth(&["log", "checkpoint"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(app.berth(&["log", "verify"]).status.success());
    app.tamper("DROP TRIGGER IF EXISTS license_log_no_delete; DELETE FROM license_log WHERE seq >= 3;");
    let out = app.berth(&["log", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("checkpoint") && stderr.contains("rows were removed from the end"),
        "{stderr}"
    );
}

/// Signs in at the crew listener `admin` as `user` with a wrong password,
/// through the form (its cookie and nonce): the status.
async fn sign_in_as(admin: &str, user: &str) -> u16 {
    let mut res = client().get(format!("{admin}/login")).send().await.unwrap();
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("berth_login="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    let nonce = between(&page, "name=\"nonce\" value=\"", "\"").to_owned();
    let res = client()
        .post(format!("{admin}/login"))
        .insert_header(("Cookie", cookie))
        .send_form(&[("user", user), ("password", "guess"), ("nonce", nonce.as_str())])
        .await
        .unwrap();
    res.status().as_u16()
}

/// A token's field name and a sign-in user name carrying a newline and a
/// genuine-looking log line stay inside one escaped line of `berth serve`'s
/// log; no forged line appears.
#[actix_web::test]
async fn outside_text_cannot_forge_a_log_line() {
    use std::io::BufRead as _;
    let mut app = spawn_app().await;
    app.stop().await;
    let log_path = app.dir.path().join("serve.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(serve_args(app.data_dir()))
        .env_remove("BERTH_CONFIG")
        .env_remove("JOURNAL_STREAM")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // berth serve prints each listener's address last on its line.
    let mut address = || {
        lines
            .next()
            .unwrap()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    let (license, admin) = (address(), address());
    let forged =
        "FORGED INFO berth::license: outcome=\"ok\" key_system=\"clearkey\" kids=1 seq=1 latency_us=9";
    let mut payload = app.payload(&[], json!({}));
    payload["message"]["content_keys_source"] = json!({ "license_request": { format!("x\n{forged}"): 1 } });
    let token = app.sign(&payload);
    let mut res = client()
        .post(format!("{license}/clearkey"))
        .insert_header(("X-AxDRM-Message", token))
        .send_body(clearkey_body(&[KID_A], "temporary"))
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let _ = res.body().await;
    // The sign-in form, with the user name carrying the forged line.
    assert_eq!(sign_in_as(&admin, &format!("crew\r\n{forged}")).await, 401);
    assert!(terminate(child).success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    let carrying: Vec<&str> = log.lines().filter(|l| l.contains("FORGED")).collect();
    assert_eq!(carrying.len(), 2, "{log}");
    for line in carrying {
        assert!(!line.starts_with("FORGED"), "a forged line: {line}");
        assert!(line.contains("\\nFORGED"), "the newline is escaped: {line}");
        assert!(
            !line.contains(" outcome=\"ok\""),
            "a stranger's text is quoted: {line}"
        );
    }
}

/// While any origin may call the license API, the crew dashboard says so;
/// with the portal's origin named it does not.
#[actix_web::test]
async fn the_dashboard_warns_while_any_page_may_fetch_keys() {
    for (origins, warned) in [
        (vec!["*".to_owned()], true),
        (vec!["https://portal.example".to_owned()], false),
    ] {
        let app = spawn_admin_app_with(|c| c.license.allowed_origins = origins.clone()).await;
        let cookie = crate::helpers::session(&app).await;
        let (status, page) = crate::helpers::get(&app, &cookie, "/").await;
        assert_eq!(status, 200);
        assert_eq!(page.contains("id=\"any-origin\""), warned, "{origins:?}");
        assert_eq!(
            page.contains("any web page may fetch keys"),
            warned,
            "{origins:?}"
        );
    }
}
