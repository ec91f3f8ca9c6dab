//! The license decision without SQLite or HTTP: a fake log answers as the
//! writer would, and records what it was asked to append.

use std::sync::Mutex as StdMutex;

use serde_json::json;
use time::macros::datetime;

use super::*;
use crate::clock::FixedClock;

const KID: &str = "9eb4050d-e44b-4802-932e-27d75083e266";
const COM: &str = "11111111-2222-4333-8444-555555555555";

/// Answers every append with `answer`, and keeps the entries.
struct FakeLog {
    answer: Result<Appended, AppendError>,
    entries: StdMutex<Vec<LogEntry>>,
}

impl FakeLog {
    fn answering(answer: Result<Appended, AppendError>) -> Arc<FakeLog> {
        Arc::new(FakeLog {
            answer,
            entries: StdMutex::new(Vec::new()),
        })
    }

    fn committed() -> Arc<FakeLog> {
        FakeLog::answering(Ok(Appended {
            seq: 7,
            issued_at: "2026-11-23T12:00:00.000Z".parse().unwrap(),
            repeat: false,
        }))
    }
}

impl LicenseLog for FakeLog {
    fn append(&self, entry: LogEntry, _timeout: StdDuration) -> Appending<'_> {
        self.entries.lock().unwrap().push(entry);
        let answer = self.answer.clone();
        Box::pin(async move { answer })
    }
}

fn com_id() -> ComKeyId {
    COM.parse().unwrap()
}

fn kid() -> Kid {
    KID.parse().unwrap()
}

fn ring(with_content_key: bool) -> Arc<KeyRing> {
    ring_with(with_content_key, None)
}

/// A ring with (or without) the content key, asking the store with `check`.
fn ring_with(with_content_key: bool, check: Option<StoreCheck>) -> Arc<KeyRing> {
    let ring = Arc::new(check.map_or_else(KeyRing::default, KeyRing::new));
    let content = if with_content_key {
        vec![(kid(), ContentKey([5; 16]))]
    } else {
        vec![]
    };
    ring.replace(1, content, vec![(com_id(), Secret32([42; 32]))]);
    ring
}

fn service(ring: Arc<KeyRing>, log: Arc<FakeLog>) -> LicenseService {
    LicenseService::new(ServiceParts {
        keys: ring,
        log,
        writer: Arc::new(WriterHealth::default()),
        clock: Arc::new(FixedClock::new(datetime!(2026-11-23 12:00 UTC))),
        pepper: &Secret32([9; 32]),
        limits: Limits {
            tolerance: Duration::seconds(300),
            append_timeout: StdDuration::from_secs(1),
            repeat_window: Duration::hours(24),
        },
        last_issued_at: None,
    })
}

fn token(extra: serde_json::Value) -> String {
    let mut message = json!({
        "type": "entitlement_message",
        "version": 2,
        "content_keys_source": { "inline": [ { "id": KID } ] },
        "session": { "user_id": "passenger-17A" },
    });
    for (k, v) in extra.as_object().unwrap() {
        message[k] = v.clone();
    }
    let payload = json!({
        "version": 1,
        "com_key_id": COM,
        "id": "token-1",
        "expiration_date": "2026-11-23T13:00:00Z",
        "message": message,
    });
    ComKey::new(com_id(), Secret32([42; 32])).sign_token(&payload)
}

fn request(token: &str, key_system: KeySystem) -> LicenseRequest<'_> {
    LicenseRequest {
        token: Some(token),
        kids: vec![kid(), kid()],
        license_type: LicenseType::Temporary,
        key_system,
        client: "10.0.0.1".parse().unwrap(),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_license_is_returned_with_the_row_the_log_committed() {
    let log = FakeLog::committed();
    let service = service(ring(true), Arc::clone(&log));
    let token = token(json!({}));
    let license = service.issue(request(&token, KeySystem::ClearKey)).await.unwrap();
    assert_eq!(license.seq, 7);
    assert_eq!(
        license.keys,
        vec![(kid(), ContentKey([5; 16])), (kid(), ContentKey([5; 16]))]
    );
    let entries = log.entries.lock().unwrap();
    let entry = &entries[0];
    assert_eq!(entry.kids, vec![kid()], "sorted, without duplicates");
    assert_eq!(entry.user_hash, Some(service.user_hash("passenger-17A")));
    assert!(entry.single_use.is_none() && entry.repeatable.is_none());
    assert_eq!(
        service.last_issued_at().map(|at| at.to_string()).as_deref(),
        Some("2026-11-23T12:00:00.000Z")
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_hls_fetch_is_repeatable_until_the_token_expires_unless_single_use() {
    let log = FakeLog::committed();
    let service = service(ring(true), Arc::clone(&log));
    let reusable = token(json!({}));
    service.issue(request(&reusable, KeySystem::Hls)).await.unwrap();
    let single =
        token(json!({ "license_server": { "access_control": { "prevent_drm_message_reuse": true } } }));
    service.issue(request(&single, KeySystem::Hls)).await.unwrap();
    let entries = log.entries.lock().unwrap();
    let repeatable = entries[0]
        .repeatable
        .as_ref()
        .expect("an HLS fetch with a reusable token");
    assert_eq!(
        repeatable.until,
        datetime!(2026-11-23 13:05 UTC),
        "the token's expiry plus the tolerance"
    );
    assert!(
        entries[1].repeatable.is_none(),
        "a single-use token cannot repeat"
    );
    assert!(entries[1].single_use.is_some());
}

#[tokio::test(flavor = "current_thread")]
async fn the_logs_refusals_become_the_licenses() {
    let token = token(json!({}));
    for (answer, want) in [
        (AppendError::TokenReused, LicenseError::TokenReused),
        (
            AppendError::TimedOut,
            LicenseError::LogUnavailable("the log writer did not answer in time".into()),
        ),
        (
            AppendError::Unavailable("the disk is full".into()),
            LicenseError::LogUnavailable("the disk is full".into()),
        ),
    ] {
        let service = service(ring(true), FakeLog::answering(Err(answer)));
        let got = service
            .issue(request(&token, KeySystem::ClearKey))
            .await
            .unwrap_err();
        assert_eq!(got, want);
        assert_eq!(service.last_issued_at(), None);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_key_the_ring_lacks_is_looked_up_once_more_before_refusing() {
    let token = token(json!({}));
    // The store has nothing new: refused as unknown, and nothing logged.
    let log = FakeLog::committed();
    let lacking = ring_with(
        false,
        Some(Box::new(|done| {
            let _ = done.send(());
        })),
    );
    let refused = service(Arc::clone(&lacking), Arc::clone(&log));
    assert_eq!(
        refused
            .issue(request(&token, KeySystem::ClearKey))
            .await
            .unwrap_err(),
        LicenseError::Denied(Denial::Unknown(kid()))
    );
    assert!(log.entries.lock().unwrap().is_empty());
    // A key imported a moment ago: the store's check loads it, and the same
    // request is licensed.
    // The store's check refills the ring it belongs to (it learns of the
    // ring once the ring is built, as the refresher thread does).
    let this_ring: Arc<std::sync::OnceLock<std::sync::Weak<KeyRing>>> = Arc::default();
    let reloading = Arc::clone(&this_ring);
    let ring = ring_with(
        false,
        Some(Box::new(move |done| {
            if let Some(ring) = reloading.get().and_then(std::sync::Weak::upgrade) {
                ring.replace(
                    2,
                    vec![(kid(), ContentKey([5; 16]))],
                    vec![(com_id(), Secret32([42; 32]))],
                );
            }
            let _ = done.send(());
        })),
    );
    this_ring.set(Arc::downgrade(&ring)).unwrap();
    let service = service(ring, FakeLog::committed());
    let license = service.issue(request(&token, KeySystem::ClearKey)).await.unwrap();
    assert_eq!(license.keys[0].1, ContentKey([5; 16]));
}
