//! The license API of the reference's section 4 on its own listener, with
//! actix-web: CORS, rate limits, the mapping of errors to responses, the
//! mailbox that answers its workers, and the probe of its health.
//!
//! Architecture Invariant: no SQL and no token rules here; handlers parse the
//! request, call [`LicenseService`], and write the answer. The license listener
//! never serves admin pages.

mod body_first_look;
mod cors;
mod error;
mod fairplay;
mod mailbox;
mod outcomes;
mod probe;
mod ratelimit;

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody as _;
use actix_web::dev::{Server, Service as _};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use crate::clearkey::{self, ClearKeyError};
use crate::config::LicenseConfig;
use crate::ids::{KeySystem, Kid, LicenseType};
use crate::license::{LicenseRequest, LicenseService};

/// The header values every answer with keys carries, built once: given as
/// text, each answer parsed and copied them again (two allocations a license,
/// issue 37).
pub(super) const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
/// The token's header. Looked up by a `&str`, a name that is not one of the
/// standard ones is first copied into a new `HeaderName` (an allocation a
/// license, issue 37).
const AXDRM_MESSAGE: HeaderName = HeaderName::from_static("x-axdrm-message");

use body_first_look::first_look;
pub use cors::Cors;
pub use error::ApiError;
pub use mailbox::Mailbox;
pub use outcomes::{Outcome, Outcomes};
pub use probe::{ProbeError, probe_healthz};
use ratelimit::RateLimiter;

/// Request bodies larger than this get `413 body_too_large`.
pub const MAX_BODY: usize = 64 * 1024;

/// Everything the license API handlers share.
pub struct LicenseApi {
    service: Arc<LicenseService>,
    outcomes: Arc<Outcomes>,
    cors: Cors,
    rate: Option<RateLimiter>,
    body_timeout: Duration,
    spc_openers: fairplay::SpcOpeners,
}

impl LicenseApi {
    pub fn new(service: Arc<LicenseService>, outcomes: Arc<Outcomes>, config: &LicenseConfig) -> LicenseApi {
        LicenseApi {
            service,
            outcomes,
            cors: Cors::new(&config.allowed_origins),
            rate: (config.rate_limit_per_second > 0.0)
                .then(|| RateLimiter::new(config.rate_limit_per_second, config.rate_limit_burst)),
            body_timeout: Duration::from_secs(config.body_timeout_secs),
            spc_openers: fairplay::SpcOpeners::default(),
        }
    }
}

/// Builds the license server on an already-bound listener; with `tls`, it
/// speaks only HTTPS. The caller runs it and stops it through its handle.
pub fn license_server(
    listener: TcpListener,
    api: LicenseApi,
    workers: usize,
    tls: Option<crate::crypto::TlsAcceptor>,
) -> std::io::Result<Server> {
    let api = web::Data::new(api);
    let server = HttpServer::new(move || {
        // Runs on each worker thread, inside its LocalSet.
        Mailbox::open_on_this_thread();
        let cors = api.cors.clone();
        App::new()
            .app_data(api.clone())
            .wrap_fn(move |req, srv| {
                let origin = req.headers().get(header::ORIGIN).cloned();
                let fut = srv.call(req);
                let cors = cors.clone();
                async move {
                    let response = fut.await?;
                    let mut response = ensure_json_error(response);
                    cors.decorate(origin.as_ref(), response.headers_mut());
                    Ok(response)
                }
            })
            .service(
                resource("/clearkey", "POST, OPTIONS")
                    .route(on(Method::POST).to(clearkey_license))
                    .route(on(Method::OPTIONS).to(cors::preflight)),
            )
            .service(
                resource("/AcquireLicense", "POST, OPTIONS")
                    .route(on(Method::POST).to(clearkey_license))
                    .route(on(Method::OPTIONS).to(cors::preflight)),
            )
            .service(
                resource("/hls/key/{kid}", "GET, OPTIONS")
                    .route(on(Method::GET).to(hls_key))
                    .route(on(Method::OPTIONS).to(cors::preflight)),
            )
            .service(
                resource("/fairplay/certificate", "GET, OPTIONS")
                    .route(on(Method::GET).to(fairplay::certificate))
                    .route(on(Method::OPTIONS).to(cors::preflight)),
            )
            .service(
                resource("/fairplay/license", "POST, OPTIONS")
                    .route(on(Method::POST).to(fairplay::license))
                    .route(on(Method::OPTIONS).to(cors::preflight)),
            )
            .service(
                resource("/healthz", "GET, HEAD")
                    .route(on(Method::GET).to(healthz))
                    .route(on(Method::HEAD).to(healthz)),
            )
            .default_service(web::to(not_found))
    })
    .workers(workers)
    .disable_signals()
    .shutdown_timeout(10);
    let server = match tls {
        Some(acceptor) => server.listen_openssl(listener, acceptor)?,
        None => server.listen(listener)?,
    };
    Ok(server.run())
}

/// Whatever actix itself answers with (an extractor error, a panic turned into
/// 500) leaves as the same JSON error shape as berth's own errors.
fn ensure_json_error(response: actix_web::dev::ServiceResponse) -> actix_web::dev::ServiceResponse {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !status.is_client_error() && !status.is_server_error() || is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::INTERNAL_SERVER_ERROR => (
            "internal",
            "the server failed; the crew can find the cause in its log",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("body_too_large", "the request body is larger than 64 KiB"),
        StatusCode::NOT_FOUND => ("not_found", "there is nothing at this path"),
        _ => ("bad_request", "the request could not be understood"),
    };
    if status.is_server_error() {
        tracing::error!(%status, "answering a server error from the framework");
    }
    response.map_into_boxed_body().map_body(|head, _| {
        let fresh = error::error_response(head.status, code, message, None);
        for (name, value) in fresh.headers() {
            head.headers.insert(name.clone(), value.clone());
        }
        fresh.into_body().boxed()
    })
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// A path's resource (one path each: a resource with several is matched with
/// a regex set on every request). Any method its routes do not take is answered
/// `405 method_not_allowed` with `Allow`, the methods it does (RFC 9110, 15.5.6).
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow })
    }))
}

/// A route for one method. Not actix's `web::post()` and the like: their guard
/// records each method it tries in the request's extensions (a map and two
/// more allocations a request, issue 37) for an `Allow` header that
/// [`resource`]'s 405 writes instead.
fn on(method: Method) -> actix_web::Route {
    web::route().guard(actix_web::guard::fn_guard(move |ctx| ctx.head().method == method))
}

fn client_ip(req: &HttpRequest) -> IpAddr {
    req.peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// The token, by SPEC precedence: `X-AxDRM-Message`, `Authorization: Bearer`,
/// query `AxDrmMessage`, query `token`. A place that is present but empty holds
/// no token and the next one is looked at (a player configured with an empty
/// header before its app fetched the token, a `token=` left in a URL template).
/// A header that is present but not UTF-8 yields an empty token, which fails
/// verification as malformed (as does any other byte a compact JWS cannot hold).
/// Headers are borrowed, not copied.
fn find_token(req: &HttpRequest) -> Option<Cow<'_, str>> {
    fn text(value: &HeaderValue) -> &str {
        std::str::from_utf8(value.as_bytes()).unwrap_or("").trim()
    }
    if let Some(value) = req.headers().get(AXDRM_MESSAGE)
        && !value.as_bytes().trim_ascii().is_empty()
    {
        return Some(Cow::Borrowed(text(value)));
    }
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let text = text(value);
        if text.len() > 7 && text.is_char_boundary(7) && text[..7].eq_ignore_ascii_case("bearer ") {
            return Some(Cow::Borrowed(text[7..].trim()));
        }
    }
    let query = req.query_string();
    if query.is_empty() {
        return None;
    }
    let params: HashMap<String, String> = web::Query::<HashMap<String, String>>::from_query(query)
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let given = |name: &str| {
        params
            .get(name)
            .map(|token| token.trim())
            .filter(|token| !token.is_empty())
    };
    given("AxDrmMessage")
        .or_else(|| given("token"))
        .map(|token| Cow::Owned(token.to_owned()))
}

/// Limits one token from one address (a request without a token is refused
/// anyway, and counts nothing).
fn check_rate(api: &LicenseApi, token: Option<&str>, client: IpAddr) -> Result<(), ApiError> {
    match (&api.rate, token) {
        (Some(limiter), Some(token)) => limiter
            .check(token, client, Instant::now())
            .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs }),
        _ => Ok(()),
    }
}

async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    timeout: Duration,
) -> Result<web::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(ApiError::BodyTooLarge);
    }
    // With its declared length the body is collected into a buffer of that
    // size; a bare stream would start with 32 KiB per request (1,000 players
    // in flight: 32 MB) for a body that is usually under 100 bytes.
    // The first look at the body leaves no waker with it (`first_look`): the
    // timeout's timer holds the task's.
    let collected = match declared {
        Some(length) => {
            let sized = actix_web::body::SizedStream::new(length, payload);
            let body = first_look(actix_web::body::to_bytes_limited(sized, MAX_BODY));
            tokio::time::timeout(timeout, body)
                .await
                .map(|r| r.map(|r| r.map_err(|e| unreadable_body(Some(&e)))))
        }
        None => tokio::time::timeout(timeout, first_look(payload.to_bytes_limited(MAX_BODY)))
            .await
            .map(|r| r.map(|r| r.map_err(|e| unreadable_body(e.as_error())))),
    };
    match collected {
        Err(_) => Err(ApiError::BadRequest(
            "the request body did not arrive in time".into(),
        )),
        Ok(Err(_)) => Err(ApiError::BodyTooLarge),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Ok(Ok(bytes))) => Ok(bytes),
    }
}

/// Why a request body could not be read, in berth's words: actix's own
/// wording shows its types' debug forms ("payload reached EOF before
/// completing: None").
fn unreadable_body(error: Option<&actix_web::error::PayloadError>) -> ApiError {
    use actix_web::error::PayloadError;
    let why = match error {
        Some(PayloadError::Overflow) => return ApiError::BodyTooLarge,
        Some(PayloadError::Incomplete(_)) => "the request body ended before it was complete",
        _ => "the request body could not be read",
    };
    ApiError::BadRequest(why.into())
}

/// One log line per license request: outcome, key system, KID count, latency.
/// Never a key, a token or a user id.
fn log_outcome(
    outcomes: &Outcomes,
    key_system: KeySystem,
    kids: usize,
    started: Instant,
    outcome: Result<(i64, bool), &ApiError>,
) {
    let elapsed = started.elapsed();
    outcomes.record(
        key_system,
        outcome.map_or_else(ApiError::outcome, |_| Outcome::Ok),
        elapsed,
    );
    let latency_us = elapsed.as_micros() as u64;
    match outcome {
        Ok((seq, false)) => tracing::info!(
            target: "berth::license",
            outcome = "ok",
            key_system = key_system.as_str(),
            kids,
            seq,
            latency_us,
        ),
        Ok((_, true)) => tracing::info!(
            target: "berth::license",
            outcome = "ok",
            key_system = key_system.as_str(),
            kids,
            repeat = true,
            latency_us,
        ),
        Err(e) => tracing::info!(
            target: "berth::license",
            outcome = e.outcome().code(),
            key_system = key_system.as_str(),
            kids,
            latency_us,
            // Quoted and escaped: it can hold a stranger's text.
            reason = ?e.to_string(),
        ),
    }
}

async fn clearkey_license(
    req: HttpRequest,
    payload: web::Payload,
    api: web::Data<LicenseApi>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let mut kid_count = 0;
    let result = async {
        let client = client_ip(&req);
        let token = find_token(&req);
        check_rate(&api, token.as_deref(), client)?;
        let body = read_body(&req, payload, api.body_timeout).await?;
        let request = clearkey::parse_request(&body).map_err(|e| match e {
            e @ ClearKeyError::NotClearKey(_) => ApiError::KeySystemUnsupported(e.to_string()),
            ClearKeyError::Malformed(why) => ApiError::BadRequest(why),
        })?;
        kid_count = request.kids.len();
        let license = api
            .service
            .issue(LicenseRequest {
                token: token.as_deref(),
                kids: request.kids,
                license_type: request.license_type,
                key_system: KeySystem::ClearKey,
                client,
            })
            .await?;
        let body = clearkey::response(&license.keys, request.license_type);
        Ok::<_, ApiError>((license.seq, body))
    }
    .await;
    log_outcome(
        &api.outcomes,
        KeySystem::ClearKey,
        kid_count,
        started,
        result.as_ref().map(|(seq, _)| (*seq, false)),
    );
    let (_, body) = result?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, JSON))
        .insert_header((header::CACHE_CONTROL, NO_STORE))
        .body(body))
}

async fn hls_key(req: HttpRequest, api: web::Data<LicenseApi>) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let result = async {
        let client = client_ip(&req);
        let token = find_token(&req);
        check_rate(&api, token.as_deref(), client)?;
        let kid: Kid =
            req.match_info().get("kid").unwrap_or("").parse().map_err(|_| {
                ApiError::BadRequest("the KID in the path is not a UUID or 32 hex digits".into())
            })?;
        let license = api
            .service
            .issue(LicenseRequest {
                token: token.as_deref(),
                kids: vec![kid],
                license_type: LicenseType::Temporary,
                key_system: KeySystem::Hls,
                client,
            })
            .await?;
        Ok::<_, ApiError>(license)
    }
    .await;
    log_outcome(
        &api.outcomes,
        KeySystem::Hls,
        1,
        started,
        result.as_ref().map(|l| (l.seq, l.repeat)),
    );
    let license = result?;
    let key = license.keys[0].1.0;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        ))
        .insert_header((header::CACHE_CONTROL, NO_STORE))
        .body(key.to_vec()))
}

async fn healthz(api: web::Data<LicenseApi>) -> HttpResponse {
    let report = crate::health::report(&api.service);
    let status = if report.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, JSON))
        .insert_header((header::CACHE_CONTROL, NO_STORE))
        .body(serde_json::to_string(&report).expect("a health report serialises"))
}
