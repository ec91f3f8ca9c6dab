//! Issue 25: no key without an entitlement berth can enforce, and a count that
//! agrees with what was delivered.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

/// A usage policy that asks for hardware security and HDCP 2.2: berth cannot
/// enforce it on Clear Key, whichever source names the key.
#[actix_web::test]
async fn a_strict_usage_policy_denies_the_key_on_every_source() {
    let app = spawn_app().await;
    let policies = json!([ { "name": "strict", "widevine": { "device_security_level": "HW_SECURE_ALL", "hdcp": "HDCP_V2_2" } } ]);
    for source in [
        json!({ "inline": [ { "id": KID_A, "usage_policy": "strict" } ] }),
        json!({ "stored": [ { "id": KID_A, "usage_policy": "strict" } ] }),
        json!({ "license_request": { "usage_policy": "strict" } }),
    ] {
        let token = app.sign(&app.payload(
            &[],
            json!({ "content_keys_source": source, "content_key_usage_policies": policies }),
        ));
        let (status, body, headers) =
            post_license(&app, Some(&token), &clearkey_body(&[KID_A], "temporary")).await;
        assert_error(status, &body, &headers, 403, "unsupported_entitlement");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("device_security_level"),
            "{body}"
        );
        assert!(body.get("keys").is_none());
    }
    for (source, field) in [
        (
            json!({ "license_request": { "seed_id": "11111111-2222-4333-8444-555555555555" } }),
            "license_request.seed_id",
        ),
        (
            json!({ "inline": [ { "id": KID_A, "seed_id": "11111111-2222-4333-8444-555555555555" } ] }),
            "inline[0].seed_id",
        ),
        (
            json!({ "inline": [ { "id": KID_A, "iv": "AAAAAAAAAAAAAAAAAAAAAA==" } ] }),
            "inline[0].iv",
        ),
        (
            json!({ "stored": [ { "id": KID_A, "rotation": 1 } ] }),
            "stored[0].rotation",
        ),
    ] {
        let token = app.sign(&app.payload(&[], json!({ "content_keys_source": source })));
        let (status, body, headers) =
            post_license(&app, Some(&token), &clearkey_body(&[KID_A], "temporary")).await;
        assert_error(status, &body, &headers, 403, "unsupported_entitlement");
        assert!(
            body["message"].as_str().unwrap().contains(field),
            "{field}: {body}"
        );
    }
    assert_eq!(app.log_rows(), 0);
}

/// A request answered 503 because its row missed the deadline is never
/// committed afterwards: not counted, and its single-use token not spent.
#[actix_web::test]
async fn a_license_that_missed_its_deadline_is_neither_counted_nor_spent() {
    let app = spawn_app_with(|c| c.log.append_timeout_ms = 300).await;
    let single_use = json!({ "license_server": { "access_control": { "prevent_drm_message_reuse": true } } });
    let token = app.token(&[KID_A], single_use);
    let health = std::sync::Arc::clone(app.server().service().log().health());
    health.stall_for_test(true);
    let (status, body, headers) =
        post_license(&app, Some(&token), &clearkey_body(&[KID_A], "temporary")).await;
    assert_error(status, &body, &headers, 503, "log_unavailable");
    health.stall_for_test(false);
    // Let the writer go round its queue before looking.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.log_rows(), 0, "a license answered 503 was logged after all");
    let (status, body, _) = post_license(&app, Some(&token), &clearkey_body(&[KID_A], "temporary")).await;
    assert_eq!(
        status, 200,
        "the single-use token was spent by a license never delivered: {body}"
    );
    assert_eq!(app.log_rows(), 1);
}

/// A clock moved forward (the spent id is forgotten as expired) and back again
/// does not make a spent single-use token good for another license.
#[actix_web::test]
async fn a_clock_jump_forward_and_back_does_not_re_enable_a_spent_token() {
    let app = spawn_app().await;
    let single_use = json!({ "license_server": { "access_control": { "prevent_drm_message_reuse": true } } });
    let token = app.token(&[KID_A], single_use);
    let body = clearkey_body(&[KID_A], "temporary");
    let (status, _, _) = post_license(&app, Some(&token), &body).await;
    assert_eq!(status, 200);
    let now = app.clock_now();
    app.clock.set(now + time::Duration::days(2));
    // The writer forgets expired ids when idle (every second without work).
    let conn = rusqlite::Connection::open(app.db_path()).unwrap();
    let spent = || -> i64 {
        conn.query_row("SELECT count(*) FROM used_tokens", [], |r| r.get(0))
            .unwrap()
    };
    for _ in 0..50 {
        if spent() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(spent(), 0, "the spent id was never forgotten");
    app.clock.set(now);
    let (status, reply, headers) = post_license(&app, Some(&token), &body).await;
    assert_error(status, &reply, &headers, 403, "token_reused");
    assert_eq!(app.log_rows(), 1);
    // A fresh single-use token is still good.
    let fresh = app.token(
        &[KID_A],
        json!({ "license_server": { "access_control": { "prevent_drm_message_reuse": true } } }),
    );
    let (status, _, _) = post_license(&app, Some(&fresh), &body).await;
    assert_eq!(status, 200);
}
