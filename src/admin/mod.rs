//! The crew admin UI on its own listener (SPEC section 8): login, sessions,
//! CSRF, a self-refreshing dashboard, and Prometheus metrics. Everything it
//! serves is compiled in; it works with no internet.
//!
//! Architecture Invariant: never mounted on the license listener. SQL only
//! through `store`; it reads the license path's health, never changes it.

mod pages;
mod session;

use std::net::{IpAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde::Deserialize;

use crate::crypto::MasterKey;
use crate::http::Outcomes;
use crate::ids::Month;
use crate::license::LicenseService;
use crate::store::Db;

pub use session::Sessions;

/// What the admin handlers share.
pub struct AdminState {
    service: Arc<LicenseService>,
    outcomes: Arc<Outcomes>,
    db: Mutex<Db>,
    sessions: Sessions,
    data_dir: std::path::PathBuf,
}

impl AdminState {
    pub fn new(
        service: Arc<LicenseService>,
        outcomes: Arc<Outcomes>,
        data_dir: &std::path::Path,
        master: Arc<MasterKey>,
    ) -> anyhow::Result<AdminState> {
        Ok(AdminState {
            service,
            outcomes,
            db: Mutex::new(Db::open(data_dir, master)?),
            sessions: Sessions::default(),
            data_dir: data_dir.to_owned(),
        })
    }
}

pub fn admin_server(listener: TcpListener, state: AdminState) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::FormConfig::default().limit(16 * 1024))
            .wrap_fn(|req, srv| {
                let fut = actix_web::dev::Service::call(srv, req);
                async move {
                    let mut res = fut.await?;
                    let h = res.headers_mut();
                    h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
                    h.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
                    h.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
                    h.insert(
                        header::CONTENT_SECURITY_POLICY,
                        header::HeaderValue::from_static("default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; img-src 'self' data:"),
                    );
                    Ok(res)
                }
            })
            .route("/login", web::get().to(login_page))
            .route("/login", web::post().to(login))
            .route("/logout", web::post().to(logout))
            .route("/", web::get().to(dashboard))
            .route("/dashboard.json", web::get().to(dashboard_json))
            .route("/keys", web::get().to(keys_page))
            .service(
                web::resource("/keys/import")
                    .app_data(web::FormConfig::default().limit(crate::keyfile::MAX_KEY_FILE * 2))
                    .route(web::post().to(import_keys)),
            )
            .route("/keys/remove", web::post().to(remove_key))
            .route("/static/admin.js", web::get().to(script))
            .route("/metrics", web::get().to(metrics))
            .default_service(web::to(|| async { HttpResponse::NotFound().content_type("text/html; charset=utf-8").body(pages::not_found()) }))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    Ok(server)
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
    let (nonce, cookie) = session::login_nonce();
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .cookie(cookie)
        .body(pages::login(&nonce, None))
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
        let (nonce, cookie) = session::login_nonce();
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .cookie(cookie)
            .body(pages::login(&nonce, Some(message)))
    };
    if !session::nonce_matches(&req, &form.nonce) {
        return again(
            "The form expired; please sign in again.",
            actix_web::http::StatusCode::FORBIDDEN,
        );
    }
    let ip = client_ip(&req);
    if let Err(wait) = state.sessions.login_allowed(&form.user, ip, Instant::now()) {
        return again(
            &format!(
                "Too many failed sign-ins; try again in {} minutes.",
                wait.as_secs().div_ceil(60)
            ),
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let credentials = state
        .db
        .lock()
        .expect("db lock")
        .user_credentials(&form.user)
        .ok()
        .flatten();
    let password = form.password;
    let role = web::block(move || session::check_password(credentials, &password))
        .await
        .ok()
        .flatten();
    match role {
        Some(role) => {
            state.sessions.login_succeeded(&form.user, ip);
            let cookie = state.sessions.create(&form.user, &role);
            tracing::info!(user = %form.user, "crew sign-in");
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/"))
                .cookie(cookie)
                .cookie(session::expired_cookie(session::NONCE_COOKIE))
                .finish()
        }
        None => {
            state.sessions.login_failed(&form.user, ip, Instant::now());
            tracing::warn!(user = %form.user.chars().take(64).collect::<String>(), %ip, "failed crew sign-in");
            again(
                "Wrong user name or password.",
                actix_web::http::StatusCode::UNAUTHORIZED,
            )
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(req: HttpRequest, form: web::Form<CsrfForm>, state: web::Data<AdminState>) -> HttpResponse {
    match state.sessions.current(&req) {
        Some(s) if s.csrf_matches(&form.csrf) => {
            state.sessions.remove(&req);
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/login"))
                .cookie(session::expired_cookie(session::SESSION_COOKIE))
                .finish()
        }
        Some(_) => HttpResponse::Forbidden()
            .content_type("text/html; charset=utf-8")
            .body(pages::forbidden("The form's security token is missing or wrong.")),
        None => redirect("/login"),
    }
}

/// Everything the dashboard shows, as JSON (the page refreshes from it).
fn dashboard_data(state: &AdminState) -> serde_json::Value {
    let now = state.service.clock().now();
    let month = Month::of(now);
    let db = state.db.lock().expect("db lock");
    let installation = db.installation().ok();
    let counts = db.counts(month).ok();
    let last = db.last_licenses(20).unwrap_or_default();
    drop(db);
    let disk_free = crate::http::disk_free_bytes(&state.data_dir);
    serde_json::json!({
        "health": crate::http::health_report(&state.service),
        "disk_free_bytes": disk_free,
        "installation": installation.map(|i| serde_json::json!({
            "id": i.id, "vessel_type": i.vessel_type.as_str(), "vessel_name": i.vessel_name,
            "signing_key_sha256": crate::crypto::sha256_hex(&i.public_key_der),
        })),
        "month": month.to_string(),
        "counts": counts,
        "last_licenses": last.iter().map(|r| serde_json::json!({
            "seq": r.seq, "issued_at": r.issued_at, "key_system": r.key_system, "kids": r.kids,
            "license_type": r.license_type,
        })).collect::<Vec<_>>(),
        "denials": state.outcomes.denials(),
    })
}

/// [`dashboard_data`] off the async workers (it reads SQLite).
async fn dashboard_data_blocking(state: &web::Data<AdminState>) -> serde_json::Value {
    let state = state.clone();
    web::block(move || dashboard_data(&state))
        .await
        .unwrap_or_default()
}

async fn dashboard(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    let Some(session) = state.sessions.current(&req) else {
        return redirect("/login");
    };
    let data = dashboard_data_blocking(&state).await;
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(pages::dashboard(&session, &data))
}

async fn dashboard_json(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    if state.sessions.current(&req).is_none() {
        return HttpResponse::Unauthorized().json(serde_json::json!({ "error": "not signed in" }));
    }
    HttpResponse::Ok().json(dashboard_data_blocking(&state).await)
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(include_str!("admin.js"))
}

/// Prometheus text format; no secrets, so no sign-in (the crew network only).
async fn metrics(state: web::Data<AdminState>) -> HttpResponse {
    let writer = state.service.log().health();
    let mut out = String::new();
    out.push_str("# HELP berth_license_requests_total License API answers by key system and outcome.\n# TYPE berth_license_requests_total counter\n");
    for ((key_system, outcome), n) in state.outcomes.snapshot() {
        out.push_str(&format!(
            "berth_license_requests_total{{key_system=\"{key_system}\",outcome=\"{outcome}\"}} {n}\n"
        ));
    }
    out.push_str("# HELP berth_license_latency_seconds License request latency.\n# TYPE berth_license_latency_seconds histogram\n");
    let (buckets, sum, count) = state.outcomes.latency();
    for (le, n) in buckets {
        out.push_str(&format!(
            "berth_license_latency_seconds_bucket{{le=\"{le}\"}} {n}\n"
        ));
    }
    out.push_str(&format!("berth_license_latency_seconds_bucket{{le=\"+Inf\"}} {count}\nberth_license_latency_seconds_sum {sum}\nberth_license_latency_seconds_count {count}\n"));
    out.push_str(&format!(
        "# HELP berth_log_queue_depth Licenses waiting for the log writer.\n# TYPE berth_log_queue_depth gauge\nberth_log_queue_depth {}\n",
        writer.queued()
    ));
    out.push_str(&format!(
        "# HELP berth_log_commit_seconds Duration of the last log commit.\n# TYPE berth_log_commit_seconds gauge\nberth_log_commit_seconds {}\n",
        writer.last_commit().as_secs_f64()
    ));
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
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out)
}

async fn keys_page(req: HttpRequest, state: web::Data<AdminState>) -> HttpResponse {
    let Some(session) = state.sessions.current(&req) else {
        return redirect("/login");
    };
    keys_answer(&state, &session, None).await
}

async fn keys_answer(
    state: &web::Data<AdminState>,
    session: &session::Session,
    message: Option<(bool, String)>,
) -> HttpResponse {
    let list = web::block({
        let state = state.clone();
        move || state.db.lock().expect("db lock").list_keys()
    })
    .await;
    match list {
        Ok(Ok(list)) => {
            let status = if message.as_ref().is_some_and(|(ok, _)| !ok) {
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY
            } else {
                actix_web::http::StatusCode::OK
            };
            HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .body(pages::keys(
                    session,
                    &list,
                    message.as_ref().map(|(ok, m)| (*ok, m.as_str())),
                ))
        }
        _ => HttpResponse::ServiceUnavailable()
            .content_type("text/html; charset=utf-8")
            .body(pages::forbidden("The key store cannot be read right now.")),
    }
}

/// A signed-in admin with the right CSRF token, or the answer to give instead.
fn admin_action(
    req: &HttpRequest,
    state: &AdminState,
    csrf: &str,
) -> Result<session::Session, Box<HttpResponse>> {
    let html = |status: actix_web::http::StatusCode, why: &str| {
        Box::new(
            HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .body(pages::forbidden(why)),
        )
    };
    let Some(session) = state.sessions.current(req) else {
        return Err(Box::new(redirect("/login")));
    };
    if !session.csrf_matches(csrf) {
        return Err(html(
            actix_web::http::StatusCode::FORBIDDEN,
            "The form's security token is missing or wrong.",
        ));
    }
    if !session.is_admin() {
        return Err(html(
            actix_web::http::StatusCode::FORBIDDEN,
            "This needs an admin account.",
        ));
    }
    Ok(session)
}

#[derive(Deserialize)]
struct ImportForm {
    csrf: String,
    content: String,
}

async fn import_keys(
    req: HttpRequest,
    form: web::Form<ImportForm>,
    state: web::Data<AdminState>,
) -> HttpResponse {
    let form = form.into_inner();
    let session = match admin_action(&req, &state, &form.csrf) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let outcome = web::block({
        let state = state.clone();
        let now = state.service.clock().now();
        move || -> Result<crate::store::ImportOutcome, String> {
            let keys = crate::keyfile::parse(form.content.as_bytes()).map_err(|e| e.0)?;
            state
                .db
                .lock()
                .expect("db lock")
                .import_keys(&keys, now)
                .map_err(|e| e.to_string())
        }
    })
    .await;
    let message = match outcome {
        Ok(Ok(o)) => {
            tracing::info!(user = %session.user, added = o.added, unchanged = o.unchanged, "keys imported from the admin UI");
            state.service.keys().reload_soon();
            (
                true,
                format!("Imported {} new keys ({} already present).", o.added, o.unchanged),
            )
        }
        Ok(Err(why)) => (false, format!("Nothing was imported: {why}")),
        Err(_) => (
            false,
            "Nothing was imported: the import did not finish.".to_owned(),
        ),
    };
    keys_answer(&state, &session, Some(message)).await
}

#[derive(Deserialize)]
struct RemoveForm {
    csrf: String,
    kid: String,
}

async fn remove_key(
    req: HttpRequest,
    form: web::Form<RemoveForm>,
    state: web::Data<AdminState>,
) -> HttpResponse {
    let form = form.into_inner();
    let session = match admin_action(&req, &state, &form.csrf) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let Ok(kid) = form.kid.parse::<crate::ids::Kid>() else {
        return keys_answer(&state, &session, Some((false, "That is not a KID.".to_owned()))).await;
    };
    let removed = web::block({
        let state = state.clone();
        move || state.db.lock().expect("db lock").remove_key(&kid)
    })
    .await;
    let message = match removed {
        Ok(Ok(true)) => {
            tracing::info!(user = %session.user, %kid, "key removed from the admin UI");
            state.service.keys().reload_soon();
            (true, format!("Removed key {kid}."))
        }
        Ok(Ok(false)) => (false, format!("There is no key {kid}.")),
        _ => (false, "The key could not be removed.".to_owned()),
    };
    keys_answer(&state, &session, Some(message)).await
}
