//! FairPlay Streaming on the license listener: the FPS certificate players
//! fetch first, and the SPC-to-CKC exchange, behind the same token check,
//! rate limit, log and count as Clear Key.

use std::time::Instant;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::{ApiError, LicenseApi, check_rate, client_ip, find_token, log_outcome, read_body};
use crate::fairplay::{self, ckc, spc, terms, wire};
use crate::ids::KeySystem;
use crate::license::LicenseRequest;

/// `GET /fairplay/certificate`: the FPS certificate (DER). Not a license,
/// not counted.
pub async fn certificate(api: web::Data<LicenseApi>) -> Result<HttpResponse, ApiError> {
    let credentials = api
        .service
        .keys()
        .fairplay()
        .ok_or(ApiError::FairPlayNotConfigured)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/pkix-cert"))
        .insert_header((header::CACHE_CONTROL, "max-age=3600"))
        .body(credentials.key.certificate_der().to_vec()))
}

/// `POST /fairplay/license`: an SPC in any of `wire`'s forms, a CKC back in
/// the same form. The token is checked before the SPC is opened (an RSA
/// decryption a stranger without a token cannot make berth do), and the
/// terms are decided before the row is logged, so that a refusal writes no
/// row.
pub async fn license(
    req: HttpRequest,
    payload: web::Payload,
    api: web::Data<LicenseApi>,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let result = async {
        let client = client_ip(&req);
        let token = find_token(&req);
        check_rate(&api, token.as_deref(), client)?;
        let body = read_body(&req, payload, api.body_timeout).await?;
        let request = wire::parse(&body)?;
        let credentials = api
            .service
            .keys()
            .fairplay()
            .ok_or(ApiError::FairPlayNotConfigured)?;
        let entitlement = api.service.entitlement(token.as_deref()).await?;
        let spc = spc::open(&request.spc, &credentials)?;
        let (kid, iv) = fairplay::asset::kid(&spc.asset_id)?;
        if let Some(named) = &request.asset_id
            && fairplay::asset::kid(named.as_bytes()).map(|(k, _)| k).ok() != Some(kid)
        {
            return Err(wire::WireError::AssetIdMismatch.into());
        }
        let now = api.service.clock().now();
        let terms = terms::decide(
            entitlement.fairplay_rules(&kid),
            entitlement.license_limit(now),
            entitlement.allow_persistence,
            &spc,
        )?;
        let license = api
            .service
            .issue_entitled(
                entitlement,
                LicenseRequest {
                    token: token.as_deref(),
                    kids: vec![kid],
                    license_type: terms.license_type(),
                    key_system: KeySystem::FairPlay,
                    client,
                },
            )
            .await?;
        let ckc = ckc::build(&spc, &license.keys[0].1, &iv.unwrap_or([0; 16]), &terms);
        Ok::<_, ApiError>((license.seq, wire::answer(request.form, &ckc)))
    }
    .await;
    log_outcome(
        &api.outcomes,
        KeySystem::FairPlay,
        1,
        started,
        result.as_ref().map(|(seq, _)| (*seq, false)),
    );
    let (_, (content_type, body)) = result?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, super::NO_STORE))
        .body(body))
}
