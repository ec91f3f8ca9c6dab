//! The crew admin UI on its own listener (SPEC section 8): sign-in, sessions,
//! CSRF, a self-refreshing dashboard, keys, the license log, reports,
//! communication keys, crew accounts, and Prometheus metrics. Everything it
//! serves is compiled in; it works with no internet.
//!
//! Architecture Invariant: never mounted on the license listener. SQL only
//! through `store`; it reads the license path's health, never changes it.
//! Viewers read; every change needs an admin session and its CSRF token
//! ([`AdminAction`], the one extractor every form goes through). Pages come
//! from [`views`], typed and escaped at compile time.

mod accounts;
mod body;
mod keys;
mod log;
mod reports;
mod session;
mod views;

use std::collections::HashMap;
use std::net::{IpAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::dev::Server;
use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::crypto::MasterKey;
use crate::http::Outcomes;
use crate::ids::{Month, counted, format_instant};
use crate::license::LicenseService;
use crate::store::Db;

pub use session::Sessions;

/// What the admin handlers share.
pub struct AdminState {
    service: Arc<LicenseService>,
    outcomes: Arc<Outcomes>,
    db: Mutex<Db>,
    sessions: Sessions,
    data_dir: PathBuf,
    master: Arc<MasterKey>,
    /// Reports are uploaded by the server's report task (shown on the reports page).
    upload_configured: bool,
    /// Finished months are exported by the server's report task.
    auto_export: bool,
    /// Months of licenses the server keeps besides the current one (0: all).
    keep_months: u32,
    /// `[keys] cpix_signers`: CPIX imports must be signed by one of them.
    cpix_signers: Vec<PathBuf>,
    /// `report verify` results by report sequence, with the file's size and
    /// modification time they were computed for.
    verified: Mutex<HashMap<i64, reports::Verification>>,
    /// The listeners' TLS certificates, read at start (a new one takes a restart).
    certificates: Vec<Certificate>,
    /// `[license] allowed_origins` has `"*"`: any web page may fetch keys.
    any_origin: bool,
    /// The password thread (argon2id, one 19 MiB block, reused).
    passwords: session::PasswordChecks,
    /// The bearer token `/metrics` accepts besides a crew session.
    metrics_token: Option<String>,
}

/// A listener's TLS certificate, for the dashboard: an expired one makes
/// browsers refuse the listener, and a vessel offline cannot fetch a new one.
#[derive(Debug, Clone)]
pub struct Certificate {
    /// "License API" or "Admin UI".
    pub listener: &'static str,
    pub expires: time::OffsetDateTime,
}

impl Certificate {
    pub fn expires_soon(&self, now: time::OffsetDateTime) -> bool {
        self.expires - now < time::Duration::days(30)
    }
}

impl AdminState {
    pub fn new(
        service: Arc<LicenseService>,
        outcomes: Arc<Outcomes>,
        config: &Config,
        master: Arc<MasterKey>,
        certificates: Vec<Certificate>,
    ) -> anyhow::Result<AdminState> {
        Ok(AdminState {
            service,
            outcomes,
            db: Mutex::new(Db::open(&config.data_dir, Arc::clone(&master))?),
            sessions: Sessions::new(
                config.admin.tls().is_some(),
                std::time::Duration::from_secs(config.admin.session_idle_secs),
            ),
            data_dir: config.data_dir.clone(),
            master,
            upload_configured: !config.upload.url.is_empty(),
            auto_export: config.reports.auto_export,
            keep_months: config.log.keep_months,
            cpix_signers: config.keys.cpix_signers.clone(),
            verified: Mutex::new(HashMap::new()),
            certificates,
            any_origin: config.license.allowed_origins.iter().any(|o| o == "*"),
            passwords: session::PasswordChecks::start()?,
            metrics_token: read_metrics_token(&config.admin.metrics_token_file)?,
        })
    }
}

/// The metrics bearer token from its file, if one is configured.
fn read_metrics_token(path: &std::path::Path) -> anyhow::Result<Option<String>> {
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading admin.metrics_token_file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.len() < 16 {
        anyhow::bail!(
            "admin.metrics_token_file {} must hold a token of at least 16 characters",
            path.display()
        );
    }
    Ok(Some(token.to_owned()))
}

/// Starts the admin listener; with `tls`, it speaks only HTTPS.
pub fn admin_server(
    listener: TcpListener,
    state: AdminState,
    tls: Option<crate::crypto::TlsAcceptor>,
) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::FormConfig::default().limit(16 * 1024).error_handler(form_refused))
            .wrap_fn(|req, srv| {
                let fut = actix_web::dev::Service::call(srv, req);
                async move {
                    let mut res = fut.await?;
                    let h = res.headers_mut();
                    h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
                    h.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
                    h.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
                    h.insert(header::REFERRER_POLICY, header::HeaderValue::from_static("same-origin"));
                    h.insert(
                        header::CONTENT_SECURITY_POLICY,
                        header::HeaderValue::from_static("default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"),
                    );
                    Ok(res)
                }
            })
            .service(
                resource("/login", "GET, HEAD, POST")
                    .route(web::get().to(login_page))
                    .route(web::head().to(login_page))
                    .route(web::post().to(login)),
            )
            .service(post("/logout", logout))
            .service(get("/", dashboard))
            .service(get("/dashboard.json", dashboard_json))
            .service(get("/keys", keys::page))
            .service(get("/keys/delivery-cert.pem", keys::delivery_certificate))
            .service(
                post("/keys/import", keys::import)
                    .app_data(
                        web::FormConfig::default()
                            .limit(crate::keyfile::MAX_KEY_FILE * 2)
                            .error_handler(form_refused),
                    ),
            )
            .service(post("/keys/remove", keys::remove))
            .service(get("/log", log::page))
            .service(get("/log.csv", log::csv))
            .service(get("/reports", reports::page))
            .service(post("/reports/export", reports::export))
            .service(get("/reports/{sequence}/download", reports::download))
            .service(get("/comkeys", accounts::com_keys_page))
            .service(post("/comkeys/generate", accounts::generate_com_key))
            .service(post("/comkeys/remove", accounts::remove_com_key))
            .service(get("/users", accounts::users_page))
            .service(post("/users/add", accounts::add_user))
            .service(post("/users/passwd", accounts::new_password))
            .service(post("/users/remove", accounts::remove_user))
            .service(get("/static/admin.js", script))
            .service(get("/static/admin.css", style))
            .service(get("/static/icon.svg", icon))
            .service(get("/favicon.ico", icon))
            .service(get("/metrics", metrics))
            .default_service(web::to(|| async { html(StatusCode::NOT_FOUND, views::not_found()) }))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5);
    let server = match tls {
        Some(acceptor) => server.listen_openssl(listener, acceptor)?,
        None => server.listen(listener)?,
    };
    Ok(server.run())
}

/// A path of the crew UI and the methods its routes take (as the license
/// listener's `http::resource`): any other method is answered 405 with
/// `Allow` naming them (RFC 9110, 15.5.6), not with the 404 of an address
/// that does not exist.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        let mut res = html(StatusCode::METHOD_NOT_ALLOWED, views::method_not_allowed(allow));
        res.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        res
    }))
}

/// A page: `GET`, and `HEAD`, which every general-purpose server supports
/// (RFC 9110, 9.1) and which actix-http answers with the same head and no
/// body.
fn get<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    resource(path, "GET, HEAD")
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
}

/// An action that takes `POST` only.
fn post<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    resource(path, "POST").route(web::post().to(handler))
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body)
}

use views::Notice;

/// The page's status for a notice: 422 when the action failed.
fn notice_status(notice: Option<&Notice>) -> StatusCode {
    if notice.is_some_and(Notice::failed) {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    }
}

/// What is wrong with a page's address, in a sentence for the crew (shown
/// above the page's unfiltered view).
#[derive(Debug)]
struct BadAddress(String);

impl From<String> for BadAddress {
    fn from(why: String) -> BadAddress {
        BadAddress(why)
    }
}

/// A page address's query, for the pages that filter with one (`/log`, `/keys`).
struct PageQuery(Vec<(String, String)>);

impl PageQuery {
    fn parse(query: &str) -> Result<PageQuery, BadAddress> {
        web::Query::<Vec<(String, String)>>::from_query(query)
            .map(|pairs| PageQuery(pairs.into_inner()))
            .map_err(|_| BadAddress("The address's query cannot be read.".to_owned()))
    }

    /// The last value given for `name`, trimmed; empty when there is none.
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }
}

/// Runs `f` with the admin's database connection, off the async workers.
async fn with_db<T: Send + 'static>(
    state: &web::Data<AdminState>,
    f: impl FnOnce(&mut Db) -> T + Send + 'static,
) -> Option<T> {
    let state = state.clone();
    web::block(move || f(&mut state.db.lock().expect("db lock")))
        .await
        .ok()
}

fn unavailable(what: &str) -> HttpResponse {
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        views::forbidden(&format!(
            "{what} cannot be read right now; try again in a moment."
        )),
    )
}

fn client_ip(req: &HttpRequest) -> IpAddr {
    req.peer_addr().map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip())
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

async fn login_page(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    if state.sessions.current(&req).is_some() {
        return redirect("/");
    }
    let (nonce, cookie) = state.sessions.login_nonce();
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .cookie(cookie)
        .body(views::login(&nonce, None))
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
    nonce: String,
}

async fn login(req: HttpRequest, form: web::Form<LoginForm>, state: web::Data<AdminState>) -> HttpResponse {
    let form = form.into_inner();
    let again = |message: &str, status: actix_web::http::StatusCode| {
        let (nonce, cookie) = state.sessions.login_nonce();
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .cookie(cookie)
            .body(views::login(&nonce, Some(message)))
    };
    if !session::nonce_matches(&req, &form.nonce) {
        return again("The form expired; please sign in again.", StatusCode::FORBIDDEN);
    }
    let ip = client_ip(&req);
    if let Err(wait) = state.sessions.reserve_attempt(&form.user, ip, Instant::now()) {
        return again(
            &format!(
                "Too many failed sign-ins; try again in {}.",
                counted(wait.as_secs().div_ceil(60), "minute")
            ),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let user = form.user.clone();
    let Some(Ok(credentials)) = with_db(&state, move |db| db.user_credentials(&user)).await else {
        return again(
            "Sign-in is not possible right now (the database cannot be read); try again in a moment.",
            StatusCode::SERVICE_UNAVAILABLE,
        );
    };
    // One hash at a time on the password thread; the rest wait here.
    let role = state.passwords.check(credentials, form.password).await;
    match role {
        Some(role) => {
            state.sessions.login_succeeded(&form.user, ip);
            let cookie = state.sessions.create(&form.user, role);
            tracing::info!(user = ?form.user, "crew sign-in");
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/"))
                .cookie(cookie)
                .cookie(state.sessions.expired_cookie(session::NONCE_COOKIE))
                .finish()
        }
        None => {
            tracing::warn!(user = ?form.user.chars().take(64).collect::<String>(), %ip, "failed crew sign-in");
            again("Wrong user name or password.", StatusCode::UNAUTHORIZED)
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

impl HasCsrf for CsrfForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

async fn logout(
    action: SessionAction<CsrfForm>,
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> HttpResponse {
    let SessionAction { session, form: _ } = action;
    tracing::info!(user = ?session.user, "crew sign-out");
    state.sessions.remove(&req);
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .cookie(state.sessions.expired_cookie(session::SESSION_COOKIE))
        .finish()
}

/// The non-empty labels of the content keys (film titles, as imported), by
/// KID as the log writes it (lowercase UUID).
fn labels_by_kid(keys: &[crate::store::KeyInfo]) -> std::collections::HashMap<String, &str> {
    keys.iter()
        .filter(|k| !k.label.is_empty())
        .map(|k| (k.kid.to_string(), k.label.as_str()))
        .collect()
}

/// Everything the dashboard shows, as JSON (the page refreshes from it).
fn dashboard_data(state: &AdminState) -> views::Dashboard {
    let now = state.service.clock().now();
    let month = Month::of(now);
    let db = state.db.lock().expect("db lock");
    let installation = db.installation().ok();
    let counts = db.counts(month).ok();
    let last = db.last_licenses(20).unwrap_or_default();
    let keys = db.list_keys().unwrap_or_default();
    let reports = reports_status(&db, now, state.upload_configured, state.auto_export);
    drop(db);
    let labels = labels_by_kid(&keys);
    let disk_free = crate::health::disk_free_bytes(&state.data_dir);
    views::Dashboard {
        health: crate::health::report(&state.service),
        disk_free_bytes: disk_free,
        disk_days_left: disk_free
            .zip(counts.as_ref())
            .and_then(|(free, c)| log_days_left(free, c.licenses, now - month.start())),
        installation: installation.map(|i| views::InstallationView {
            id: i.id,
            vessel_type: i.vessel_type.as_str(),
            vessel_name: i.vessel_name,
            signing_key_sha256: crate::crypto::sha256_hex(&i.public_key_der),
        }),
        month,
        counts,
        last_licenses: last
            .into_iter()
            .map(|r| views::LastLicense {
                titles: r
                    .kids
                    .split(';')
                    .filter_map(|kid| labels.get(kid).copied())
                    .collect::<Vec<_>>()
                    .join("; "),
                seq: r.seq,
                issued_at: r.issued_at,
                key_system: r.key_system,
                kids: r.kids,
                license_type: r.license_type,
            })
            .collect(),
        denials: denials(&state.outcomes),
        reports,
        any_origin: state.any_origin,
        certificates: state
            .certificates
            .iter()
            .map(|c| views::CertificateView {
                listener: c.listener,
                expires: format_instant(c.expires),
                days_left: (c.expires.date() - now.date()).whole_days(),
                expired: c.expires <= now,
                soon: c.expires_soon(now),
            })
            .collect(),
    }
}

/// Where the monthly reports stand: the months that have ended without a
/// report, the last report, and its uploads. None if the database cannot say.
fn reports_status(
    db: &Db,
    now: time::OffsetDateTime,
    upload_configured: bool,
    auto_export: bool,
) -> Option<views::ReportsStatus> {
    let (Ok(next), Ok(reports)) = (crate::report::next_month(db), db.reports()) else {
        return None;
    };
    let not_uploaded: Vec<_> = reports.iter().filter(|r| r.uploaded_at.is_none()).collect();
    let failing = not_uploaded
        .iter()
        .filter(|r| r.upload_attempts > 0)
        .max_by_key(|r| r.sequence);
    Some(views::ReportsStatus {
        due: crate::report::ended_from(next, now),
        next,
        auto_export,
        last: reports.last().map(|r| views::LastReport {
            month: r.month.clone(),
            sequence: r.sequence,
        }),
        upload_configured,
        not_uploaded: not_uploaded.len(),
        upload_error: failing.and_then(|r| r.last_error.clone()),
    })
}

/// Refusals since start, most frequent first, each with what it usually means.
fn denials(outcomes: &crate::http::Outcomes) -> Vec<views::DenialView> {
    outcomes
        .denials()
        .into_iter()
        .map(|(outcome, count)| views::DenialView {
            code: outcome.code(),
            count,
            meaning: outcome.meaning(),
        })
        .collect()
}

/// How many days of license log `free` bytes hold at the rate of the month so
/// far (`licenses` in `elapsed`, counted as at least a day), or None before
/// the month's first license.
fn log_days_left(free: u64, licenses: u64, elapsed: time::Duration) -> Option<u64> {
    if licenses == 0 {
        return None;
    }
    let days = elapsed.as_seconds_f64().max(86_400.0) / 86_400.0;
    let bytes_per_day = licenses as f64 / days * crate::store::LOG_BYTES_PER_LICENSE as f64;
    Some((free as f64 / bytes_per_day) as u64)
}

/// [`dashboard_data`] off the async workers (it reads SQLite).
async fn dashboard_data_blocking(state: &web::Data<AdminState>) -> Option<views::Dashboard> {
    let state = state.clone();
    web::block(move || dashboard_data(&state)).await.ok()
}

async fn dashboard(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    let session = match signed_in(&req, &state).await {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    match dashboard_data_blocking(&state).await {
        Some(data) => html(StatusCode::OK, views::dashboard(&session, &data)),
        None => unavailable("The dashboard"),
    }
}

async fn dashboard_json(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    // The page polls this by itself: that keeps no session alive.
    let allowed = match state.sessions.peek(&req) {
        Some(session) => still_allowed(&req, &state, session).await,
        None => Ok(None),
    };
    match allowed {
        Ok(Some(_)) => {}
        Ok(None) => {
            return HttpResponse::Unauthorized().json(serde_json::json!({ "error": "not signed in" }));
        }
        Err(()) => return unavailable("The dashboard"),
    }
    match dashboard_data_blocking(&state).await {
        Some(data) => HttpResponse::Ok().json(data),
        None => unavailable("The dashboard"),
    }
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(include_str!("admin.js"))
}

async fn style() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(include_str!("style.css"))
}

/// The UI's icon, so that a browser asking for one finds it.
async fn icon() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml")
        .body(include_str!("icon.svg"))
}

/// Whether the request may read `/metrics`: Prometheus with the configured
/// bearer token, or a signed-in crew member.
async fn may_read_metrics(req: &HttpRequest, state: &web::Data<AdminState>) -> bool {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (&state.metrics_token, bearer) {
        (Some(token), Some(given)) => crate::crypto::ct_eq(token.as_bytes(), given.trim().as_bytes()),
        _ => live_session(req, state).await.is_some(),
    }
}

/// Prometheus text format, for Prometheus's bearer token or a crew session.
async fn metrics(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    if !may_read_metrics(&req, &state).await {
        return HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"berth metrics\""))
            .content_type("text/plain; charset=utf-8")
            .body("sign in, or send the bearer token of admin.metrics_token_file\n");
    }
    let writer = state.service.writer_health();
    let mut out = String::new();
    out.push_str("# HELP berth_license_requests_total License API answers by key system and outcome.\n# TYPE berth_license_requests_total counter\n");
    for ((key_system, outcome), n) in state.outcomes.snapshot() {
        out.push_str(&format!(
            "berth_license_requests_total{{key_system=\"{key_system}\",outcome=\"{}\"}} {n}\n",
            outcome.code()
        ));
    }
    state.outcomes.latency().write_prometheus(
        &mut out,
        "berth_license_latency_seconds",
        "License request latency.",
    );
    out.push_str(&format!(
        "# HELP berth_log_queue_depth Licenses waiting for the log writer.\n# TYPE berth_log_queue_depth gauge\nberth_log_queue_depth {}\n",
        writer.queued()
    ));
    out.push_str(&format!(
        "# HELP berth_log_commit_seconds Duration of the last log commit.\n# TYPE berth_log_commit_seconds gauge\nberth_log_commit_seconds {}\n",
        writer.last_commit().as_secs_f64()
    ));
    writer.commits().write_prometheus(
        &mut out,
        "berth_log_commit_duration_seconds",
        "Duration of each log commit (one batch, one fsync).",
    );
    out.push_str(&format!(
        "# HELP berth_log_committed_total Licenses committed since start.\n# TYPE berth_log_committed_total counter\nberth_log_committed_total {}\n",
        writer.committed()
    ));
    let size: u64 = ["berth.db", "berth.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(state.data_dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    out.push_str(&format!(
        "# HELP berth_database_bytes Size of the database and its WAL.\n# TYPE berth_database_bytes gauge\nberth_database_bytes {size}\n"
    ));
    if let Some(free) = crate::health::disk_free_bytes(&state.data_dir) {
        out.push_str(&format!(
            "# HELP berth_disk_free_bytes Free space for the database on its filesystem.\n# TYPE berth_disk_free_bytes gauge\nberth_disk_free_bytes {free}\n"
        ));
    }
    if !state.certificates.is_empty() {
        out.push_str("# HELP berth_tls_certificate_expiry_seconds When a listener's TLS certificate expires (Unix time).\n# TYPE berth_tls_certificate_expiry_seconds gauge\n");
        for c in &state.certificates {
            out.push_str(&format!(
                "berth_tls_certificate_expiry_seconds{{listener=\"{}\"}} {}\n",
                c.listener,
                c.expires.unix_timestamp()
            ));
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}

/// Whether a session's account still exists with the same role (an account
/// removed or changed by the CLI ends its sessions here), read off the admin
/// worker. `Err` when the database cannot say: the caller refuses.
async fn still_allowed(
    req: &HttpRequest,
    state: &web::Data<AdminState>,
    session: session::Session,
) -> Result<Option<session::Session>, ()> {
    let user = session.user.clone();
    match with_db(state, move |db| db.user_credentials(&user)).await {
        Some(Ok(Some((_, role)))) if role == Some(session.role) => Ok(Some(session)),
        Some(Ok(_)) => {
            state.sessions.remove(req);
            Ok(None)
        }
        Some(Err(_)) | None => Err(()),
    }
}

/// The request's live session, if it has one and its account still stands.
async fn live_session(req: &HttpRequest, state: &web::Data<AdminState>) -> Option<session::Session> {
    let session = state.sessions.current(req)?;
    still_allowed(req, state, session).await.ok().flatten()
}

/// The request's session, or the answer to give instead: a redirect to the
/// sign-in page, or 503 when the database cannot confirm the account.
async fn signed_in(
    req: &HttpRequest,
    state: &web::Data<AdminState>,
) -> Result<session::Session, Box<HttpResponse>> {
    let Some(session) = state.sessions.current(req) else {
        return Err(Box::new(redirect("/login")));
    };
    match still_allowed(req, state, session).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(Box::new(redirect("/login"))),
        Err(()) => Err(Box::new(unavailable("Your crew account"))),
    }
}

/// A signed-in admin, or the answer to give instead; checked before a form's
/// body is read.
async fn signed_in_admin(
    req: &HttpRequest,
    state: &web::Data<AdminState>,
) -> Result<session::Session, Box<HttpResponse>> {
    let session = signed_in(req, state).await?;
    if !session.is_admin() {
        return Err(Box::new(html(
            StatusCode::FORBIDDEN,
            views::forbidden("This needs an admin account."),
        )));
    }
    Ok(session)
}

/// A form that carries the session's CSRF token.
trait HasCsrf {
    fn csrf(&self) -> &str;
}

/// A form posted by a signed-in admin whose CSRF token matches: the one check
/// every changing request passes. Extracting it answers anything else (a
/// redirect to the sign-in page, or 403 with the reason). The session is
/// checked before the body is read: a stranger's body is never parsed.
struct AdminAction<T> {
    session: session::Session,
    form: T,
}

/// A form posted with a live session (any role: signing out) whose CSRF
/// token matches; the session is checked before the body is read. The form
/// `T` carries nothing but the token, so only the session is kept.
struct SessionAction<T> {
    session: session::Session,
    form: std::marker::PhantomData<T>,
}

/// Reads the form of a request whose session was checked, and holds it to
/// the session's CSRF token: the one place either extractor reads a body.
async fn checked_form<T: DeserializeOwned + HasCsrf + 'static>(
    req: &HttpRequest,
    payload: &mut actix_web::dev::Payload,
    session: &session::Session,
) -> Result<T, actix_web::Error> {
    let form = <web::Form<T> as actix_web::FromRequest>::from_request(req, payload)
        .await?
        .into_inner();
    if !session.csrf_matches(form.csrf()) {
        return Err(refused(html(
            StatusCode::FORBIDDEN,
            views::forbidden("The form's security token is missing or wrong."),
        )));
    }
    Ok(form)
}

/// A form that cannot be read, answered as a page of the UI instead of
/// actix's line of plain text: larger than the address takes (413), without
/// a length (411), or not a form (400).
fn form_refused(err: actix_web::error::UrlencodedError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::ResponseError as _;
    let why = match &err {
        actix_web::error::UrlencodedError::Overflow { limit, .. } => {
            format!(
                "The form is larger than this address takes ({} KiB at most).",
                limit / 1024
            )
        }
        _ => "The form could not be read.".to_owned(),
    };
    refused(html(err.status_code(), views::refused("Form refused", &why)))
}

fn refused(answer: HttpResponse) -> actix_web::Error {
    actix_web::error::InternalError::from_response("refused", answer).into()
}

fn admin_state(req: &HttpRequest) -> &web::Data<AdminState> {
    req.app_data::<web::Data<AdminState>>()
        .expect("the admin listener has its state")
}

impl<T: DeserializeOwned + HasCsrf + 'static> actix_web::FromRequest for AdminAction<T> {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let session = signed_in_admin(&req, admin_state(&req))
                .await
                .map_err(|a| refused(*a))?;
            let form = checked_form(&req, &mut payload, &session).await?;
            Ok(AdminAction { session, form })
        })
    }
}

impl<T: DeserializeOwned + HasCsrf + 'static> actix_web::FromRequest for SessionAction<T> {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let session = admin_state(&req)
                .sessions
                .current(&req)
                .ok_or_else(|| refused(redirect("/login")))?;
            checked_form::<T>(&req, &mut payload, &session).await?;
            Ok(SessionAction {
                session,
                form: std::marker::PhantomData,
            })
        })
    }
}

/// Implements [`HasCsrf`] for forms with a `csrf` field.
macro_rules! csrf_forms {
    ($($form:ty),* $(,)?) => {
        $(impl crate::admin::HasCsrf for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })*
    };
}
use csrf_forms;

#[cfg(test)]
mod tests {
    use super::log_days_left;
    use time::Duration;

    #[test]
    fn days_of_log_the_disk_holds_at_the_months_rate() {
        // 10,000 licenses a day take 4 MB a day: 1 GB holds 250 days.
        assert_eq!(
            log_days_left(1_000_000_000, 100_000, Duration::days(10)),
            Some(250)
        );
        // Early in a month the rate is taken over at least a day, not extrapolated from minutes.
        assert_eq!(
            log_days_left(1_000_000_000, 10_000, Duration::minutes(5)),
            Some(250)
        );
        assert_eq!(log_days_left(1_000_000_000, 0, Duration::days(10)), None);
        assert_eq!(log_days_left(0, 5, Duration::days(1)), Some(0));
    }
}
