//! The one place that turns errors into license-API responses: a status, a JSON
//! body `{"error","message"}`, and the same message in `X-AxDRM-ErrorMessage`.
//! A 500 says nothing about its cause (the server log gets that); a 503 names what
//! it waits for, which tells a passenger nothing secret.

use actix_web::http::StatusCode;
use actix_web::http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};

use super::outcomes::Outcome;
use crate::fairplay::SpcError;
use crate::fairplay::terms::Refusal;
use crate::fairplay::wire::WireError;
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
    /// Another key system's request, in words that name it where it is known.
    #[error("{0}")]
    KeySystemUnsupported(String),
    #[error("there is nothing at this path")]
    NotFound,
    /// With the methods the path takes, for the answer's `Allow`.
    #[error("this method is not allowed here")]
    MethodNotAllowed { allow: &'static str },
    #[error(transparent)]
    License(#[from] LicenseError),
    #[error("no FairPlay credentials are imported on this server")]
    FairPlayNotConfigured,
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Spc(#[from] SpcError),
    #[error(transparent)]
    Terms(#[from] Refusal),
    /// berth cannot take a request it would otherwise answer (no thread to
    /// open SPCs, or stopping): nothing was logged, and the player may retry.
    #[error("the server cannot take this request now ({0}); try again shortly")]
    Unavailable(&'static str),
}

impl ApiError {
    /// The answer this error is, with its code and status.
    pub fn outcome(&self) -> Outcome {
        match self {
            ApiError::BadRequest(_) | ApiError::BodyTimeout => Outcome::BadRequest,
            ApiError::BodyTooLarge => Outcome::BodyTooLarge,
            ApiError::RateLimited { .. } => Outcome::RateLimited,
            ApiError::KeySystemUnsupported(_) => Outcome::KeySystemUnsupported,
            ApiError::NotFound => Outcome::NotFound,
            ApiError::MethodNotAllowed { .. } => Outcome::MethodNotAllowed,
            ApiError::FairPlayNotConfigured => Outcome::FairPlayNotConfigured,
            ApiError::Unavailable(_) => Outcome::ServerUnavailable,
            ApiError::Wire(WireError::OtherKeySystem(_)) => Outcome::KeySystemUnsupported,
            ApiError::Wire(_) => Outcome::SpcMalformed,
            ApiError::Spc(e) => match e {
                SpcError::Malformed(_) => Outcome::SpcMalformed,
                SpcError::Version(_) => Outcome::SpcVersionUnsupported,
                SpcError::Protocol(_) => Outcome::SpcProtocolUnsupported,
                SpcError::WrongCertificate => Outcome::SpcWrongCertificate,
                SpcError::SessionKey => Outcome::SpcSessionKey,
                SpcError::Integrity => Outcome::SpcIntegrityFailed,
                SpcError::AssetId(_) => Outcome::AssetIdInvalid,
            },
            ApiError::Terms(Refusal::Output(_)) => Outcome::OutputNotAllowed,
            ApiError::Terms(Refusal::Hdcp(_)) => Outcome::UnsupportedEntitlement,
            ApiError::License(e) => match e {
                LicenseError::TokenMissing => Outcome::TokenMissing,
                LicenseError::Token(TokenError::Invalid(_) | TokenError::UnknownComKey(_)) => {
                    Outcome::TokenInvalid
                }
                LicenseError::Token(TokenError::Expired(_)) => Outcome::TokenExpired,
                LicenseError::Token(TokenError::NotYetValid(_)) => Outcome::TokenNotYetValid,
                LicenseError::Token(TokenError::Unsupported(_)) => Outcome::UnsupportedEntitlement,
                LicenseError::Denied(Denial::IpNotAllowed) => Outcome::IpNotAllowed,
                LicenseError::Denied(Denial::PersistenceNotAllowed) => Outcome::PersistenceNotAllowed,
                LicenseError::Denied(Denial::NotEntitled(_)) => Outcome::KeyNotEntitled,
                LicenseError::Denied(Denial::Unknown(_)) => Outcome::KeyUnknown,
                LicenseError::Denied(Denial::Unenforceable(_)) => Outcome::UnsupportedEntitlement,
                LicenseError::TokenReused => Outcome::TokenReused,
                LicenseError::LogUnavailable(_) => Outcome::LogUnavailable,
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
        StatusCode::from_u16(self.outcome().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = error_response(
            self.status_code(),
            self.outcome().code(),
            &self.message(),
            self.retry_after(),
        );
        if let ApiError::MethodNotAllowed { allow } = self {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

impl ApiError {
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            ApiError::License(LicenseError::LogUnavailable(_)) | ApiError::Unavailable(_) => Some(2),
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
