//! FairPlay Streaming on the license listener: the FPS certificate players
//! fetch first, and the SPC-to-CKC exchange, behind the same token check,
//! rate limit, log and count as Clear Key.

use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Instant;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use tokio::sync::oneshot;

use super::{ApiError, LicenseApi, check_rate, client_ip, find_token, log_outcome, read_body};
use crate::fairplay::spc::Spc;
use crate::fairplay::{self, Credentials, SpcError, ckc, spc, terms, wire};
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
        let mut request = wire::parse(&body)?;
        let credentials = api
            .service
            .keys()
            .fairplay()
            .ok_or(ApiError::FairPlayNotConfigured)?;
        let entitlement = api.service.entitlement(token.as_deref()).await?;
        let spc = api
            .spc_openers
            .open(std::mem::take(&mut request.spc), credentials)
            .await?;
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

/// The threads that open SPCs, off the HTTP workers: one per CPU, started
/// with the first SPC, taking jobs from one queue as each finishes the last.
///
/// An SPC's RSA decryption is about 300 us of CPU. Opened on an HTTP worker,
/// it held every request on that worker behind it: during a rush of Apple
/// devices a Clear Key license waited 26 ms (p50) instead of 1, and `/healthz`
/// up to 25 ms (tests/bench/README.md). The queue has no bound of its own:
/// a connection has one request in flight at most, with a body of 64 KiB at
/// most, and a job whose player has gone is dropped unopened.
#[derive(Default)]
pub struct SpcOpeners {
    queue: OnceLock<mpsc::Sender<SpcJob>>,
}

struct SpcJob {
    spc: Vec<u8>,
    credentials: Arc<Credentials>,
    reply: oneshot::Sender<std::thread::Result<Result<Spc, SpcError>>>,
}

impl SpcOpeners {
    pub async fn open(&self, spc: Vec<u8>, credentials: Arc<Credentials>) -> Result<Spc, ApiError> {
        let (reply, answer) = oneshot::channel();
        let job = SpcJob {
            spc,
            credentials,
            reply,
        };
        if self.queue().send(job).is_err() {
            return Err(ApiError::Unavailable("no thread to open SPCs could be started"));
        }
        match answer.await {
            Ok(Ok(opened)) => Ok(opened?),
            // A bug in `spc::open` is the handler's panic, as if it had run here.
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(ApiError::Unavailable("the server is stopping")),
        }
    }

    fn queue(&self) -> &mpsc::Sender<SpcJob> {
        self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<SpcJob>();
            let rx = Arc::new(Mutex::new(rx));
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
            for i in 0..threads {
                let rx = Arc::clone(&rx);
                let spawned = std::thread::Builder::new()
                    .name(format!("berth-spc-{i}"))
                    .spawn(move || open_jobs(&rx));
                if let Err(e) = spawned {
                    // With none, the queue's receiver is gone and every SPC is a 503.
                    tracing::error!(error = %e, "could not start an SPC thread");
                }
            }
            tx
        })
    }
}

/// An SPC thread's life: the next job, until the server drops the queue.
fn open_jobs(queue: &Mutex<mpsc::Receiver<SpcJob>>) {
    loop {
        let Ok(job) = queue.lock().unwrap_or_else(|e| e.into_inner()).recv() else {
            return;
        };
        if job.reply.is_closed() {
            continue;
        }
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            spc::open(&job.spc, &job.credentials)
        }));
        let _ = job.reply.send(opened);
    }
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError as _;

    use super::*;
    use crate::crypto::fairplay::ProviderKey;
    use crate::fairplay::Ask;

    /// The fuzzing credentials: WebKit's test key and its certificate.
    fn credentials() -> Arc<Credentials> {
        let read = |path: &str| std::fs::read(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        Arc::new(Credentials {
            key: ProviderKey::new(
                &read("tests/libfuzzer/fairplay-cert.der"),
                &read("tests/api/fairplay/webkit-test-key.pem"),
            )
            .unwrap(),
            ask: Ask::parse(b"1a09d27bc2241afa82ea2458e6e8e6a3").unwrap(),
        })
    }

    #[actix_web::test]
    async fn an_spc_goes_to_a_thread_and_its_refusal_comes_back() {
        let openers = SpcOpeners::default();
        let refused = openers.open(vec![0; 7], credentials()).await.unwrap_err();
        assert!(
            matches!(refused, ApiError::Spc(SpcError::Malformed(_))),
            "{refused:?}"
        );
    }

    /// With no thread to open SPCs, a FairPlay request is a 503 that says so,
    /// with Retry-After; not a log failure, which would send crew to the disk.
    #[actix_web::test]
    async fn no_thread_to_open_spcs_is_a_503_that_names_it() {
        let (queue, threads) = mpsc::channel();
        drop(threads);
        let openers = SpcOpeners {
            queue: OnceLock::from(queue),
        };
        let refused = openers.open(vec![0; 7], credentials()).await.unwrap_err();
        assert_eq!(refused.outcome(), crate::http::Outcome::ServerUnavailable);
        let answer = refused.error_response();
        assert_eq!(answer.status(), 503);
        assert_eq!(answer.headers().get("retry-after").unwrap(), "2");
        let message = answer
            .headers()
            .get("x-axdrm-errormessage")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(message.contains("no thread to open SPCs"), "{message}");
        assert_eq!(refused.outcome().code(), "server_unavailable");
    }
}
