//! CORS for the license API (SPEC section 4): every response, errors included,
//! carries the headers; preflights answer 204.
//!
//! The origin `null` (sandboxed frames, `file:` pages) is never granted. Only
//! origins the configuration names get `Access-Control-Allow-Credentials`; with
//! `"*"` any other origin may read answers, without credentials (players send
//! their token in a header or the URL, not in a cookie).

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

#[derive(Debug, Clone)]
pub struct Cors {
    any: bool,
    origins: Vec<String>,
}

const ALLOW_HEADERS: &str = "Content-Type, X-AxDRM-Message, Authorization";

impl Cors {
    pub fn new(allowed: &[String]) -> Cors {
        Cors {
            any: allowed.iter().any(|o| o == "*"),
            origins: allowed.iter().filter(|o| *o != "*").cloned().collect(),
        }
    }

    /// Whether every origin may call the license API (the crew dashboard warns).
    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// `None`: not allowed; `Some(credentials)`: allowed, with or without them.
    fn grant(&self, origin: &str) -> Option<bool> {
        if origin.eq_ignore_ascii_case("null") {
            return None;
        }
        if self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
            return Some(true);
        }
        self.any.then_some(false)
    }

    /// Adds the CORS headers for a request with this `Origin` to a response.
    pub fn decorate(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        let Some(origin) = origin else { return };
        let Some(credentials) = origin.to_str().ok().and_then(|o| self.grant(o)) else {
            return;
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("X-AxDRM-ErrorMessage"),
        );
    }
}

/// `OPTIONS` on a license path: 204 with what browsers need to send the real
/// request. The requested headers are echoed (players add their own).
pub async fn preflight(req: HttpRequest) -> HttpResponse {
    let requested = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty() && v.len() <= 1024);
    let allow_headers = match requested {
        Some(asked) => format!("{ALLOW_HEADERS}, {asked}"),
        None => ALLOW_HEADERS.to_owned(),
    };
    HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
        .finish()
}
