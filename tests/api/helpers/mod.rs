//! `spawn_app()`: a real berth on 127.0.0.1:0 with a fresh data dir and SQLite
//! file, plus an HS256 signer written here (independent of berth's own) and
//! helpers to run the real `berth` binary against the same data dir.

mod crew;
mod ground;
mod reports;

pub use crew::*;
pub use ground::*;
pub use reports::*;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use berth::clock::{FixedClock, SystemClock};
use berth::config::Config;
use berth::ids::NewKey;
use berth::ids::{ContentKey, Kid};
use berth::installation::{self, NewInstallation};
use berth::server::{self, Server, Startup};
use berth::store::{Db, VesselType};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const KID_A: &str = "9eb4050d-e44b-4802-932e-27d75083e266";
pub const KEY_A: [u8; 16] = [0x11; 16];
pub const KID_B: &str = "6a9c2e0b-6d43-4e2c-9a1f-0c3b7d5e8f21";
pub const KEY_B: [u8; 16] = [0x22; 16];
/// Known to nobody: never imported.
pub const KID_UNKNOWN: &str = "00000000-1111-4222-8333-444444444444";

pub struct TestApp {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub com_key_id: String,
    pub com_secret: [u8; 32],
    pub admin_password: String,
    /// The server's clock: real time at start, settable by tests.
    pub clock: Arc<FixedClock>,
    /// Whether `start` also runs the admin UI.
    pub with_admin: bool,
    server: Option<Server>,
}

/// A berth with the crew admin UI on its own port as well.
pub async fn spawn_admin_app() -> TestApp {
    spawn_admin_app_with(|_| {}).await
}

/// [`spawn_admin_app`] with a config of its own.
pub async fn spawn_admin_app_with(customise: impl FnOnce(&mut Config)) -> TestApp {
    let mut app = spawn_app_with(customise).await;
    app.stop().await;
    app.with_admin = true;
    app.start().await;
    app
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customise: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    customise(&mut config);
    let done = installation::create(
        &config,
        &NewInstallation {
            id: "test-vessel".parse().unwrap(),
            vessel_type: VesselType::Aircraft,
            vessel_name: "Test Aircraft".parse().unwrap(),
            admin_user: "admin".into(),
        },
        &SystemClock,
    )
    .expect("init");
    let master = installation::load_master_key(&installation::master_key_path(&config)).expect("master key");
    let mut db = Db::open(&config.data_dir, Arc::clone(&master)).expect("db");
    db.import_keys(
        &[
            NewKey {
                kid: kid(KID_A),
                key: ContentKey(KEY_A),
                label: "A".into(),
                period: None,
            },
            NewKey {
                kid: kid(KID_B),
                key: ContentKey(KEY_B),
                label: "B".into(),
                period: None,
            },
        ],
        OffsetDateTime::now_utc(),
    )
    .expect("import");
    drop(db);
    let com_secret: [u8; 32] = STANDARD.decode(&done.com_key_secret).unwrap().try_into().unwrap();
    let mut app = TestApp {
        addr: "127.0.0.1:0".parse().unwrap(),
        dir,
        config,
        com_key_id: done.com_key_id,
        com_secret,
        admin_password: done.admin_password,
        clock: Arc::new(FixedClock::new(OffsetDateTime::now_utc())),
        with_admin: false,
        server: None,
    };
    app.start().await;
    app
}

impl TestApp {
    pub async fn start(&mut self) {
        let master = installation::load_master_key(&installation::master_key_path(&self.config)).unwrap();
        // A restart in this process can find the data dir's lock still held for a
        // moment: the lock is an flock on an open file, and a child that another
        // test spawned at the instant `stop` closed it holds a copy of every open
        // file until it execs. So a start refused for the lock is tried again
        // (a real `berth serve` is a process of its own, and its exit frees it).
        let mut attempts = 0;
        let server = loop {
            let started = server::start(
                &self.config,
                Startup {
                    master: master.clone(),
                    clock: self.clock.clone(),
                    license_listener: TcpListener::bind("127.0.0.1:0").expect("bind"),
                    admin_listener: self
                        .with_admin
                        .then(|| TcpListener::bind("127.0.0.1:0").expect("bind admin")),
                    workers: Some(2),
                },
            )
            .await;
            match started {
                Err(e) if attempts < 50 && e.to_string().contains("another berth serve holds it") => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                other => break other.expect("start berth"),
            }
        };
        self.addr = server.license_addr();
        self.server = Some(server);
    }

    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    /// A running berth with the admin UI on its own port.
    pub fn admin_url(&self, path: &str) -> String {
        format!(
            "http://{}{}",
            self.server().admin_addr().expect("admin UI running"),
            path
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    pub fn db_path(&self) -> PathBuf {
        self.config.data_dir.join("berth.db")
    }

    /// Edits the database the way an operator with the sqlite3 shell could.
    pub fn tamper(&self, sql: &str) {
        let status = std::process::Command::new("sqlite3")
            .arg(self.db_path())
            .arg(sql)
            .status()
            .expect("sqlite3 is installed");
        assert!(status.success(), "sqlite3 {sql}");
    }

    /// Signs a payload with HS256 (openssl directly, not berth's signer).
    pub fn sign(&self, payload: &Value) -> String {
        sign_hs256(&self.com_secret, payload)
    }

    /// A valid token for these KIDs with these message fields merged in.
    pub fn token(&self, kids: &[&str], extra: Value) -> String {
        self.sign(&self.payload(kids, extra))
    }

    pub fn payload(&self, kids: &[&str], extra: Value) -> Value {
        let inline: Vec<Value> = kids.iter().map(|k| json!({ "id": k })).collect();
        let mut message = json!({
            "type": "entitlement_message",
            "version": 2,
            "license": { "allow_persistence": false },
            "content_keys_source": { "inline": inline },
            "session": { "user_id": "passenger-17A" },
        });
        for (k, v) in extra.as_object().expect("object") {
            message[k] = v.clone();
        }
        json!({
            "version": 1,
            "com_key_id": self.com_key_id,
            "id": uuid_like(),
            "expiration_date": rfc3339(OffsetDateTime::now_utc() + time::Duration::hours(1)),
            "message": message,
        })
    }

    /// Runs the real `berth` binary against this app's data dir.
    pub fn berth(&self, args: &[&str]) -> Output {
        let data_dir = self.data_dir();
        berth(&[args, &["--data-dir", data_dir.to_str().unwrap()]].concat())
    }

    pub fn clock_now(&self) -> OffsetDateTime {
        berth::clock::Clock::now(self.clock.as_ref())
    }

    /// Opens the installation's database as the CLI does.
    pub fn db(&self) -> Db {
        let master = installation::load_master_key(&installation::master_key_path(&self.config)).unwrap();
        Db::open(&self.config.data_dir, master).unwrap()
    }

    /// Dates the installation back to `at`, as if `init` had run then (tests
    /// export months from before the day they run).
    pub fn installed_at(&self, at: OffsetDateTime) {
        let conn = rusqlite::Connection::open(self.db_path()).unwrap();
        let changed = conn
            .execute(
                "UPDATE installation SET created_at = ?1",
                [berth::ids::format_instant(at)],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }

    /// The number of rows in the license log, read with SQLite directly.
    pub fn log_rows(&self) -> i64 {
        let conn = rusqlite::Connection::open(self.db_path()).unwrap();
        conn.query_row("SELECT count(*) FROM license_log", [], |r| r.get(0))
            .unwrap()
    }
}

/// Runs the real `berth serve` binary on `data_dir`, listening on port 0, with
/// extra environment; returns the process and the URL it printed.
pub fn spawn_serve_process(
    data_dir: &Path,
    envs: &[(&str, &std::ffi::OsStr)],
    stderr: std::process::Stdio,
) -> (std::process::Child, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_berth"));
    command.args(serve_args(data_dir));
    start_serve(command, envs, stderr)
}

/// `berth serve`'s arguments for `data_dir`, both listeners on port 0.
pub fn serve_args(data_dir: &Path) -> [&str; 7] {
    [
        "serve",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--license-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]
}

/// Starts a command that runs `berth serve` and waits for the URL it prints.
pub fn start_serve(
    mut command: std::process::Command,
    envs: &[(&str, &std::ffi::OsStr)],
    stderr: std::process::Stdio,
) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let mut child = command
        .env_remove("BERTH_CONFIG")
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start berth serve");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap_or_default().to_owned();
    assert!(url.starts_with("http"), "berth serve did not start: {line:?}");
    (child, url)
}

/// The real binary with `args`, no config file unless they name one.
pub fn berth(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .env_remove("BERTH_CONFIG")
        .output()
        .expect("run berth")
}

/// `berth init` with the real binary on a fresh data dir; panics if it fails.
pub fn berth_init(data_dir: &Path, id: &str, vessel_type: &str, vessel_name: &str) {
    let out = berth(&[
        "init",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--installation-id",
        id,
        "--vessel-type",
        vessel_type,
        "--vessel-name",
        vessel_name,
    ]);
    assert!(
        out.status.success(),
        "berth init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// SIGTERM, as systemd stops berth; waits for the exit.
pub fn terminate(mut child: std::process::Child) -> std::process::ExitStatus {
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap()
}

/// A token as the portal signs it: HS256 with this communication secret.
pub fn sign_hs256(secret: &[u8], payload: &Value) -> String {
    sign_with(secret, r#"{"alg":"HS256","typ":"JWT"}"#, payload)
}

pub fn sign_with(secret: &[u8], header: &str, payload: &Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(header);
    let p = URL_SAFE_NO_PAD.encode(payload.to_string());
    let input = format!("{h}.{p}");
    let key = PKey::hmac(secret).unwrap();
    let mut signer = Signer::new(MessageDigest::sha256(), &key).unwrap();
    signer.update(input.as_bytes()).unwrap();
    let sig = URL_SAFE_NO_PAD.encode(signer.sign_to_vec().unwrap());
    format!("{input}.{sig}")
}

pub fn kid(text: &str) -> Kid {
    text.parse().unwrap()
}

pub fn b64url_kid(text: &str) -> String {
    kid(text).to_b64url()
}

pub fn clearkey_body(kids: &[&str], kind: &str) -> String {
    let kids: Vec<String> = kids.iter().map(|k| b64url_kid(k)).collect();
    json!({ "kids": kids, "type": kind }).to_string()
}

pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap()
}

pub fn uuid_like() -> String {
    let b: [u8; 16] = berth::crypto::random();
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

thread_local! {
    // Building a client builds a TLS connector (the CA bundle is parsed), so
    // each test thread shares one.
    static CLIENT: awc::Client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .finish();
}

pub fn client() -> awc::Client {
    CLIENT.with(Clone::clone)
}

/// POSTs a Clear Key request with the token in `X-AxDRM-Message`.
pub async fn post_license(
    app: &TestApp,
    token: Option<&str>,
    body: &str,
) -> (u16, Value, awc::http::header::HeaderMap) {
    let mut req = client().post(app.url("/clearkey"));
    if let Some(t) = token {
        req = req.insert_header(("X-AxDRM-Message", t));
    }
    let mut res = req.send_body(body.to_owned()).await.expect("request");
    let status = res.status().as_u16();
    let bytes = res.body().limit(1 << 20).await.expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json, res.headers().clone())
}

/// Asserts an error answer: status, code, and the message in the header.
pub fn assert_error(
    status: u16,
    body: &Value,
    headers: &awc::http::header::HeaderMap,
    want_status: u16,
    want_code: &str,
) {
    assert_eq!(status, want_status, "status for {want_code}: body {body}");
    assert_eq!(body["error"], want_code, "code: {body}");
    let message = body["message"].as_str().expect("message");
    assert!(!message.is_empty());
    let header = headers
        .get("x-axdrm-errormessage")
        .expect("X-AxDRM-ErrorMessage")
        .to_str()
        .unwrap();
    assert_eq!(
        header,
        message.replace(|c: char| !(c == ' ' || c.is_ascii_graphic()), "?")
    );
}

/// Runs a tool (openssl, the CPIX maker) in `dir`; panics with its stderr
/// unless it succeeds.
pub fn run_in(dir: &Path, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
    let program = program.as_ref();
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.to_string_lossy()));
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        program.to_string_lossy(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A throwaway certificate for 127.0.0.1, made by the openssl command line.
pub fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    self_signed_for(dir, 2)
}

/// The same, valid for `days` from now.
pub fn self_signed_for(dir: &std::path::Path, days: u32) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            &days.to_string(),
        ])
        .args([
            "-subj",
            "/CN=berth test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}

/// A temporary Clear Key license for KID A with this token.
pub async fn license_a(app: &TestApp, token: &str) -> (u16, Value, awc::http::header::HeaderMap) {
    post_license(app, Some(token), &clearkey_body(&[KID_A], "temporary")).await
}

/// One license for KID A with a fresh token, which must be granted; its body.
pub async fn licensed(app: &TestApp) -> Value {
    let (status, body, _) = license_a(app, &app.token(&[KID_A], json!({}))).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The CORS headers of an answer to `origin`: allowed or not, and with
/// credentials or without.
pub fn assert_cors(headers: &awc::http::header::HeaderMap, origin: &str, allowed: bool, credentials: bool) {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(header("vary").as_deref(), Some("Origin"));
    if allowed {
        assert_eq!(
            header("access-control-allow-origin").as_deref(),
            Some(origin),
            "{origin}"
        );
    } else {
        assert_eq!(header("access-control-allow-origin"), None, "{origin}");
    }
    let expected = (allowed && credentials).then_some("true");
    assert_eq!(
        header("access-control-allow-credentials").as_deref(),
        expected,
        "{origin}"
    );
}

/// The JSON of `fleet summary` or `fleet bill`: it exits 0 when nothing is
/// left out, and 1 (saying so on stderr) when anything is not counted or
/// billed as reported, with the problems in its output either way.
pub fn fleet_json(out: &Output) -> Value {
    let value: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let problems = value
        .get("problems")
        .or_else(|| value.get("not_billed"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if problems == 0 {
        assert!(out.status.success(), "{stderr}");
    } else {
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(&format!("{problems} problems")), "{stderr}");
    }
    value
}
