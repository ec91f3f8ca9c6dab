//! Crew sessions: random ids in `HttpOnly; SameSite=Strict` cookies that
//! expire, one CSRF token per session, and sign-in rate limits per account and
//! per address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::accounts::Role;
use crate::crypto::{ct_eq, random};

pub const SESSION_COOKIE: &str = "berth_session";
pub const NONCE_COOKIE: &str = "berth_login";
/// Sign-in attempts that may fail per account from one address within the
/// window: per pair, so that a host guessing one crew member's password
/// cannot lock that member out on every other host.
const MAX_FAILURES: u32 = 5;
/// Attempts that may fail from one address within the window, whatever the
/// account (a host guessing many accounts).
const MAX_FAILURES_PER_ADDRESS: u32 = 20;
const FAILURE_WINDOW: Duration = Duration::from_secs(300);
/// Sign-ins whose password waits for the password thread; more wait to be queued.
const QUEUED_CHECKS: usize = 16;
/// The most argon2 memory a stored hash may ask for (berth's own ask 19 MiB).
const MAX_ARGON2_KIB: u32 = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub role: Role,
    pub csrf: String,
    last_seen: Instant,
}

impl Session {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn csrf_matches(&self, token: &str) -> bool {
        ct_eq(self.csrf.as_bytes(), token.as_bytes())
    }
}

pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    /// Cookies carry `Secure` (the admin listener serves HTTPS).
    secure: bool,
    /// A session ends after this long without a request.
    idle_timeout: Duration,
}

fn token() -> String {
    URL_SAFE_NO_PAD.encode(random::<32>())
}

pub fn nonce_matches(req: &HttpRequest, nonce: &str) -> bool {
    req.cookie(NONCE_COOKIE)
        .is_some_and(|c| !nonce.is_empty() && ct_eq(c.value().as_bytes(), nonce.as_bytes()))
}

/// One password check: the stored hash and role (None: no such user), the
/// password given, and where the role goes if it matches.
struct Check {
    stored: Option<(String, Option<Role>)>,
    password: String,
    reply: tokio::sync::oneshot::Sender<Option<Role>>,
}

/// Passwords are checked on one thread of their own, one at a time, with one
/// argon2 memory block that the thread keeps and reuses: a flood of sign-ins
/// waits its turn and costs that block once, never a block per thread of a
/// pool (which glibc keeps per thread after the hash is done).
pub struct PasswordChecks {
    checks: tokio::sync::mpsc::Sender<Check>,
}

impl PasswordChecks {
    /// Starts the password thread; it ends when this is dropped.
    pub fn start() -> std::io::Result<PasswordChecks> {
        let (checks, mut queue) = tokio::sync::mpsc::channel::<Check>(QUEUED_CHECKS);
        std::thread::Builder::new()
            .name("berth-passwords".into())
            .spawn(move || {
                let mut memory = Vec::new();
                while let Some(check) = queue.blocking_recv() {
                    let role = check_password(&mut memory, check.stored, &check.password);
                    let _ = check.reply.send(role);
                }
            })?;
        Ok(PasswordChecks { checks })
    }

    /// The role of `stored` if `password` is its password. An unknown user
    /// costs the same time as a known one.
    pub async fn check(&self, stored: Option<(String, Option<Role>)>, password: String) -> Option<Role> {
        let (reply, role) = tokio::sync::oneshot::channel();
        self.checks
            .send(Check {
                stored,
                password,
                reply,
            })
            .await
            .ok()?;
        role.await.ok().flatten()
    }
}

/// Verifies a password against a stored argon2 hash with `memory` as the
/// hash's working memory (grown once to what the hash needs); returns the role.
fn check_password(
    memory: &mut Vec<argon2::Block>,
    stored: Option<(String, Option<Role>)>,
    password: &str,
) -> Option<Role> {
    const DUMMY: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$VyDNnPPDdjVbE3EV9vp2s4UyT9NhkCG9AZZbaJMqgGk";
    let (hash, role) = stored.unwrap_or_else(|| (DUMMY.to_owned(), None));
    let parsed = argon2::PasswordHash::new(&hash).ok()?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return None;
    };
    let params = argon2::Params::try_from(&parsed).ok()?;
    if params.m_cost() > MAX_ARGON2_KIB {
        return None;
    }
    let algorithm = argon2::Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
    let version = match parsed.version {
        Some(v) => argon2::Version::try_from(v).ok()?,
        None => argon2::Version::default(),
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, argon2::Block::default());
    }
    let mut computed = vec![0; expected.len()];
    argon2::Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut computed, &mut memory[..blocks])
        .ok()?;
    // A role the store holds that is not one berth knows (None) signs no one in.
    role.filter(|_| ct_eq(&computed, expected.as_ref()))
}

impl Sessions {
    pub fn new(secure: bool, idle_timeout: Duration) -> Sessions {
        Sessions {
            sessions: Mutex::default(),
            failures: Mutex::default(),
            secure,
            idle_timeout,
        }
    }

    fn cookie(&self, name: &'static str, value: String) -> Cookie<'static> {
        Cookie::build(name, value)
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Strict)
            .finish()
    }

    pub fn expired_cookie(&self, name: &'static str) -> Cookie<'static> {
        let mut c = self.cookie(name, String::new());
        c.make_removal();
        c
    }

    /// A nonce for the sign-in form, mirrored in a cookie (double submit).
    pub fn login_nonce(&self) -> (String, Cookie<'static>) {
        let nonce = token();
        (nonce.clone(), self.cookie(NONCE_COOKIE, nonce))
    }

    pub fn create(&self, user: &str, role: Role) -> Cookie<'static> {
        let id = token();
        let session = Session {
            user: user.to_owned(),
            role,
            csrf: token(),
            last_seen: Instant::now(),
        };
        let mut sessions = self.sessions.lock().expect("sessions lock");
        sessions.retain(|_, s| s.last_seen.elapsed() < self.idle_timeout);
        sessions.insert(id.clone(), session);
        self.cookie(SESSION_COOKIE, id)
    }

    /// The request's session, if it has a live one; touching it keeps it alive.
    pub fn current(&self, req: &HttpRequest) -> Option<Session> {
        self.find(req, true)
    }

    /// The request's session without keeping it alive: for what a page does
    /// by itself (the dashboard's polling), so that an unattended browser still
    /// signs out after the idle timeout.
    pub fn peek(&self, req: &HttpRequest) -> Option<Session> {
        self.find(req, false)
    }

    fn find(&self, req: &HttpRequest, touch: bool) -> Option<Session> {
        let id = req.cookie(SESSION_COOKIE)?;
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let session = sessions.get_mut(id.value())?;
        if session.last_seen.elapsed() >= self.idle_timeout {
            sessions.remove(id.value());
            return None;
        }
        if touch {
            session.last_seen = Instant::now();
        }
        Some(session.clone())
    }

    pub fn remove(&self, req: &HttpRequest) {
        if let Some(id) = req.cookie(SESSION_COOKIE) {
            self.sessions.lock().expect("sessions lock").remove(id.value());
        }
    }

    /// Ends every session of `user` (removed, or given a new password) but the
    /// one making the request.
    pub fn end_sessions_of(&self, user: &str, req: &HttpRequest) {
        let keep = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
        self.sessions
            .lock()
            .expect("sessions lock")
            .retain(|id, s| s.user != user || keep.as_deref() == Some(id.as_str()));
    }

    /// The counters a sign-in attempt counts against, with their limits.
    fn keys(user: &str, ip: IpAddr) -> [(String, u32); 2] {
        [
            (
                format!("user:{}@{ip}", user.chars().take(64).collect::<String>()),
                MAX_FAILURES,
            ),
            (format!("ip:{ip}"), MAX_FAILURES_PER_ADDRESS),
        ]
    }

    /// Reserves a sign-in attempt before its password is checked: it counts as
    /// failed from now on, so attempts in parallel cannot all pass the limit
    /// before one of them has failed. `Err(wait)` when the account from this
    /// address, or the address, has failed too often lately.
    pub fn reserve_attempt(&self, user: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut failures = self.failures.lock().expect("failures lock");
        if failures.len() > 100_000 {
            failures.retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
        }
        let keys = Self::keys(user, ip);
        for (key, limit) in &keys {
            if let Some((n, since)) = failures.get(key)
                && *n >= *limit
                && now.duration_since(*since) < FAILURE_WINDOW
            {
                return Err(FAILURE_WINDOW - now.duration_since(*since));
            }
        }
        for (key, _) in keys {
            let entry = failures.entry(key).or_insert((0, now));
            if now.duration_since(entry.1) >= FAILURE_WINDOW {
                *entry = (0, now);
            }
            entry.0 += 1;
        }
        Ok(())
    }

    /// The reserved attempt succeeded: the account's failures from this
    /// address are forgotten, and the attempt no longer counts.
    pub fn login_succeeded(&self, user: &str, ip: IpAddr) {
        let mut failures = self.failures.lock().expect("failures lock");
        let [(pair, _), (address, _)] = Self::keys(user, ip);
        failures.remove(&pair);
        if let Some((n, _)) = failures.get_mut(&address) {
            *n = n.saturating_sub(1);
        }
    }
}
