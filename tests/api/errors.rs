//! Every error code of SPEC section 4, each triggered by a real request: status,
//! JSON code, header message, CORS on errors, and never a log row.

use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn bad_requests() {
    let app = spawn_app().await;
    let token = app.token(&[KID_A], json!({}));
    for body in [
        "{".to_owned(),
        "{}".to_owned(),
        r#"{"kids":[]}"#.to_owned(),
        r#"{"kids":["not base64 at all!"]}"#.to_owned(),
        r#"{"kids":["AAAA"]}"#.to_owned(),
        json!({ "kids": vec![b64url_kid(KID_A); 65] }).to_string(),
        r#"{"kids":[1,2,3]}"#.to_owned(),
        String::new(),
    ] {
        let (status, answer, headers) = post_license(&app, Some(&token), &body).await;
        assert_error(status, &answer, &headers, 400, "bad_request");
    }
    for path in [
        "/hls/key/xyz",
        "/hls/key/9eb4050d",
        "/hls/key/9eb4050de44b4802932e27d75083e26600",
    ] {
        let mut res = client().get(app.url(path)).send().await.unwrap();
        let body: serde_json::Value = res.json().await.unwrap();
        assert_error(res.status().as_u16(), &body, res.headers(), 400, "bad_request");
    }
    assert_eq!(app.log_rows(), 0);
}

#[actix_web::test]
async fn token_errors() {
    let app = spawn_app().await;
    let body = clearkey_body(&[KID_A], "temporary");
    let (s, b, h) = post_license(&app, None, &body).await;
    assert_error(s, &b, &h, 401, "token_missing");

    let (s, b, h) = post_license(&app, Some("not.a.token"), &body).await;
    assert_error(s, &b, &h, 401, "token_invalid");

    let mut unknown = app.payload(&[KID_A], json!({}));
    unknown["com_key_id"] = json!("0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f");
    let (s, b, h) = post_license(&app, Some(&app.sign(&unknown)), &body).await;
    assert_error(s, &b, &h, 401, "token_invalid");

    let now = time::OffsetDateTime::now_utc();
    let mut expired = app.payload(&[KID_A], json!({}));
    expired["expiration_date"] = json!(rfc3339(now - time::Duration::minutes(10)));
    let (s, b, h) = post_license(&app, Some(&app.sign(&expired)), &body).await;
    assert_error(s, &b, &h, 401, "token_expired");

    let early = app.payload(
        &[KID_A],
        json!({ "license": { "start_datetime": rfc3339(now + time::Duration::minutes(10)) } }),
    );
    let (s, b, h) = post_license(&app, Some(&app.sign(&early)), &body).await;
    assert_error(s, &b, &h, 401, "token_not_yet_valid");
    assert_eq!(app.log_rows(), 0);
}

#[actix_web::test]
async fn entitlement_denials() {
    let app = spawn_app().await;
    let token = app.token(&[KID_A], json!({}));
    let (s, b, h) = post_license(&app, Some(&token), &clearkey_body(&[KID_A, KID_B], "temporary")).await;
    assert_error(s, &b, &h, 403, "key_not_entitled");
    assert!(
        b["message"].as_str().unwrap().contains(KID_B),
        "names the KID: {b}"
    );

    let token = app.token(&[KID_UNKNOWN], json!({}));
    let (s, b, h) = post_license(&app, Some(&token), &clearkey_body(&[KID_UNKNOWN], "temporary")).await;
    assert_error(s, &b, &h, 403, "key_unknown");

    let token = app.token(&[KID_A], json!({ "license_server": { "access_control": { "allowed_ip_addresses": ["10.0.0.0/8", "fd00::/8"] } } }));
    let (s, b, h) = license_a(&app, &token).await;
    assert_error(s, &b, &h, 403, "ip_not_allowed");
    let token = app.token(
        &[KID_A],
        json!({ "license_server": { "access_control": { "allowed_ip_addresses": ["127.0.0.1"] } } }),
    );
    let (s, _, _) = license_a(&app, &token).await;
    assert_eq!(s, 200, "an allowed address gets its license");

    let token = app.token(
        &[KID_A],
        json!({ "license_server": { "access_control": { "concurrency_limit": 3 } } }),
    );
    let (s, b, h) = license_a(&app, &token).await;
    assert_error(s, &b, &h, 403, "unsupported_entitlement");
    assert!(
        b["message"].as_str().unwrap().contains("concurrency_limit"),
        "names the field: {b}"
    );

    let token = app.token(
        &[],
        json!({
            "content_keys_source": { "inline": [ { "id": KID_A, "usage_policy": "strict" } ] },
            "content_key_usage_policies": [ { "name": "strict", "playready": { "digital_video_protection_level": 300 } } ],
        }),
    );
    let (s, b, h) = license_a(&app, &token).await;
    assert_error(s, &b, &h, 403, "unsupported_entitlement");
    assert_eq!(app.log_rows(), 1);
}

#[actix_web::test]
async fn single_use_token_is_good_once() {
    let app = spawn_app().await;
    let token = app.token(
        &[KID_A],
        json!({ "license_server": { "access_control": { "prevent_drm_message_reuse": true } } }),
    );
    let body = clearkey_body(&[KID_A], "temporary");
    let (s, _, _) = post_license(&app, Some(&token), &body).await;
    assert_eq!(s, 200);
    let (s, b, h) = post_license(&app, Some(&token), &body).await;
    assert_error(s, &b, &h, 403, "token_reused");
    // Concurrent replays: exactly one more wins with a fresh token.
    let token = app.token(
        &[KID_A],
        json!({ "license_server": { "access_control": { "prevent_drm_message_reuse": true } } }),
    );
    let results = futures_join(&app, &token, &body, 20).await;
    assert_eq!(results.iter().filter(|s| **s == 200).count(), 1, "{results:?}");
    assert_eq!(results.iter().filter(|s| **s == 403).count(), 19);
    assert_eq!(app.log_rows(), 2);
}

async fn futures_join(app: &TestApp, token: &str, body: &str, n: usize) -> Vec<u16> {
    let mut handles = Vec::new();
    for _ in 0..n {
        let url = app.url("/clearkey");
        let token = token.to_owned();
        let body = body.to_owned();
        handles.push(actix_web::rt::spawn(async move {
            client()
                .post(url)
                .insert_header(("X-AxDRM-Message", token))
                .send_body(body)
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[actix_web::test]
async fn body_too_large() {
    let app = spawn_app().await;
    let token = app.token(&[KID_A], json!({}));
    let big = format!("{{\"kids\":[\"{}\"]}}", "A".repeat(70 * 1024));
    let (s, b, h) = post_license(&app, Some(&token), &big).await;
    assert_error(s, &b, &h, 413, "body_too_large");
    // Chunked, with no Content-Length to trust.
    let stream = futures_stream(vec![vec![b'{'; 40 * 1024], vec![b' '; 40 * 1024]]);
    let mut res = client()
        .post(app.url("/clearkey"))
        .insert_header(("X-AxDRM-Message", token.as_str()))
        .send_stream(stream)
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_error(res.status().as_u16(), &body, res.headers(), 413, "body_too_large");
    assert_eq!(app.log_rows(), 0);
}

fn futures_stream(
    chunks: Vec<Vec<u8>>,
) -> impl futures_core::Stream<Item = Result<actix_web::web::Bytes, std::io::Error>> + 'static {
    struct Chunks(std::collections::VecDeque<Vec<u8>>);
    impl futures_core::Stream for Chunks {
        type Item = Result<actix_web::web::Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.pop_front().map(|c| Ok(actix_web::web::Bytes::from(c))))
        }
    }
    Chunks(chunks.into())
}

#[actix_web::test]
async fn widevine_and_other_key_systems_are_501_and_not_counted() {
    let app = spawn_app().await;
    let token = app.token(&[KID_A], json!({}));
    let mut res = client()
        .post(app.url("/clearkey"))
        .insert_header(("X-AxDRM-Message", token.as_str()))
        .send_body(vec![0x08u8, 0x04])
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_error(
        res.status().as_u16(),
        &body,
        res.headers(),
        501,
        "key_system_unsupported",
    );
    let mut res = client()
        .post(app.url("/AcquireLicense"))
        .insert_header(("X-AxDRM-Message", token.as_str()))
        .send_body("<?xml version=\"1.0\"?><soap:Envelope/>")
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_error(
        res.status().as_u16(),
        &body,
        res.headers(),
        501,
        "key_system_unsupported",
    );
    assert_eq!(app.log_rows(), 0);
}

#[actix_web::test]
async fn rate_limited_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.license.rate_limit_per_second = 1.0;
        c.license.rate_limit_burst = 2;
    })
    .await;
    let token = app.token(&[KID_A], json!({}));
    let body = clearkey_body(&[KID_A], "temporary");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (s, b, h) = post_license(&app, Some(&token), &body).await;
        if s == 429 {
            assert_error(s, &b, &h, 429, "rate_limited");
            assert!(h.get("retry-after").is_some());
        }
        statuses.push(s);
    }
    assert_eq!(statuses[..2], [200, 200]);
    assert!(statuses[2..].contains(&429), "{statuses:?}");
    assert_eq!(
        app.log_rows(),
        statuses.iter().filter(|s| **s == 200).count() as i64
    );
}

/// One token is one client however it is spelled and wherever it is put:
/// white space around it, percent-encoding, each of the four places.
#[actix_web::test]
async fn the_rate_limit_counts_one_token_in_every_spelling_and_place() {
    let app = spawn_app_with(|c| {
        c.license.rate_limit_per_second = 0.01;
        c.license.rate_limit_burst = 5;
    })
    .await;
    let token = app.token(&[KID_A], json!({}));
    let body = clearkey_body(&[KID_A], "temporary");
    let percent: String = token.bytes().map(|b| format!("%{b:02X}")).collect();
    let spaces = ["", " ", "\t", "  \t ", "%20", "%09%20", "+", "%0A"];
    let mut statuses = Vec::new();
    for (i, pad) in spaces.iter().enumerate() {
        let plain = pad
            .replace("%20", " ")
            .replace("%09", "\t")
            .replace("%0A", " ")
            .replace('+', " ");
        let pad = pad.replace(' ', "%20").replace('\t', "%09");
        let requests = [
            client()
                .post(app.url("/clearkey"))
                .insert_header(("X-AxDRM-Message", format!("{plain}{token}{plain}"))),
            client()
                .post(app.url("/clearkey"))
                .insert_header(("Authorization", format!("Bearer {plain}{token}{plain}"))),
            client().post(app.url(&format!("/clearkey?AxDrmMessage={pad}{token}{pad}"))),
            client().post(app.url(&format!("/clearkey?token={pad}{percent}{}", "%20".repeat(i)))),
        ];
        for request in requests {
            let mut res = request.send_body(body.clone()).await.unwrap();
            let _ = res.body().await;
            statuses.push(res.status().as_u16());
        }
    }
    let granted = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(granted, 5, "the burst, and no more: {statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        statuses.len() - 5,
        "{statuses:?}"
    );
    assert_eq!(app.log_rows(), 5);
}

#[actix_web::test]
async fn locked_database_gives_503_and_no_key() {
    let app = spawn_app_with(|c| c.log.busy_timeout_ms = 200).await;
    let token = app.token(&[KID_A], json!({}));
    let body = clearkey_body(&[KID_A], "temporary");
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (s, b, h) = post_license(&app, Some(&token), &body).await;
    assert_error(s, &b, &h, 503, "log_unavailable");
    assert!(h.get("retry-after").is_some());
    assert!(b.get("keys").is_none());
    let mut health = client().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    let report: serde_json::Value = health.json().await.unwrap();
    assert!(
        report["database"].as_str().unwrap().contains("locked"),
        "{report}"
    );
    conn.execute_batch("ROLLBACK").unwrap();
    drop(conn);
    let (s, _, _) = post_license(&app, Some(&token), &body).await;
    assert_eq!(s, 200, "recovers once the lock is gone");
    assert_eq!(app.log_rows(), 1);
}

#[actix_web::test]
async fn errors_carry_cors_and_unknown_paths_are_json_404() {
    let app = spawn_app().await;
    let mut res = client()
        .post(app.url("/clearkey"))
        .insert_header(("Origin", "http://127.0.0.1:9000"))
        .send_body("{}")
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.headers().get("access-control-allow-origin").unwrap(),
        "http://127.0.0.1:9000"
    );
    assert_eq!(
        res.headers().get("access-control-expose-headers").unwrap(),
        "X-AxDRM-ErrorMessage"
    );
    let _ = res.body().await;
    for path in [
        "/",
        "/admin",
        "/login",
        "/metrics",
        "/keys",
        "/reports",
        "/static/app.css",
    ] {
        let mut res = client().get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "not_found");
    }
    // A 405 names the methods the path takes (RFC 9110, 15.5.6).
    for (method, path, allow) in [
        ("GET", "/clearkey", "POST, OPTIONS"),
        ("PUT", "/AcquireLicense", "POST, OPTIONS"),
        (
            "POST",
            "/hls/key/9eb4050de44b4802932e27d75083e266",
            "GET, OPTIONS",
        ),
        ("DELETE", "/fairplay/certificate", "GET, OPTIONS"),
        ("GET", "/fairplay/license", "POST, OPTIONS"),
        ("POST", "/healthz", "GET, HEAD"),
    ] {
        let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut res = client()
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{method} {path}");
        assert_eq!(res.headers().get("allow").unwrap(), allow, "{method} {path}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "method_not_allowed");
    }
}
