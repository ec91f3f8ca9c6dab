//! The license API over HTTPS (`license.tls_cert` / `license.tls_key`): players
//! get licenses through it, plain HTTP and broken handshakes on its port get
//! nothing and count nothing, and `berth serve` / `berth healthcheck` speak it.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslVersion};
use serde_json::{Value, json};

use crate::helpers::*;

/// An HTTPS client that trusts exactly this certificate (and shows redirects
/// rather than following them).
pub(crate) fn trusting(cert: &Path) -> awc::Client {
    let mut tls = SslConnector::builder(SslMethod::tls_client()).unwrap();
    tls.set_ca_file(cert).unwrap();
    awc::Client::builder()
        .connector(awc::Connector::new().openssl(tls.build()))
        .disable_redirects()
        .timeout(Duration::from_secs(10))
        .finish()
}

async fn tls_app(certs: &Path) -> (TestApp, PathBuf) {
    let (cert, key) = self_signed(certs);
    let app = spawn_app_with(|c| {
        c.license.tls_cert = cert.clone();
        c.license.tls_key = key.clone();
    })
    .await;
    (app, cert)
}

/// Runs blocking socket work off the test's runtime thread.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.unwrap()
}

/// A TLS handshake with the given highest protocol version; the error text when
/// it fails.
fn handshake(addr: SocketAddr, max: SslVersion) -> Result<(), String> {
    let mut tls = SslConnector::builder(SslMethod::tls_client()).unwrap();
    tls.set_verify(openssl::ssl::SslVerifyMode::NONE);
    // Let the client offer old versions at all; the server must refuse them.
    tls.set_security_level(0);
    tls.set_min_proto_version(Some(SslVersion::TLS1)).unwrap();
    tls.set_max_proto_version(Some(max)).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let config = tls.build().configure().unwrap().verify_hostname(false);
    config
        .connect("localhost", tcp)
        .map(drop)
        .map_err(|e| e.to_string())
}

#[actix_web::test]
async fn players_get_licenses_over_https() {
    let certs = tempfile::tempdir().unwrap();
    let (app, cert) = tls_app(certs.path()).await;
    let client = trusting(&cert);
    let token = app.token(&[KID_A], json!({}));

    let mut res = client
        .post(format!("https://{}/clearkey", app.addr))
        .insert_header(("X-AxDRM-Message", token.as_str()))
        .insert_header(("Origin", "https://portal.example"))
        .send_body(clearkey_body(&[KID_A], "temporary"))
        .await
        .expect("a license over TLS");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("access-control-allow-origin").unwrap(),
        "https://portal.example"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["keys"][0]["kid"], b64url_kid(KID_A));

    let mut key = client
        .get(format!(
            "https://{}/hls/key/{KID_A}?token={}",
            app.addr,
            app.token(&[KID_A], json!({}))
        ))
        .send()
        .await
        .expect("an HLS key over TLS");
    assert_eq!(key.status(), 200);
    assert_eq!(key.body().await.unwrap().as_ref(), KEY_A);

    // Errors leave as JSON over TLS too.
    let mut denied = client
        .post(format!("https://{}/clearkey", app.addr))
        .send_body(clearkey_body(&[KID_A], "temporary"))
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let body: Value = denied.json().await.unwrap();
    assert_eq!(body["error"], "token_missing");
    assert_eq!(app.log_rows(), 2);

    let health = client
        .get(format!("https://{}/healthz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[actix_web::test]
async fn plain_http_and_broken_handshakes_get_nothing() {
    let certs = tempfile::tempdir().unwrap();
    let (app, cert) = tls_app(certs.path()).await;
    let addr = app.addr;
    let token = app.token(&[KID_A], json!({}));

    // A player configured with http:// on the TLS port: no answer, no license.
    let plain = format!(
        "POST /clearkey HTTP/1.1\r\nHost: {addr}\r\nX-AxDRM-Message: {token}\r\nContent-Length: {}\r\n\r\n{}",
        clearkey_body(&[KID_A], "temporary").len(),
        clearkey_body(&[KID_A], "temporary")
    );
    let answers = blocking(move || {
        let mut answers = Vec::new();
        let hello_cut = {
            // The first bytes of a real ClientHello, then the peer goes away.
            let mut hello = vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
            hello.extend([0xab; 40]);
            hello
        };
        let oversized_record = [0x16, 0x03, 0x03, 0xff, 0xff]
            .into_iter()
            .chain(std::iter::repeat_n(0x41, 70_000))
            .collect::<Vec<u8>>();
        let garbage: Vec<u8> = (0..65_536u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        for bytes in [plain.into_bytes(), hello_cut, oversized_record, garbage] {
            let mut tcp = TcpStream::connect(addr).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = tcp.write_all(&bytes);
            let _ = tcp.shutdown(std::net::Shutdown::Write);
            let mut answer = Vec::new();
            let _ = tcp.take(1 << 20).read_to_end(&mut answer);
            answers.push(answer);
        }
        answers
    })
    .await;
    for answer in &answers {
        assert!(
            !answer.starts_with(b"HTTP/"),
            "plain bytes on the TLS port got an HTTP answer: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
    }
    assert_eq!(app.log_rows(), 0);

    // Protocol versions: Mozilla's "intermediate" settings, TLS 1.2 and 1.3 only.
    let old = blocking(move || handshake(addr, SslVersion::TLS1_1)).await;
    let refused = old.expect_err("TLS 1.1 was accepted");
    // The alert came from berth: the client offered TLS 1.1, berth said no.
    assert!(refused.contains("alert protocol version"), "{refused}");
    for version in [SslVersion::TLS1_2, SslVersion::TLS1_3] {
        let result = blocking(move || handshake(addr, version)).await;
        assert!(result.is_ok(), "{result:?}");
    }

    // The listener still serves after all of that.
    let res = trusting(&cert)
        .post(format!("https://{addr}/clearkey"))
        .insert_header(("X-AxDRM-Message", token.as_str()))
        .send_body(clearkey_body(&[KID_A], "temporary"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.log_rows(), 1);
}

#[actix_web::test]
async fn a_certificate_berth_cannot_use_stops_the_start() {
    let certs = tempfile::tempdir().unwrap();
    let (mut app, _cert) = tls_app(certs.path()).await;
    app.stop().await;
    let other = tempfile::tempdir().unwrap();
    let (_, wrong_key) = self_signed(other.path());
    let master =
        berth::installation::load_master_key(&berth::installation::master_key_path(&app.config)).unwrap();
    let start = |config: berth::config::Config| {
        let master = master.clone();
        let clock = app.clock.clone();
        async move {
            let started = berth::server::start(
                &config,
                berth::server::Startup {
                    master,
                    clock,
                    license_listener: std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
                    admin_listener: None,
                    workers: Some(1),
                },
            )
            .await;
            format!("{:#}", started.err().expect("refused"))
        }
    };

    let mut mismatched = app.config.clone();
    mismatched.license.tls_key = wrong_key;
    let error = start(mismatched).await;
    assert!(
        error.contains("license.tls_cert / license.tls_key") && error.contains("does not match"),
        "{error}"
    );

    let mut missing = app.config.clone();
    missing.license.tls_cert = certs.path().join("nowhere.pem");
    let error = start(missing).await;
    assert!(
        error.contains("reading TLS certificate") && error.contains("nowhere.pem"),
        "{error}"
    );

    // A key file that is not a key: its own contents are not echoed.
    let mut not_a_key = app.config.clone();
    let bogus = certs.path().join("bogus.key");
    std::fs::write(
        &bogus,
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    not_a_key.license.tls_key = bogus;
    let error = start(not_a_key).await;
    assert!(error.contains("reading TLS key"), "{error}");
    assert!(!error.contains("c2VjcmV0"), "{error}");
}

#[test]
fn serve_and_healthcheck_speak_https() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    berth_init(&data, "tls-1", "ship", "TLS Test");
    let (cert, key) = self_signed(tmp.path());
    let tls_env = [
        ("BERTH_LICENSE_TLS_CERT", cert.as_os_str()),
        ("BERTH_LICENSE_TLS_KEY", key.as_os_str()),
    ];
    // `serve` prints its address only after its own health probe answered,
    // which it made over TLS.
    let log = tmp.path().join("serve.log");
    let (child, url) =
        spawn_serve_process(&data, &tls_env, Stdio::from(std::fs::File::create(&log).unwrap()));
    assert!(url.starts_with("https://"), "{url}");
    let addr = url.trim_start_matches("https://").to_owned();
    let healthcheck = |envs: &[(&str, &std::ffi::OsStr)]| {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["healthcheck", "--addr", &addr])
            .env_remove("BERTH_CONFIG")
            .envs(envs.iter().copied())
            .output()
            .unwrap()
    };
    let out = healthcheck(&tls_env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "healthy");

    // A probe that does not know the listener speaks TLS says what to check.
    let out = healthcheck(&[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("license.tls_cert"), "{stderr}");
    assert!(terminate(child).success());
    // The certificate is good for two days: berth says so at start.
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("WARN") && log.contains("the certificate expires within 30 days"),
        "{log}"
    );
}

/// The crew's dashboard says when each listener's certificate expires, in red
/// within 30 days and once it has expired (browsers then refuse the listener,
/// and a vessel offline cannot fetch a new certificate by itself).
#[actix_web::test]
async fn the_dashboard_says_when_the_certificates_expire() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_for(certs.path(), 400);
    let app = spawn_admin_app_with(|c| {
        c.license.tls_cert = cert.clone();
        c.license.tls_key = key.clone();
    })
    .await;
    let now = time::OffsetDateTime::now_utc();
    // The dashboard's certificate row with berth's clock `days` ahead (signed
    // in again: a session ends after hours without a request).
    let row_after = async |days: i64| {
        app.clock.set(now + time::Duration::days(days));
        let (_, page) = get(&app, &session(&app).await, "/").await;
        let start = page.find("License API certificate").expect("a certificate row");
        let row = page[start..start + page[start..].find("</tr>").unwrap()].to_owned();
        (row, page)
    };
    let (healthy, page) = row_after(0).await;
    assert!(
        healthy.contains("(in 400 days)") && !healthy.contains("bad"),
        "{healthy}"
    );
    assert!(
        !page.contains("Admin UI certificate"),
        "the admin UI speaks plain HTTP here"
    );
    // Monitoring reads the same date from /metrics (the date itself is the
    // one the row above puts 400 days ahead).
    let expires = berth::crypto::certificate_expiry(&cert).unwrap();
    let (_, metrics) = get(&app, &session(&app).await, "/metrics").await;
    assert!(
        metrics.contains(&format!(
            "berth_tls_certificate_expiry_seconds{{listener=\"License API\"}} {}\n",
            expires.unix_timestamp()
        )),
        "{metrics}"
    );

    // Ten days before the end: red, with what to do.
    let (soon, _) = row_after(390).await;
    assert!(
        soon.contains("class=\"bad\"")
            && soon.contains("(in 10 days); install a new one before then and restart berth"),
        "{soon}"
    );
    let (expired, _) = row_after(401).await;
    assert!(
        expired.contains("class=\"bad\"")
            && expired.contains("expired on ")
            && expired.contains("browsers refuse it"),
        "{expired}"
    );
}

/// `crypto::peer_names` reads the client certificate's names from the
/// connection actix-web hands to `on_connect` by downcasting it to actix-tls's
/// stream type: after an upgrade that changes that type it would quietly find
/// nothing, and every upload would get 403. This fails first.
#[actix_web::test]
async fn the_tls_peer_names_are_read_from_actix_webs_connection() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.issue("server", "ground.example", Some("IP:127.0.0.1"));
    let client = pki.issue("client", "a320-d-aine", Some("DNS:a320.example"));
    let acceptor = berth::crypto::mutual_tls_acceptor(&cert, &key, &pki.ca()).unwrap();
    let seen: Arc<Mutex<Option<Vec<String>>>> = Arc::default();
    let record = Arc::clone(&seen);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = actix_web::HttpServer::new(|| {
        actix_web::App::new().default_service(actix_web::web::to(|| async {
            actix_web::HttpResponse::Ok().json(json!({}))
        }))
    })
    .on_connect(move |connection, _| {
        *record.lock().unwrap() = berth::crypto::peer_names(connection);
    })
    .workers(1)
    .listen_openssl(listener, acceptor)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let answer = actix_web::rt::task::spawn_blocking(move || {
        send(&pki, port, Some((&client.0, &client.1)), "GET /x HTTP/1.1", b"")
    })
    .await
    .unwrap();
    assert_eq!(answer.unwrap().0, 200);
    assert_eq!(
        seen.lock().unwrap().clone(),
        Some(vec!["a320-d-aine".to_owned(), "a320.example".to_owned()])
    );
    handle.stop(false).await;
}

/// The license listener speaks HTTP/1.1 only, over TLS and in the clear: it
/// picks `http/1.1` when a client offers `h2` first, and a cleartext HTTP/2
/// preface gets no HTTP/2 answer. berth's first look at a request body leaves
/// no waker with it, which holds only where the connection's own task feeds
/// the body and then polls the handler: HTTP/1's dispatcher, not HTTP/2's.
#[actix_web::test]
async fn the_license_listener_speaks_http1_only() {
    let certs = tempfile::tempdir().unwrap();
    let (app, _) = tls_app(certs.path()).await;
    let addr = app.addr;
    let picked = blocking(move || {
        let mut tls = SslConnector::builder(SslMethod::tls_client()).unwrap();
        tls.set_verify(openssl::ssl::SslVerifyMode::NONE);
        tls.set_alpn_protos(b"\x02h2\x08http/1.1").unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        let config = tls.build().configure().unwrap().verify_hostname(false);
        let stream = config.connect("localhost", tcp).unwrap();
        stream.ssl().selected_alpn_protocol().map(<[u8]>::to_vec)
    })
    .await;
    assert_eq!(picked.as_deref(), Some(&b"http/1.1"[..]));

    let plain = spawn_app().await;
    let addr = plain.addr;
    let answer = blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    })
    .await;
    // Nothing, or HTTP/1.1's refusal; an HTTP/2 server would send its SETTINGS.
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 4"),
        "{answer:?}"
    );
}
