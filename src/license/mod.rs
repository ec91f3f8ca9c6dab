//! The license service: token + key store + log -> license.
//!
//! Architecture Invariant: no actix, no SQL. Keys come from the in-memory
//! [`KeyRing`]; the log is reached only through [`LicenseLog`] (the log
//! writer's [`LogHandle`], or a fake in the unit tests). A license is returned
//! only after its log entry has committed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration as StdDuration;

use time::Duration;

use crate::clock::Clock;
use crate::crypto::HmacKey;
use crate::fairplay::Credentials;
use crate::ids::{ComKeyId, ContentKey, KeySystem, Kid, LicenseType, Secret32, Timestamp};
pub mod entry;

use crate::token::{self, ComKey, ComKeys, Denial, Entitlement, TokenError};
pub use entry::{AppendError, Appended, LogEntry, Repeatable, WriterHealth};

/// Asks the key store whether keys changed, and answers once the ring is up to date.
pub type StoreCheck = Box<dyn Fn(tokio::sync::oneshot::Sender<()>) + Send + Sync>;

/// The content keys by KID. Looked up with the KIDs a player sends, but never
/// added to by one: foldhash, seeded per process, is safe here.
pub type ContentKeys = HashMap<Kid, ContentKey, foldhash::fast::RandomState>;

/// The keys the server hands out and verifies with, decrypted once and swapped
/// whole when the store changes. `KeyRing::default()` has no store to ask
/// (a ring filled by hand); `KeyRing::new` is given its store's check when it
/// is built, before anything uses it.
#[derive(Default)]
pub struct KeyRing {
    content: RwLock<Arc<ContentKeys>>,
    com: RwLock<Arc<ComKeys>>,
    fairplay: RwLock<Option<Arc<Credentials>>>,
    generation: AtomicI64,
    check: Option<StoreCheck>,
    last_check: Mutex<Option<std::time::Instant>>,
}

impl KeyRing {
    /// An empty ring that asks the key store for changes with `check` (the
    /// store's key refresher: `store::RefresherLink::store_check`).
    pub fn new(check: StoreCheck) -> KeyRing {
        KeyRing {
            check: Some(check),
            ..KeyRing::default()
        }
    }

    pub fn replace(&self, generation: i64, content: Vec<(Kid, ContentKey)>, com: Vec<(ComKeyId, Secret32)>) {
        let content: ContentKeys = content.into_iter().collect();
        let com: ComKeys = com
            .into_iter()
            .map(|(id, secret)| (id, Arc::new(ComKey::new(id, secret))))
            .collect();
        *self.content.write().expect("key ring lock") = Arc::new(content);
        *self.com.write().expect("key ring lock") = Arc::new(com);
        self.generation.store(generation, Ordering::Release);
    }

    /// The FairPlay credentials the store holds (or none).
    pub fn set_fairplay(&self, credentials: Option<Credentials>) {
        *self.fairplay.write().expect("key ring lock") = credentials.map(Arc::new);
    }

    /// The FairPlay credentials, if any were imported.
    pub fn fairplay(&self) -> Option<Arc<Credentials>> {
        self.fairplay.read().expect("key ring lock").clone()
    }

    /// Keys changed in the store (the admin UI imported or removed one): have the
    /// refresher reload now rather than at its next poll.
    pub fn reload_soon(&self) {
        let (tx, _rx) = tokio::sync::oneshot::channel();
        if let Some(check) = &self.check {
            check(tx);
        }
    }

    /// Reloads from the store and waits (up to 2 s) until the ring has the
    /// store's keys: after the admin UI removes a key, no request uses it.
    pub async fn reload(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Some(check) = &self.check {
            check(tx);
        }
        let _ = tokio::time::timeout(StdDuration::from_secs(2), rx).await;
    }

    /// A key was asked for that the ring does not have: it may have been imported
    /// a moment ago. Asks the store (at most ten times a second, so unknown KIDs
    /// cannot flood it) and returns whether the ring changed.
    async fn check_store(&self) -> bool {
        {
            let mut last = self.last_check.lock().expect("key ring lock");
            if last.is_some_and(|t| t.elapsed() < StdDuration::from_millis(100)) {
                return false;
            }
            *last = Some(std::time::Instant::now());
        }
        let before = self.generation();
        let (tx, rx) = tokio::sync::oneshot::channel();
        match &self.check {
            Some(check) => check(tx),
            None => return false,
        }
        let _ = tokio::time::timeout(StdDuration::from_millis(500), rx).await;
        self.generation() != before
    }

    pub fn generation(&self) -> i64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn content_key_count(&self) -> usize {
        self.content.read().expect("key ring lock").len()
    }

    pub fn com_key_count(&self) -> usize {
        self.com.read().expect("key ring lock").len()
    }

    fn content(&self) -> Arc<ContentKeys> {
        Arc::clone(&self.content.read().expect("key ring lock"))
    }

    fn com(&self) -> Arc<ComKeys> {
        Arc::clone(&self.com.read().expect("key ring lock"))
    }
}

/// An append in progress.
pub type Appending<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Appended, AppendError>> + Send + 'a>>;

/// A license being issued. Boxed, so that a request handler awaiting it stays
/// under 1 KiB: held inline it made the Clear Key handler's future 1,112
/// bytes, which glibc's malloc serves from its large bins, consolidating its
/// fast bins on every license (issue 37).
pub type Issuing<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<License, LicenseError>> + 'a>>;

/// Where licenses are recorded: append one entry, answered once it committed,
/// or `TimedOut` (withdrawn, never written) when the writer did not take it
/// within `timeout`, or `TokenReused`, or `Unavailable`.
pub trait LicenseLog: Send + Sync {
    fn append(&self, entry: LogEntry, timeout: StdDuration) -> Appending<'_>;
}

/// What a player asked for.
#[derive(Debug)]
pub struct LicenseRequest<'a> {
    pub token: Option<&'a str>,
    pub kids: Vec<Kid>,
    pub license_type: LicenseType,
    pub key_system: KeySystem,
    pub client: IpAddr,
}

/// Content keys with their KIDs, in the order the player asked for them.
pub type Keys = Vec<(Kid, ContentKey)>;

#[derive(Debug)]
pub struct License {
    pub keys: Keys,
    pub seq: i64,
    /// The same token fetched the same HLS key before: delivered, not counted
    /// as a license (a repeat).
    pub repeat: bool,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LicenseError {
    #[error("no license token was sent")]
    TokenMissing,
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Denied(#[from] Denial),
    #[error("the license token was already used")]
    TokenReused,
    #[error("the license could not be logged: {0}")]
    LogUnavailable(String),
}

pub struct LicenseService {
    keys: Arc<KeyRing>,
    log: Arc<dyn LicenseLog>,
    writer: Arc<WriterHealth>,
    clock: Arc<dyn Clock>,
    pepper: HmacKey,
    tolerance: Duration,
    append_timeout: StdDuration,
    /// How long a fetch again of an HLS key with the same token is a repeat,
    /// for tokens without an expiry (otherwise: until the token expires).
    repeat_window: Duration,
    last_issued_at: Mutex<Option<Timestamp>>,
}

/// The time limits of the license path, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Token dates may be off by this much either way (drifting clocks).
    pub tolerance: Duration,
    /// How long a license waits for the log writer to take its row.
    pub append_timeout: StdDuration,
    /// How long an HLS key fetched again is a repeat, for tokens without an expiry.
    pub repeat_window: Duration,
}

/// What a license service is built from, by name.
pub struct ServiceParts<'a> {
    /// The content and communication keys, kept in step with the store.
    pub keys: Arc<KeyRing>,
    /// Where every license is written before its key leaves.
    pub log: Arc<dyn LicenseLog>,
    /// How the log writer is doing.
    pub writer: Arc<WriterHealth>,
    pub clock: Arc<dyn Clock>,
    /// The installation's user-id pepper (user ids are kept only as HMACs).
    pub pepper: &'a Secret32,
    pub limits: Limits,
    /// The newest license already in the log, if any.
    pub last_issued_at: Option<Timestamp>,
}

impl LicenseService {
    pub fn new(parts: ServiceParts<'_>) -> LicenseService {
        LicenseService {
            keys: parts.keys,
            log: parts.log,
            writer: parts.writer,
            clock: parts.clock,
            pepper: HmacKey::new(&parts.pepper.0),
            tolerance: parts.limits.tolerance,
            append_timeout: parts.limits.append_timeout,
            repeat_window: parts.limits.repeat_window,
            last_issued_at: Mutex::new(parts.last_issued_at),
        }
    }

    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// How the log writer is doing, for `/healthz`, the watchdog and metrics.
    pub fn writer_health(&self) -> &Arc<WriterHealth> {
        &self.writer
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The `issued_at` of the newest license this process knows of.
    pub fn last_issued_at(&self) -> Option<Timestamp> {
        *self.last_issued_at.lock().expect("lock")
    }

    /// `HMAC-SHA256(pepper, user_id)`, first 16 bytes: distinct per user, and the
    /// raw id never leaves this function.
    pub fn user_hash(&self, user_id: &str) -> [u8; 16] {
        let mac = self.pepper.sign(user_id.as_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(&mac[..16]);
        out
    }

    /// The token's entitlement: verified against the communication keys
    /// (asking the store once more for one imported a moment ago).
    pub async fn entitlement(&self, token: Option<&str>) -> Result<Entitlement, LicenseError> {
        let token = token.ok_or(LicenseError::TokenMissing)?;
        let verify = || token::verify(token, &self.keys.com(), self.clock.now(), self.tolerance);
        Ok(match verify() {
            Err(TokenError::UnknownComKey(_)) if self.keys.check_store().await => verify(),
            other => other,
        }?)
    }

    /// The keys the entitlement grants for this request.
    async fn grant(
        &self,
        entitlement: &Entitlement,
        request: &LicenseRequest<'_>,
    ) -> Result<Keys, LicenseError> {
        let grant = || {
            let store = self.keys.content();
            entitlement.grant(
                &request.kids,
                request.license_type,
                request.key_system,
                request.client,
                |kid| store.get(kid).cloned(),
            )
        };
        Ok(match grant() {
            // A key imported a moment ago: look once more.
            Err(Denial::Unknown(_)) if self.keys.check_store().await => grant(),
            other => other,
        }?)
    }

    /// The log row for a license. Not part of `issue`, so that the request and
    /// the entitlement are used up before the license waits for its commit:
    /// otherwise `issue`'s future keeps room for them, and the handler's future
    /// (boxed per request by actix) grows past 1,032 bytes, the largest size
    /// glibc's per-thread cache serves; measured with `-Zprint-type-sizes`.
    fn log_entry(&self, request: LicenseRequest<'_>, entitlement: Entitlement) -> LogEntry {
        let repeatable = self.repeatable(&request, &entitlement);
        let mut kids = request.kids;
        kids.sort();
        kids.dedup();
        LogEntry {
            repeatable,
            key_system: request.key_system,
            kids,
            license_type: request.license_type,
            user_hash: entitlement.user_id.as_deref().map(|u| self.user_hash(u)),
            single_use: entitlement.prevent_reuse.then_some(entitlement.usable_until),
            token_id: entitlement.token_id,
            com_key_id: entitlement.com_key_id,
        }
    }

    /// An HLS key fetch with a reusable token may repeat an earlier one: the
    /// pair (token, KID) is remembered while the token is valid (a token
    /// without an expiry: for the repeat window). A single-use token cannot
    /// repeat; its second fetch is refused as reused.
    fn repeatable(&self, request: &LicenseRequest<'_>, entitlement: &Entitlement) -> Option<Repeatable> {
        if request.key_system != KeySystem::Hls || entitlement.prevent_reuse {
            return None;
        }
        let token = request.token?;
        let signature = token.trim().rsplit('.').next().unwrap_or(token);
        let mut hash = crate::crypto::Sha256::new();
        hash.update(signature.as_bytes());
        for kid in &request.kids {
            hash.update(&kid.0);
        }
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&hash.finish()[..16]);
        let until = entitlement
            .usable_until
            .unwrap_or_else(|| self.clock.now().saturating_add(self.repeat_window));
        Some(Repeatable { digest, until })
    }

    /// Checks the token and entitlement, logs the license durably, and only then
    /// returns the keys.
    pub fn issue<'a>(&'a self, request: LicenseRequest<'a>) -> Issuing<'a> {
        Box::pin(async move {
            let entitlement = self.entitlement(request.token).await?;
            self.log_and_grant(entitlement, request).await
        })
    }

    /// As [`issue`](Self::issue), for a key system that needed the
    /// entitlement before it knew which key the player asks for (FairPlay:
    /// the token is checked before the SPC is opened).
    pub fn issue_entitled<'a>(
        &'a self,
        entitlement: Entitlement,
        request: LicenseRequest<'a>,
    ) -> Issuing<'a> {
        Box::pin(self.log_and_grant(entitlement, request))
    }

    async fn log_and_grant(
        &self,
        entitlement: Entitlement,
        request: LicenseRequest<'_>,
    ) -> Result<License, LicenseError> {
        let keys = self.grant(&entitlement, &request).await?;
        let entry = self.log_entry(request, entitlement);
        let appended = self
            .log
            .append(entry, self.append_timeout)
            .await
            .map_err(|e| match e {
                AppendError::TokenReused => LicenseError::TokenReused,
                AppendError::Unavailable(why) => LicenseError::LogUnavailable(why),
                AppendError::TimedOut => LicenseError::LogUnavailable(e.to_string()),
            })?;
        *self.last_issued_at.lock().expect("lock") = Some(appended.issued_at);
        Ok(License {
            keys,
            seq: appended.seq,
            repeat: appended.repeat,
        })
    }
}

#[cfg(test)]
mod tests;
