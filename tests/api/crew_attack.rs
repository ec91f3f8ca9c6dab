//! Issue 25: the crew sign-in under attack: parallel guesses, lock-outs aimed
//! at another host, and a dashboard left open.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use awc::http::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::*;

/// One HTTP/1.1 request from a chosen loopback address; the whole answer.
pub async fn request_from(from: Ipv4Addr, to: SocketAddr, request: &str) -> String {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Signs in from `from` with a fresh form; the answer's status.
async fn sign_in_from(app: &TestApp, from: Ipv4Addr, user: &str, password: &str) -> u16 {
    let (nonce, cookie) = login_form(app).await;
    let form = format!(
        "user={user}&password={}&nonce={nonce}",
        password
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    let admin = app.server().admin_addr().unwrap();
    let answer = request_from(
        from,
        admin,
        &format!(
            "POST /login HTTP/1.1\r\nHost: crew\r\nConnection: close\r\nCookie: berth_login={cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    )
    .await;
    answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Wrong passwords from one host do not lock the account out on another.
#[actix_web::test]
async fn one_host_cannot_lock_the_crew_out_everywhere() {
    let app = spawn_admin_app().await;
    let attacker = Ipv4Addr::new(127, 0, 0, 66);
    for _ in 0..5 {
        assert_eq!(sign_in_from(&app, attacker, "admin", "guess").await, 401);
    }
    assert_eq!(
        sign_in_from(&app, attacker, "admin", &app.admin_password).await,
        429
    );
    let purser = Ipv4Addr::new(127, 0, 0, 7);
    assert_eq!(
        sign_in_from(&app, purser, "admin", &app.admin_password).await,
        303
    );
    // One host guessing many accounts is limited too.
    for n in 0..20 {
        let status = sign_in_from(&app, Ipv4Addr::new(127, 0, 0, 99), &format!("crew{n}"), "guess").await;
        assert_eq!(status, 401, "attempt {n}");
    }
    assert_eq!(
        sign_in_from(&app, Ipv4Addr::new(127, 0, 0, 99), "crew-new", "guess").await,
        429
    );
}

/// 150 wrong sign-ins for `admin` at once, all with one form; their statuses.
async fn flood(login: &str, cookie: &str, nonce: &str) -> Vec<StatusCode> {
    let mut attempts = Vec::new();
    for _ in 0..150 {
        let request = crew_client()
            .post(login)
            .timeout(Duration::from_secs(60))
            .insert_header(("Cookie", format!("berth_login={cookie}")))
            .send_form(&[("user", "admin"), ("password", "guess"), ("nonce", nonce)]);
        attempts.push(actix_web::rt::spawn(
            async move { request.await.unwrap().status() },
        ));
    }
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap());
    }
    statuses
}

/// 150 wrong sign-ins at once from one address with one form: only the
/// limit's worth of passwords is checked, the rest are refused unhashed.
#[actix_web::test]
async fn a_parallel_flood_checks_only_the_limits_worth_of_passwords() {
    let app = spawn_admin_app().await;
    let (nonce, cookie) = login_form(&app).await;
    let mut checked = 0;
    for status in flood(&app.admin_url("/login"), &cookie, &nonce).await {
        match status {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(checked, 5, "passwords checked in the flood");
}

/// The dashboard's own polling keeps no session alive: an open, unattended
/// browser signs out after the idle time.
#[actix_web::test]
async fn the_dashboards_polling_does_not_keep_a_session_alive() {
    let app = spawn_admin_app_with(|c| c.admin.session_idle_secs = 2).await;
    let cookie = session(&app).await;
    assert_eq!(get(&app, &cookie, "/").await.0, 200);
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(1_500) {
        assert_eq!(get(&app, &cookie, "/dashboard.json").await.0, 200);
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    }
    actix_web::rt::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        get(&app, &cookie, "/dashboard.json").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get(&app, &cookie, "/").await.0, StatusCode::SEE_OTHER);
    // A person's request does keep it alive.
    let cookie = session(&app).await;
    for _ in 0..4 {
        actix_web::rt::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(get(&app, &cookie, "/").await.0, 200);
    }
}

/// A process's memory figure from `/proc/PID/status` (`VmHWM`, its peak
/// resident memory; `VmRSS`, now), in bytes.
fn memory(pid: u32, figure: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(figure)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

fn peak_rss(pid: u32) -> u64 {
    memory(pid, "VmHWM:")
}

/// The real binary, its admin listener's address and a sign-in form's
/// nonce and cookie.
async fn real_berth() -> (TestApp, std::process::Child, String, String, String) {
    use std::io::BufRead as _;
    let mut app = spawn_app().await;
    app.stop().await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(serve_args(app.data_dir()))
        .env_remove("BERTH_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let _license = lines.next().unwrap().unwrap();
    let admin = lines.next().unwrap().unwrap();
    let admin = admin.rsplit(' ').next().unwrap().to_owned();
    let mut res = crew_client().get(format!("{admin}/login")).send().await.unwrap();
    let nonce_cookie = crate::helpers::set_cookie(res.headers(), "berth_login").unwrap();
    let cookie = crate::helpers::cookie_value(&nonce_cookie).to_owned();
    let body = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    let nonce = crate::helpers::between(&body, "name=\"nonce\" value=\"", "\"").to_owned();
    (app, child, admin, nonce, cookie)
}

/// 200 wrong sign-ins at once from ten addresses, each for another account,
/// so that every password is checked: the real binary's peak memory stays
/// within 64 MB of idle (passwords are checked on one thread with one reused
/// argon2 block), and what it holds afterwards is near idle.
#[actix_web::test]
async fn two_hundred_checked_sign_ins_from_ten_hosts_keep_memory_bounded() {
    let (_app, mut child, admin, nonce, cookie) = real_berth().await;
    let to: SocketAddr = admin.trim_start_matches("http://").parse().unwrap();
    let idle = memory(child.id(), "VmRSS:");
    let mut attempts = Vec::new();
    for host in 0..10u8 {
        for n in 0..20 {
            let form = format!("user=crew{host}x{n}&password=guess&nonce={nonce}");
            let request = format!(
                "POST /login HTTP/1.1\r\nHost: crew\r\nConnection: close\r\nCookie: berth_login={cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
                form.len()
            );
            attempts.push(actix_web::rt::spawn(async move {
                request_from(Ipv4Addr::new(127, 0, 1, 10 + host), to, &request).await
            }));
        }
    }
    let mut checked = 0;
    for attempt in attempts {
        let answer = attempt.await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 401"),
            "{}",
            &answer[..answer.len().min(200)]
        );
        checked += 1;
    }
    let peak = peak_rss(child.id());
    let after = memory(child.id(), "VmRSS:");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(checked, 200);
    let mb = |b: u64| b / 1_000_000;
    assert!(
        peak < idle + 64_000_000,
        "peak RSS {} MB against {} MB idle",
        mb(peak),
        mb(idle)
    );
    assert!(
        after < idle + 32_000_000,
        "RSS {} MB after the flood against {} MB idle",
        mb(after),
        mb(idle)
    );
}

/// The real binary under a flood of 150 parallel sign-ins: its peak memory
/// stays within 100 MB of what it was idle.
#[actix_web::test]
async fn a_sign_in_flood_does_not_take_the_memory() {
    let (_app, mut child, admin, nonce, cookie) = real_berth().await;
    let idle = peak_rss(child.id());
    let statuses = flood(&format!("{admin}/login"), &cookie, &nonce).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let peak = peak_rss(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(checked <= 5, "{checked} passwords checked");
    assert!(
        peak < idle + 100_000_000,
        "peak RSS {} MB against {} MB idle",
        peak / 1_000_000,
        idle / 1_000_000
    );
}
