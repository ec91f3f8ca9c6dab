//! The crew admin UI: sign-in, sessions, CSRF, rate limits, the dashboard and
//! metrics, over real HTTP on the admin listener.

use awc::http::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[actix_web::test]
async fn sign_in_sets_a_strict_http_only_session() {
    let app = spawn_admin_app().await;
    let res = sign_in(&app, "admin", "wrong password").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(res.headers(), "berth_session").is_none());

    let res = sign_in(&app, "admin", &app.admin_password).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let set = set_cookie(res.headers(), "berth_session").unwrap();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(set.contains("Path=/"), "{set}");

    // A sign-in without the form's nonce is refused.
    let res = crew_client()
        .post(app.admin_url("/login"))
        .send_form(&[
            ("user", "admin"),
            ("password", app.admin_password.as_str()),
            ("nonce", "forged"),
        ])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

/// A crew UI path asked with a method it does not take is 405 naming the
/// ones it does (RFC 9110, 15.5.6), on an HTML page with the UI's security
/// headers; an address that does not exist stays 404.
#[actix_web::test]
async fn a_wrong_method_on_a_page_is_405_with_allow() {
    let app = spawn_admin_app().await;
    let client = crew_client();
    for (method, path, allow) in [
        ("GET", "/logout", "POST"),
        ("PUT", "/login", "GET, HEAD, POST"),
        ("DELETE", "/", "GET, HEAD"),
        ("GET", "/keys/import", "POST"),
        ("POST", "/log.csv", "GET, HEAD"),
        ("POST", "/reports/1/download", "GET, HEAD"),
        ("GET", "/users/remove", "POST"),
        ("HEAD", "/users/remove", "POST"),
        ("POST", "/metrics", "GET, HEAD"),
    ] {
        let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut res = client
            .request(method.clone(), app.admin_url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(res.headers().get("allow").unwrap(), allow, "{method} {path}");
        assert_eq!(
            res.headers().get("x-frame-options").unwrap(),
            "DENY",
            "{method} {path}"
        );
        assert!(
            content_type(res.headers()).starts_with("text/html"),
            "{method} {path}"
        );
        let body = res.body().await.unwrap();
        let body = std::str::from_utf8(&body).unwrap();
        assert_eq!(
            body.contains(&format!("takes {allow} requests only")),
            method != "HEAD",
            "{method} {path}: {body}"
        );
    }
    let res = client.post(app.admin_url("/no/such/page")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// Every page answers `HEAD` as it answers `GET` (RFC 9110, 9.1: status and
/// head), and nothing after the head: read off the socket, as a monitoring
/// probe would.
#[actix_web::test]
async fn head_on_a_page_is_its_get_without_a_body() {
    let app = spawn_admin_app().await;
    let cookie = session(&app).await;
    let addr = app.admin_url("").trim_start_matches("http://").to_owned();
    for (path, signed_in, status) in [
        ("/login", false, 200),
        ("/", false, 303),
        ("/", true, 200),
        ("/dashboard.json", true, 200),
        ("/keys", true, 200),
        ("/keys/delivery-cert.pem", true, 200),
        ("/log", true, 200),
        ("/log.csv", true, 200),
        ("/reports", true, 200),
        ("/reports/99/download", true, 404),
        ("/comkeys", true, 200),
        ("/users", true, 200),
        ("/static/admin.css", false, 200),
        ("/metrics", true, 200),
        ("/metrics", false, 401),
    ] {
        let cookie = if signed_in { cookie.as_str() } else { "" };
        let (get_head, _) = raw_request(&addr, "GET", path, cookie).await;
        let (head_head, after) = raw_request(&addr, "HEAD", path, cookie).await;
        let status_line = |head: &str| head.lines().next().unwrap_or("").to_owned();
        assert!(
            status_line(&get_head).starts_with(&format!("HTTP/1.1 {status} ")),
            "GET {path}: {get_head}"
        );
        assert_eq!(status_line(&head_head), status_line(&get_head), "HEAD {path}");
        for name in [
            "content-type",
            "content-length",
            "transfer-encoding",
            "content-disposition",
            "x-frame-options",
            "location",
        ] {
            assert_eq!(
                header_line(&head_head, name),
                header_line(&get_head, name),
                "HEAD {path}: {name}"
            );
        }
        assert!(after.is_empty(), "HEAD {path} sent a body: {after:?}");
    }
}

/// One request on a connection of its own, read to its end: (the head, what
/// came after it).
async fn raw_request(addr: &str, method: &str, path: &str, cookie: &str) -> (String, Vec<u8>) {
    use std::io::{Read as _, Write as _};
    let (addr, request) = (
        addr.to_owned(),
        format!("{method} {path} HTTP/1.1\r\nHost: berth\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"),
    );
    actix_web::rt::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).unwrap();
        let end = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a whole head")
            + 4;
        (
            String::from_utf8_lossy(&answer[..end]).into_owned(),
            answer[end..].to_vec(),
        )
    })
    .await
    .unwrap()
}

/// A header's line in a raw head, by its lowercase name.
fn header_line(head: &str, name: &str) -> Option<String> {
    head.lines()
        .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
        .map(str::to_owned)
}

#[actix_web::test]
async fn pages_need_a_session() {
    let app = spawn_admin_app().await;
    let res = crew_client().get(app.admin_url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers().get("location").unwrap(), "/login");
    let res = crew_client()
        .get(app.admin_url("/dashboard.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = crew_client()
        .get(app.admin_url("/"))
        .insert_header(("Cookie", "berth_session=forged-session-id"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = crew_client()
        .get(app.admin_url("/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn the_dashboard_counts_what_the_license_api_delivered() {
    let app = spawn_admin_app().await;
    for user in ["a", "b", "a"] {
        let token = app.token(&[KID_A], json!({ "session": { "user_id": user } }));
        assert_eq!(
            post_license(&app, Some(&token), &clearkey_body(&[KID_A], "temporary"))
                .await
                .0,
            200
        );
    }
    let (s, _, _) = post_license(&app, None, &clearkey_body(&[KID_A], "temporary")).await;
    assert_eq!(s, 401);
    let cookie = session(&app).await;
    let mut res = crew_client()
        .get(app.admin_url("/"))
        .insert_header(("Cookie", cookie.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers().get("x-frame-options").unwrap(), "DENY");
    assert!(res.headers().get("content-security-policy").is_some());
    let body = String::from_utf8(res.body().limit(1 << 20).await.unwrap().to_vec()).unwrap();
    assert_eq!(
        between(&body, "id=\"licenses\" data-month=\"", "<")
            .split_once("\">")
            .unwrap()
            .1,
        "3"
    );
    assert!(
        body.contains(&format!(
            "<td><code>{KID_A}</code></td><td>A</td><td>delivered</td>"
        )),
        "the last licenses show the KID's label"
    );
    assert_eq!(between(&body, "id=\"active-users\">", "<"), "2");
    assert!(
        body.contains("<tr><td><code class=\"nowrap\">token_missing</code></td><td>1</td><td>The player sent no license token"),
        "refusals by code, with what they mean"
    );
    assert!(body.contains("room for about") || body.contains("room for more than ten years"));
    assert!(body.contains("Test Aircraft") && body.contains("test-vessel"));
    assert!(body.contains("<svg id=\"chart\""));
    assert!(body.contains("<label for=\"user\">") || !body.contains("<input id=\"user\""));

    let mut res = crew_client()
        .get(app.admin_url("/dashboard.json"))
        .insert_header(("Cookie", cookie))
        .send()
        .await
        .unwrap();
    let data: serde_json::Value = res.json().limit(1 << 20).await.unwrap();
    assert_eq!(data["counts"]["licenses"], 3);
    assert_eq!(data["last_licenses"].as_array().unwrap().len(), 3);
    assert_eq!(data["last_licenses"][0]["titles"], "A", "the KID's label");
    assert_eq!(data["health"]["status"], "ok");
    assert!(data["disk_free_bytes"].as_u64().unwrap() > 0);
    assert_eq!(data["denials"][0]["code"], "token_missing");
    assert_eq!(data["denials"][0]["count"], 1);
    assert!(
        data["denials"][0]["meaning"]
            .as_str()
            .unwrap()
            .contains("no license token")
    );
    assert!(
        data["disk_days_left"].as_u64().is_some(),
        "an estimate once the month has a license"
    );
}

#[actix_web::test]
async fn markup_from_the_database_is_escaped() {
    let app = spawn_admin_app().await;
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    conn.execute(
        "UPDATE installation SET vessel_name = '<script>alert(1)</script>'",
        [],
    )
    .unwrap();
    conn.execute(
        "UPDATE content_keys SET label = '<img src=x onerror=alert(2)>'",
        [],
    )
    .unwrap();
    drop(conn);
    licensed(&app).await;
    let cookie = session(&app).await;
    let mut res = crew_client()
        .get(app.admin_url("/"))
        .insert_header(("Cookie", cookie))
        .send()
        .await
        .unwrap();
    let body = String::from_utf8(res.body().limit(1 << 20).await.unwrap().to_vec()).unwrap();
    assert!(!body.contains("<script>alert(1)</script>"));
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!body.contains("<img src=x"), "a label is text, never markup");
    assert!(body.contains("<td>&lt;img src=x onerror=alert(2)&gt;</td>"));
}

#[actix_web::test]
async fn sign_out_needs_the_csrf_token_and_ends_the_session() {
    let app = spawn_admin_app().await;
    let cookie = session(&app).await;
    let mut res = crew_client()
        .get(app.admin_url("/"))
        .insert_header(("Cookie", cookie.clone()))
        .send()
        .await
        .unwrap();
    let body = String::from_utf8(res.body().limit(1 << 20).await.unwrap().to_vec()).unwrap();
    let csrf = between(&body, "name=\"csrf\" value=\"", "\"").to_owned();
    let res = crew_client()
        .post(app.admin_url("/logout"))
        .insert_header(("Cookie", cookie.clone()))
        .send_form(&[("csrf", "wrong")])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = crew_client()
        .post(app.admin_url("/logout"))
        .insert_header(("Cookie", cookie.clone()))
        .send_form(&[("csrf", csrf.as_str())])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = crew_client()
        .get(app.admin_url("/"))
        .insert_header(("Cookie", cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "the old session is gone");
}

#[actix_web::test]
async fn sign_ins_are_rate_limited() {
    let app = spawn_admin_app().await;
    for _ in 0..5 {
        assert_eq!(
            sign_in(&app, "admin", "guess").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Even the right password waits now.
    assert_eq!(
        sign_in(&app, "admin", &app.admin_password).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[actix_web::test]
async fn metrics_in_prometheus_format() {
    let token_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token_file.path(), "prometheus-scrape-token-1234\n").unwrap();
    let path = token_file.path().to_owned();
    let app = spawn_admin_app_with(|c| c.admin.metrics_token_file = path).await;
    // Neither a stranger nor a wrong token reads the metrics.
    for auth in [
        None,
        Some("Bearer wrong-token-wrong-token"),
        Some("Basic cHJvbTpwcm9t"),
    ] {
        let mut req = crew_client().get(app.admin_url("/metrics"));
        if let Some(auth) = auth {
            req = req.insert_header(("Authorization", auth));
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(res.headers().get("www-authenticate").is_some());
    }
    // A crew session does.
    let cookie = session(&app).await;
    assert_eq!(get(&app, &cookie, "/metrics").await.0, 200);
    licensed(&app).await;
    let (s, _, _) = post_license(&app, Some("bad"), &clearkey_body(&[KID_A], "temporary")).await;
    assert_eq!(s, 401);
    let mut res = crew_client()
        .get(app.admin_url("/metrics"))
        .insert_header(("Authorization", "Bearer prometheus-scrape-token-1234"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    assert!(
        text.contains("berth_license_requests_total{key_system=\"clearkey\",outcome=\"ok\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("berth_license_requests_total{key_system=\"clearkey\",outcome=\"token_invalid\"} 1"),
        "{text}"
    );
    assert!(text.contains("berth_license_latency_seconds_count 2"), "{text}");
    assert!(text.contains("berth_log_queue_depth 0"));
    assert!(
        text.contains("# TYPE berth_log_commit_duration_seconds histogram\n"),
        "{text}"
    );
    assert!(
        text.contains("berth_log_commit_duration_seconds_count 1\n"),
        "{text}"
    );
    assert!(text.contains("berth_database_bytes "));
    let free = text
        .lines()
        .find_map(|l| l.strip_prefix("berth_disk_free_bytes "))
        .expect("free disk space");
    assert!(free.parse::<u64>().unwrap() > 0);
    // The license listener never serves the admin UI.
    for path in ["/login", "/metrics", "/dashboard.json", "/static/admin.js"] {
        assert_eq!(
            crew_client().get(app.url(path)).send().await.unwrap().status(),
            404,
            "{path}"
        );
    }
}

/// The keys page lists KIDs and never a key; an import without the CSRF
/// token is 403 and a broken file 422, each importing nothing; a key of
/// sixteen zero bytes is imported with a warning on the page.
#[actix_web::test]
async fn the_keys_page_never_shows_a_key_and_refuses_bad_imports_clearly() {
    let app = spawn_admin_app().await;
    let cookie = session(&app).await;
    let body = page(&app, &cookie, "/keys").await;
    assert!(body.contains(KID_A) && body.contains("Content keys (2)"));
    assert!(!body.contains("11111111111111111111111111111111"), "never a key");
    assert!(
        body.contains("<td>0</td><td>never</td>"),
        "not licensed yet: {body}"
    );
    let csrf = between(&body, "name=\"csrf\" value=\"", "\"").to_owned();
    let file = json!({ "keys": [ { "kid": KID_E, "key": "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf" } ] }).to_string();
    let (status, _) = import_keys(&app, &cookie, "nope", &file).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let broken = "{\"keys\":[{\"kid\":\"x\"}]}";
    let (status, text) = import_keys(&app, &cookie, &csrf, broken).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text.contains("Nothing was imported"), "{text}");
    assert!(!page(&app, &cookie, "/keys").await.contains(KID_E));

    let zeros = "{\"keys\":[{\"kid\":\"00000000-1111-4222-8333-444444444444\",\"key\":\"00000000000000000000000000000000\"}]}";
    let (status, zero_text) = import_keys(&app, &cookie, &csrf, zeros).await;
    assert_eq!(status, 200);
    assert!(
        zero_text.contains(
            "Imported 1 new key (0 already present). Warning: key 00000000-1111-4222-8333-444444444444 is all zeros"
        ),
        "{zero_text}"
    );

    // The import's own form limit, not the UI's 16 KiB: 400 keys, about 50 KB.
    let keys: Vec<_> = (0..400u32)
        .map(|i| json!({ "kid": format!("{i:08x}-2222-4222-8333-444444444444"), "key": format!("{:032x}", u128::from(i) + 1) }))
        .collect();
    let file = json!({ "keys": keys }).to_string();
    assert!(file.len() > 32 * 1024);
    let (status, text) = import_keys(&app, &cookie, &csrf, &file).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("Imported 400 new keys"), "{text}");
}

/// Posts a key file to the keys page's import form.
async fn import_keys(app: &TestApp, cookie: &str, csrf: &str, file: &str) -> (StatusCode, String) {
    post(app, cookie, "/keys/import", &[("csrf", csrf), ("content", file)]).await
}

const KID_E: &str = "33333333-4444-4555-8666-777777777777";

/// A key an admin imports is handed out at once (its label escaped on the
/// page), and one removed is refused at once.
#[actix_web::test]
async fn admins_import_and_remove_keys_and_players_get_them_at_once() {
    let app = spawn_admin_app().await;
    let cookie = session(&app).await;
    let csrf = csrf(&page(&app, &cookie, "/keys").await);
    let file = json!({ "keys": [ { "kid": KID_E, "key": "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf", "label": "<b>film</b>" } ] }).to_string();
    let (status, text) = import_keys(&app, &cookie, &csrf, &file).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("Imported 1 new key (0 already present).</"),
        "{text}"
    );
    assert!(text.contains("&lt;b&gt;film&lt;/b&gt;"), "labels are escaped");
    let token = app.token(&[KID_E], json!({}));
    assert_eq!(
        post_license(&app, Some(&token), &clearkey_body(&[KID_E], "temporary"))
            .await
            .0,
        200
    );

    let (status, _) = post(&app, &cookie, "/keys/remove", &[("csrf", &csrf), ("kid", KID_E)]).await;
    assert_eq!(status, 200);
    let mut status = 0;
    for _ in 0..20 {
        status = post_license(&app, Some(&token), &clearkey_body(&[KID_E], "temporary"))
            .await
            .0;
        if status == 403 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 403, "a removed key is no longer handed out");
}

#[actix_web::test]
async fn viewers_see_keys_but_cannot_change_them() {
    let app = spawn_admin_app().await;
    let out = app.berth(&["user", "add", "maria", "--role", "viewer", "--json"]);
    let password = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = sign_in(&app, "maria", &password).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = format!(
        "berth_session={}",
        cookie_value(&set_cookie(res.headers(), "berth_session").unwrap())
    );
    let body = page(&app, &cookie, "/keys").await;
    assert!(body.contains(KID_A));
    assert!(
        !body.contains("action=\"/keys/import\""),
        "no import form for viewers"
    );
    let csrf = between(&body, "name=\"csrf\" value=\"", "\"").to_owned();
    let res = crew_client()
        .post(app.admin_url("/keys/remove"))
        .insert_header(("Cookie", cookie))
        .send_form(&[("csrf", csrf.as_str()), ("kid", KID_A)])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    licensed(&app).await;
}

/// The UI's stylesheet and icon are compiled in and served, so a browser's
/// console stays clean; every page links them.
#[actix_web::test]
async fn the_stylesheet_and_icon_are_served() {
    let app = spawn_admin_app().await;
    for (path, kind) in [
        ("/static/admin.css", "text/css"),
        ("/static/icon.svg", "image/svg+xml"),
        ("/favicon.ico", "image/svg+xml"),
    ] {
        let mut res = crew_client().get(app.admin_url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(content_type(res.headers()).starts_with(kind), "{path}");
        assert!(!res.body().await.unwrap().is_empty());
    }
    let mut res = crew_client().get(app.admin_url("/login")).send().await.unwrap();
    let page = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    assert!(
        page.contains(r#"<link rel="stylesheet" href="/static/admin.css">"#),
        "{page}"
    );
    assert!(
        page.contains(r#"<link rel="icon" href="/static/icon.svg" type="image/svg+xml">"#),
        "{page}"
    );
}
