//! The crew UI, as a browser signs in and uses it.

use awc::http::StatusCode;

use super::*;

thread_local! {
    static NO_REDIRECTS: awc::Client = awc::Client::builder().disable_redirects().finish();
}

/// A client that shows redirects instead of following them.
pub fn crew_client() -> awc::Client {
    NO_REDIRECTS.with(Clone::clone)
}

/// The value of a Set-Cookie for `name`, with its attributes.
pub fn set_cookie(res: &awc::http::header::HeaderMap, name: &str) -> Option<String> {
    res.get_all("set-cookie")
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// A response's `Content-Type`, empty when it has none.
pub fn content_type(res: &awc::http::header::HeaderMap) -> &str {
    res.get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

pub fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

pub fn between<'a>(text: &'a str, before: &str, after: &str) -> &'a str {
    let start = text.find(before).expect(before) + before.len();
    &text[start..start + text[start..].find(after).expect(after)]
}

/// Fetches the login form: (nonce, nonce cookie).
pub async fn login_form(app: &TestApp) -> (String, String) {
    let mut res = crew_client().get(app.admin_url("/login")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let cookie = cookie_value(&set_cookie(res.headers(), "berth_login").expect("nonce cookie"));
    let body = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    (between(&body, "name=\"nonce\" value=\"", "\"").to_owned(), cookie)
}

pub async fn sign_in(
    app: &TestApp,
    user: &str,
    password: &str,
) -> awc::ClientResponse<
    impl futures_core::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>,
> {
    let (nonce, cookie) = login_form(app).await;
    crew_client()
        .post(app.admin_url("/login"))
        .insert_header(("Cookie", format!("berth_login={cookie}")))
        .send_form(&[("user", user), ("password", password), ("nonce", nonce.as_str())])
        .await
        .unwrap()
}

/// Signs in as the admin `init` created; returns the session cookie header.
pub async fn session(app: &TestApp) -> String {
    session_as(app, "admin", &app.admin_password).await
}

pub async fn page(app: &TestApp, cookie: &str, path: &str) -> String {
    let mut res = crew_client()
        .get(app.admin_url(path))
        .insert_header(("Cookie", cookie.to_owned()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    String::from_utf8(res.body().limit(1 << 20).await.unwrap().to_vec()).unwrap()
}

/// Signs in as `user`; returns the session cookie header.
pub async fn session_as(app: &TestApp, user: &str, password: &str) -> String {
    let res = sign_in(app, user, password).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "sign in as {user}");
    let set = set_cookie(res.headers(), "berth_session").expect("session cookie");
    format!("berth_session={}", cookie_value(&set))
}

/// Adds a crew user with the CLI; returns the password it printed.
pub fn add_user(app: &TestApp, name: &str, role: &str) -> String {
    let out = app.berth(&["user", "add", name, "--role", role, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["password"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A GET on the admin listener: (status, body).
pub async fn get(app: &TestApp, cookie: &str, path: &str) -> (StatusCode, String) {
    let mut res = crew_client()
        .get(app.admin_url(path))
        .insert_header(("Cookie", cookie.to_owned()))
        .send()
        .await
        .unwrap();
    let body = res.body().limit(64 << 20).await.unwrap().to_vec();
    (res.status(), String::from_utf8_lossy(&body).into_owned())
}

/// A form POST on the admin listener: (status, body).
pub async fn post(app: &TestApp, cookie: &str, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let mut res = crew_client()
        .post(app.admin_url(path))
        .insert_header(("Cookie", cookie.to_owned()))
        .send_form(&form)
        .await
        .unwrap();
    let body = res.body().limit(1 << 20).await.unwrap().to_vec();
    (res.status(), String::from_utf8_lossy(&body).into_owned())
}

/// The CSRF token on a page.
pub fn csrf(body: &str) -> String {
    between(body, "name=\"csrf\" value=\"", "\"").to_owned()
}
