//! `berth ground serve`: the vendor's receiver for the reports vessels upload.
//! Mutual TLS: every client shows a certificate from the vendor's CA whose
//! common name (or a subject alternative name) is its installation id, and may
//! upload only that installation's reports. Each report is verified in full
//! before [`archive::GroundStore`] keeps it; `fleet summary` and `fleet bill`
//! read the store as they read any folder of reports.
//!
//! Architecture Invariant: the HTTP side of the ground; the decisions are in
//! `archive`, which knows nothing of HTTP.

pub mod archive;
pub mod registry;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

pub use archive::{CheckpointName, GroundStore, Refusal, ReportName, Stored, Upload};
pub use registry::Registry;

/// Uploads received at once; more are answered 503 with Retry-After.
const UPLOADS_AT_ONCE: usize = 8;

/// How `berth ground serve` runs (the CLI's flags, in `cli::args`).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Folder the verified reports are kept in, one folder per installation.
    pub store: PathBuf,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// The CA that issues the vessels' client certificates.
    pub client_ca: PathBuf,
    /// `<installation id>.pem` report keys; without, pinned by first reports.
    pub pubkeys: Option<PathBuf>,
    pub registry: Option<PathBuf>,
    /// Free space (MB) the store's disk keeps.
    pub min_free_mb: u64,
    /// The longest one upload may take to arrive, in seconds.
    pub upload_timeout_secs: u64,
    /// The longest an upload may send nothing, in seconds.
    pub body_idle_secs: u64,
}

/// What the receiver's handlers share.
struct Receiver {
    store: GroundStore,
    uploads: tokio::sync::Semaphore,
    min_free: u64,
    upload_timeout: std::time::Duration,
    body_idle: std::time::Duration,
}

/// The installation ids a connection's client certificate names.
#[derive(Clone)]
struct PeerNames(Vec<String>);

/// Runs the receiver until SIGTERM or SIGINT.
pub fn serve(args: &ServeOptions) -> anyhow::Result<()> {
    let registry = args.registry.as_deref().map(Registry::load).transpose()?;
    let receiver = Arc::new(Receiver {
        store: GroundStore::open(&args.store, args.pubkeys.as_deref(), registry)?,
        uploads: tokio::sync::Semaphore::new(UPLOADS_AT_ONCE),
        min_free: args.min_free_mb.saturating_mul(1 << 20),
        upload_timeout: std::time::Duration::from_secs(args.upload_timeout_secs.max(1)),
        body_idle: std::time::Duration::from_secs(args.body_idle_secs.max(1)),
    });
    let acceptor = crate::crypto::mutual_tls_acceptor(&args.tls_cert, &args.tls_key, &args.client_ca)?;
    let listener = std::net::TcpListener::bind(args.listen)
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    actix_web::rt::System::new().block_on(async move {
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(web::Data::from(Arc::clone(&receiver)))
                .route(
                    "/healthz",
                    web::get().to(|| async { HttpResponse::Ok().json(json!({"ok": true})) }),
                )
                .default_service(web::to(receive))
        })
        .on_connect(|connection, extensions| {
            if let Some(names) = crate::crypto::peer_names(connection) {
                extensions.insert(PeerNames(names));
            }
        })
        .workers(2)
        .listen_openssl(listener, acceptor)?
        .run();
        tracing::info!(%addr, store = %args.store.display(), "ground receiver listening");
        // As `berth serve` does: the address on stdout, for whoever started it
        // on port 0; a closed stdout must not take the receiver down.
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "ground receiver listening on https://{addr}");
        let _ = stdout.flush();
        crate::systemd::ready();
        server.await?;
        anyhow::Ok(())
    })
}

fn answer(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

fn refused(refusal: &Refusal) -> HttpResponse {
    let status = match refusal {
        Refusal::BadName(_) => StatusCode::BAD_REQUEST,
        Refusal::NotYours(_) => StatusCode::FORBIDDEN,
        Refusal::Conflict(_) => StatusCode::CONFLICT,
        Refusal::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Refusal::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Refusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::LengthRequired(_) => StatusCode::LENGTH_REQUIRED,
        Refusal::DiskLow(_) => StatusCode::INSUFFICIENT_STORAGE,
        Refusal::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
    };
    let mut response = HttpResponse::build(status);
    if matches!(
        refusal,
        Refusal::Busy(_) | Refusal::DiskLow(_) | Refusal::Unavailable(_)
    ) {
        response.insert_header(("Retry-After", "60"));
    }
    if matches!(refusal, Refusal::Timeout(_)) {
        response.insert_header(("Connection", "close"));
    }
    response.json(json!({ "reason": refusal.to_string() }))
}

/// `PUT` or `POST` of one report zip to any path ending in its file name, as
/// berth's uploader sends it.
async fn receive(req: HttpRequest, payload: web::Payload, receiver: web::Data<Receiver>) -> HttpResponse {
    if !matches!(req.method().as_str(), "PUT" | "POST") {
        return answer(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({ "reason": "send a report with PUT or POST" }),
        );
    }
    let peer = req
        .conn_data::<PeerNames>()
        .cloned()
        .unwrap_or(PeerNames(Vec::new()));
    let result = receive_upload(&req, payload, &peer, &receiver).await;
    let client = peer.0.first().map(String::as_str).unwrap_or("-");
    match result {
        Ok((name, stored)) => {
            let file = name.file_name();
            let status = if stored == Stored::New {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            tracing::info!(%client, report = %file, status = status.as_u16(), "report stored");
            answer(
                status,
                json!({ "stored": file, "installation": name.installation() }),
            )
        }
        Err(refusal) => {
            tracing::warn!(%client, path = %req.path(), reason = ?refusal.to_string(), "upload refused");
            refused(&refusal)
        }
    }
}

/// One upload, checked before its body is read (name, owner, length, room
/// on the disk, uploads at once), received within the timeouts, then
/// verified and stored off the async workers.
async fn receive_upload(
    req: &HttpRequest,
    payload: web::Payload,
    peer: &PeerNames,
    receiver: &web::Data<Receiver>,
) -> Result<(Upload, Stored), Refusal> {
    let name = check_request(req, peer)?;
    let length = req
        .headers()
        .get("Content-Length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| Refusal::LengthRequired("send the upload with a Content-Length".into()))?;
    if length > name.limit() {
        return Err(Refusal::TooLarge(format!(
            "this upload is at most {} bytes",
            name.limit()
        )));
    }
    let free = crate::health::disk_free_bytes(receiver.store.dir()).unwrap_or(0);
    if free < receiver.min_free.saturating_add(length) {
        tracing::error!(free, length, "the ground store's disk is low: uploads refused");
        return Err(Refusal::DiskLow(
            "the receiver's disk is low; send it again later".into(),
        ));
    }
    let _permit = receiver
        .uploads
        .try_acquire()
        .map_err(|_| Refusal::Busy("the receiver is taking other uploads; send it again later".into()))?;
    let incoming = tokio::time::timeout(
        receiver.upload_timeout,
        receive_body(payload, &receiver.store, length, receiver.body_idle),
    )
    .await
    .unwrap_or_else(|_| Err(Refusal::Timeout("the upload took too long to arrive".into())))?;
    let receiver = receiver.clone();
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    web::block(move || {
        // `accept` removes the incoming file, whatever it decides.
        receiver
            .store
            .accept(&name, &incoming, now)
            .map(|stored| (name, stored))
    })
    .await
    .unwrap_or_else(|e| Err(Refusal::Unavailable(format!("the receiver failed: {e}"))))
}

/// The upload's name from the URL (and `X-Berth-Report` or
/// `X-Berth-Checkpoint`, which must agree), owned by the installation the
/// client certificate names.
fn check_request(req: &HttpRequest, peer: &PeerNames) -> Result<Upload, Refusal> {
    let last = req.path().rsplit('/').next().unwrap_or_default();
    let name: Upload = last.parse()?;
    for header in ["X-Berth-Report", "X-Berth-Checkpoint"] {
        if let Some(value) = req.headers().get(header)
            && value.as_bytes() != last.as_bytes()
        {
            return Err(Refusal::BadName(format!(
                "{header} names another file than the URL"
            )));
        }
    }
    if !peer.0.iter().any(|n| n == name.installation()) {
        return Err(Refusal::NotYours(format!(
            "this client's certificate is not installation {}'s",
            name.installation()
        )));
    }
    let content_type = req.headers().get("Content-Type").map(|v| v.as_bytes());
    if content_type != Some(b"application/zip".as_slice()) {
        return Err(Refusal::BadName(
            "send the report as Content-Type: application/zip".into(),
        ));
    }
    Ok(name)
}

/// Streams the body into a new file under the store's incoming folder, at
/// most `limit` bytes, and syncs it. A body that sends nothing for `idle` is
/// cut off (and its file removed).
async fn receive_body(
    mut payload: web::Payload,
    store: &GroundStore,
    limit: u64,
    idle: std::time::Duration,
) -> Result<PathBuf, Refusal> {
    use futures_core::Stream;
    let path = store.incoming_path();
    let failed = |e: std::io::Error| {
        tracing::error!(path = %path.display(), error = %e, "writing an upload failed");
        Refusal::Unavailable("the receiver could not write the upload; try again later".into())
    };
    let mut file = std::fs::File::create(&path).map_err(failed)?;
    let mut size = 0u64;
    let outcome = loop {
        let next = std::future::poll_fn(|cx| Pin::new(&mut payload).poll_next(cx));
        let Ok(next) = tokio::time::timeout(idle, next).await else {
            break Err(Refusal::Timeout(format!(
                "the upload sent nothing for {} seconds",
                idle.as_secs()
            )));
        };
        match next {
            None => break file.sync_all().map_err(failed),
            Some(Err(e)) => break Err(Refusal::BadName(format!("the upload was cut off: {e}"))),
            Some(Ok(chunk)) => {
                size += chunk.len() as u64;
                if size > limit {
                    break Err(Refusal::TooLarge(format!("this upload is at most {limit} bytes")));
                }
                if let Err(e) = file.write_all(&chunk) {
                    break Err(failed(e));
                }
            }
        }
    };
    match outcome {
        Ok(()) => Ok(path),
        Err(refusal) => {
            let _ = std::fs::remove_file(&path);
            Err(refusal)
        }
    }
}
