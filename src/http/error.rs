//! The one place that turns errors into license-API responses: a status, a JSON
//! body `{"error","message"}`, and the same message in `X-AxDRM-ErrorMessage`.
//! A 5xx says nothing about its cause; the server log gets that.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};

use crate::license::LicenseError;
use crate::token::{Denial, TokenError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body is larger than 64 KiB")]
    BodyTooLarge,
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error("too many requests from this address; try again shortly")]
    RateLimited { retry_after_secs: u64 },
    #[error("the request is not a Clear Key license request; this server only speaks Clear Key and HLS keys")]
    KeySystemUnsupported,
    #[error("there is nothing at this path")]
    NotFound,
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    #[error(transparent)]
    License(#[from] LicenseError),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::BodyTooLarge => "body_too_large",
            ApiError::BodyTimeout => "bad_request",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::KeySystemUnsupported => "key_system_unsupported",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::License(e) => match e {
                LicenseError::TokenMissing => "token_missing",
                LicenseError::Token(TokenError::Invalid(_) | TokenError::UnknownComKey(_)) => "token_invalid",
                LicenseError::Token(TokenError::Expired(_)) => "token_expired",
                LicenseError::Token(TokenError::NotYetValid(_)) => "token_not_yet_valid",
                LicenseError::Token(TokenError::Unsupported(_)) => "unsupported_entitlement",
                LicenseError::Denied(Denial::IpNotAllowed) => "ip_not_allowed",
                LicenseError::Denied(Denial::PersistenceNotAllowed) => "persistence_not_allowed",
                LicenseError::Denied(Denial::NotEntitled(_)) => "key_not_entitled",
                LicenseError::Denied(Denial::Unknown(_)) => "key_unknown",
                LicenseError::TokenReused => "token_reused",
                LicenseError::LogUnavailable(_) => "log_unavailable",
            },
        }
    }

    fn message(&self) -> String {
        match self {
            // The cause of a log failure (disk full, locked) helps crew, and tells a
            // passenger nothing secret.
            ApiError::License(LicenseError::LogUnavailable(why)) => {
                format!("the license could not be recorded ({why}); try again shortly")
            }
            other => other.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::BAD_REQUEST,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::KeySystemUnsupported => StatusCode::NOT_IMPLEMENTED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::License(e) => match e {
                LicenseError::TokenMissing
                | LicenseError::Token(TokenError::Invalid(_))
                | LicenseError::Token(TokenError::UnknownComKey(_))
                | LicenseError::Token(TokenError::Expired(_))
                | LicenseError::Token(TokenError::NotYetValid(_)) => StatusCode::UNAUTHORIZED,
                LicenseError::Token(TokenError::Unsupported(_))
                | LicenseError::Denied(_)
                | LicenseError::TokenReused => StatusCode::FORBIDDEN,
                LicenseError::LogUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }

    fn error_response(&self) -> HttpResponse {
        error_response(
            self.status_code(),
            self.code(),
            &self.message(),
            self.retry_after(),
        )
    }
}

impl ApiError {
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            ApiError::License(LicenseError::LogUnavailable(_)) => Some(2),
            _ => None,
        }
    }
}

/// Builds an error response; also used for `internal` (500) answers.
pub fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    retry_after: Option<u64>,
) -> HttpResponse {
    let body = serde_json::json!({ "error": code, "message": message });
    let mut response = HttpResponse::build(status);
    response
        .insert_header((CONTENT_TYPE, "application/json"))
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header(("X-AxDRM-ErrorMessage", header_safe(message)));
    if let Some(secs) = retry_after {
        response.insert_header((RETRY_AFTER, secs.to_string()));
    }
    response.body(body.to_string())
}

/// A header value carrying only visible ASCII (messages can quote client input).
fn header_safe(message: &str) -> HeaderValue {
    let cleaned: String = message
        .chars()
        .map(|c| if c == ' ' || c.is_ascii_graphic() { c } else { '?' })
        .collect();
    HeaderValue::from_str(&cleaned).unwrap_or_else(|_| HeaderValue::from_static("error"))
}
