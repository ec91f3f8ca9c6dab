use std::net::IpAddr;

use base64::Engine as _;
use serde_json::json;
use time::macros::datetime;

use super::*;
use crate::crypto::aes256_cbc_encrypt_block;
use crate::ids::{KeySystem, LicenseType};

const KID: &str = "9eb4050d-e44b-4802-932e-27d75083e266";
const NOW: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

fn com_key() -> Arc<ComKey> {
    Arc::new(ComKey::new(
        "11111111-2222-4333-8444-555555555555".parse().unwrap(),
        Secret32([42; 32]),
    ))
}

fn keys() -> ComKeys {
    let key = com_key();
    ComKeys::from_iter([(key.id, key)])
}

fn payload(message_extra: Value) -> Value {
    let mut message = json!({
        "type": "entitlement_message",
        "version": 2,
        "content_keys_source": { "inline": [ { "id": KID } ] },
    });
    for (k, v) in message_extra.as_object().unwrap() {
        message[k] = v.clone();
    }
    json!({
        "version": 1,
        "com_key_id": "11111111-2222-4333-8444-555555555555",
        "message": message,
    })
}

fn check(token: &str) -> Result<Entitlement, TokenError> {
    verify(token, &keys(), NOW, Duration::seconds(300))
}

fn tolerance_err(p: Value) -> TokenError {
    check(&com_key().sign_token(&p)).unwrap_err()
}

#[test]
fn accepts_a_signed_token() {
    let ent = check(&com_key().sign_token(&payload(json!({})))).unwrap();
    let kid: Kid = KID.parse().unwrap();
    let granted = ent
        .grant(
            &[kid],
            LicenseType::Temporary,
            KeySystem::ClearKey,
            IpAddr::from([10, 0, 0, 1]),
            |_| Some(ContentKey([1; 16])),
        )
        .unwrap();
    assert_eq!(granted[0].1, ContentKey([1; 16]));
}

#[test]
fn rejects_other_algorithms_and_bad_signatures() {
    let good = com_key().sign_token(&payload(json!({})));
    let (_, rest) = good.split_once('.').unwrap();
    for alg in ["none", "HS512", "RS256", "hs256"] {
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
        let err = check(&format!("{header}.{rest}")).unwrap_err();
        assert!(matches!(err, TokenError::Invalid(_)), "{alg}: {err:?}");
    }
    let mut tampered = good.clone();
    tampered.pop();
    tampered.push(if good.ends_with('A') { 'B' } else { 'A' });
    assert!(matches!(check(&tampered), Err(TokenError::Invalid(_))));

    let other = ComKey::new(com_key().id, Secret32([43; 32]));
    let err = check(&other.sign_token(&payload(json!({})))).unwrap_err();
    assert_eq!(err, TokenError::Invalid("the signature does not match".into()));
}

#[test]
fn rejects_garbage() {
    for token in ["", ".", "..", "a.b.c", "a.b.c.d", &"x".repeat(MAX_TOKEN_LEN + 1)] {
        assert!(matches!(check(token), Err(TokenError::Invalid(_))), "{token:.20}");
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let body = URL_SAFE_NO_PAD.encode(deep);
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#);
    assert!(check(&format!("{header}.{body}.AAAA")).is_err());
    // A header or payload whose bytes are not UTF-8, even inside a string.
    let not_utf8 = URL_SAFE_NO_PAD.encode(b"{\"version\":1,\"com_key_id\":\"\xff\"}");
    assert_eq!(
        check(&format!("{header}.{not_utf8}.AAAA")).unwrap_err(),
        TokenError::Invalid("payload is not UTF-8 JSON".into())
    );
    assert_eq!(
        check(&format!("{not_utf8}.{body}.AAAA")).unwrap_err(),
        TokenError::Invalid("header is not UTF-8 JSON".into())
    );
}

#[test]
fn dates_use_the_tolerance() {
    let mut p = payload(json!({}));
    p["expiration_date"] = json!("2026-11-23T11:56:00Z");
    assert!(
        check(&com_key().sign_token(&p)).is_ok(),
        "4 minutes late is within 5"
    );
    p["expiration_date"] = json!("2026-11-23T11:54:00Z");
    assert!(matches!(tolerance_err(p.clone()), TokenError::Expired(_)));
    let mut p = payload(json!({ "license": { "start_datetime": "2026-11-23T12:06:00Z" } }));
    assert!(matches!(tolerance_err(p.clone()), TokenError::NotYetValid(_)));
    p["message"]["license"]["start_datetime"] = json!("2026-11-23T12:04:00+00:00");
    assert!(check(&com_key().sign_token(&p)).is_ok());
}

#[test]
fn dates_at_the_end_of_time_are_far_future_not_a_crash() {
    // "Never expires" written as the last representable instant, with every
    // offset and precision RFC 3339 allows there.
    for end in [
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59.999999999Z",
        "9999-12-31T23:59:59+23:59",
    ] {
        let mut p = payload(json!({ "license": { "expiration_datetime": end } }));
        p["expiration_date"] = json!(end);
        let entitlement = check(&com_key().sign_token(&p)).unwrap();
        assert!(entitlement.usable_until.unwrap().year() >= 9999, "{end}");
    }
    // Past the end of time in UTC: refused as a date, not carried on to panic
    // where it is logged.
    let mut p = payload(json!({}));
    p["expiration_date"] = json!("9999-12-31T23:59:59-00:01");
    assert_eq!(
        tolerance_err(p),
        TokenError::Invalid("expiration_date is not an RFC 3339 date-time up to 9999-12-31T23:59:59Z".into())
    );
    let p = payload(json!({ "license": { "start_datetime": "9999-12-31T23:59:59Z" } }));
    assert!(matches!(tolerance_err(p), TokenError::NotYetValid(_)));
    let mut p = payload(json!({}));
    p["begin_date"] = json!("0000-01-01T00:00:00Z");
    p["expiration_date"] = json!("0000-01-01T00:00:00Z");
    assert!(matches!(tolerance_err(p), TokenError::Expired(_)));
}

#[test]
fn decrypts_inline_keys() {
    let kid: Kid = KID.parse().unwrap();
    let key = [7u8; 16];
    let ct = aes256_cbc_encrypt_block(&[42; 32], &kid.0, &key);
    let p = payload(json!({ "content_keys_source": { "inline": [
        { "id": KID, "encrypted_key": base64::engine::general_purpose::STANDARD.encode(ct) }
    ] } }));
    let ent = check(&com_key().sign_token(&p)).unwrap();
    let granted = ent
        .grant(
            &[kid],
            LicenseType::Temporary,
            KeySystem::ClearKey,
            IpAddr::from([10, 0, 0, 1]),
            |_| None,
        )
        .unwrap();
    assert_eq!(granted[0].1, ContentKey(key));
}

#[test]
fn fails_closed_on_what_clear_key_cannot_enforce() {
    let p = payload(json!({
        "content_keys_source": { "inline": [ { "id": KID, "usage_policy": "P" } ] },
        "content_key_usage_policies": [ { "name": "P", "widevine": { "hdcp": "HDCP_V2" } } ],
    }));
    let err = tolerance_err(p);
    assert_eq!(
        err,
        TokenError::Unsupported("content_key_usage_policies[P].widevine.hdcp".into())
    );

    let p = payload(json!({
        "content_keys_source": { "inline": [ { "id": KID, "usage_policy": "P" } ] },
        "content_key_usage_policies": [ { "name": "P", "widevine": { "device_security_level": "SW_SECURE_CRYPTO" }, "playready": { "play_enablers": ["786627D8-C2A6-44BE-8F88-08AE255B01A7"] } } ],
    }));
    assert!(
        check(&com_key().sign_token(&p)).is_ok(),
        "permissive policy is fine"
    );

    let p = payload(json!({ "license_server": { "access_control": { "concurrency_limit": 2 } } }));
    assert_eq!(
        tolerance_err(p),
        TokenError::Unsupported("license_server.access_control.concurrency_limit".into())
    );
    let p = payload(json!({ "some_future_flag": { "x": 1 } }));
    assert!(
        check(&com_key().sign_token(&p)).is_ok(),
        "unknown fields are ignored"
    );

    // Each level's own restrictions, named with their path; "no restriction"
    // values and unknown neighbours pass.
    for (extra, field) in [
        (
            json!({ "output_protection": { "hdcp": true } }),
            "message.output_protection",
        ),
        (json!({ "concurrency_limit": 2 }), "message.concurrency_limit"),
        (
            json!({ "license_server": { "max_devices": 3 } }),
            "license_server.max_devices",
        ),
        (
            json!({ "license_server": { "access_control": { "allowed_countries": ["FR"] } } }),
            "license_server.access_control.allowed_countries",
        ),
        (
            json!({ "license": { "max_playbacks": 1, "allow_persistence": false } }),
            "license.max_playbacks",
        ),
    ] {
        assert_eq!(
            tolerance_err(payload(extra)),
            TokenError::Unsupported(field.into())
        );
    }
    let p = payload(json!({
        "concurrency_limit": null,
        "output_protection": "none",
        "license": { "duration": 0, "widevine": { "anything": 1 } },
        "license_server": { "max_licenses": null, "access_control": { "geo_restriction": [], "note": "x" } },
    }));
    assert!(check(&com_key().sign_token(&p)).is_ok(), "nothing restricted");
}

#[test]
fn a_restriction_given_twice_is_refused() {
    // JSON parsers disagree on which of two equal keys wins; a restricting
    // field given twice must not be read as its harmless copy.
    let key = com_key();
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    for fields in [
        r#""concurrency_limit":2,"concurrency_limit":null"#,
        r#""license_server":{"access_control":{"max_devices":1,"max_devices":0}}"#,
        r#""license":{"duration":60,"duration":0}"#,
        r#""content_key_usage_policies":[{"name":"P","widevine":{"hdcp":"HDCP_V2","hdcp":"HDCP_NONE"}}]"#,
        r#""content_key_usage_policies":[{"name":"P","widevine":{"device_security_level":"HW_SECURE_ALL"},"widevine":{}}]"#,
    ] {
        let text = format!(
            r#"{{"version":1,"com_key_id":"{}","message":{{"type":"entitlement_message","version":2,"content_keys_source":{{"inline":[{{"id":"{KID}"}}]}},{fields}}}}}"#,
            key.id
        );
        let body = URL_SAFE_NO_PAD.encode(&text);
        let sig = URL_SAFE_NO_PAD.encode(key.hmac.sign(format!("{header}.{body}").as_bytes()));
        let err = check(&format!("{header}.{body}.{sig}")).unwrap_err();
        assert!(
            matches!(&err, TokenError::Invalid(why) if why.contains("duplicate field")),
            "{text}: {err:?}"
        );
    }
}

#[test]
fn a_policy_name_given_twice_is_refused() {
    // A strict policy followed by a permissive one of the same name must not
    // be read as the permissive one.
    let p = payload(json!({
        "content_keys_source": { "inline": [ { "id": KID, "usage_policy": "P" } ] },
        "content_key_usage_policies": [
            { "name": "P", "widevine": { "device_security_level": "HW_SECURE_ALL" } },
            { "name": "P", "widevine": { "device_security_level": "SW_SECURE_CRYPTO" } },
        ],
    }));
    assert_eq!(
        check(&com_key().sign_token(&p)).unwrap_err(),
        TokenError::Invalid("usage policy \"P\" is defined twice".into())
    );
}

#[test]
fn checks_addresses_persistence_and_entitlement() {
    let kid: Kid = KID.parse().unwrap();
    let other: Kid = "00000000-0000-0000-0000-000000000001".parse().unwrap();
    let p = payload(json!({ "license_server": { "access_control": {
        "allowed_ip_addresses": ["10.1.0.0/16", "::1"] } } }));
    let ent = check(&com_key().sign_token(&p)).unwrap();
    let store = |_: &Kid| Some(ContentKey([1; 16]));
    let t = LicenseType::Temporary;
    assert!(
        ent.grant(&[kid], t, KeySystem::ClearKey, "10.1.2.3".parse().unwrap(), store)
            .is_ok()
    );
    assert!(
        ent.grant(
            &[kid],
            t,
            KeySystem::ClearKey,
            "::ffff:10.1.2.3".parse().unwrap(),
            store
        )
        .is_ok()
    );
    assert!(
        ent.grant(&[kid], t, KeySystem::ClearKey, "::1".parse().unwrap(), store)
            .is_ok()
    );
    assert_eq!(
        ent.grant(&[kid], t, KeySystem::ClearKey, "10.2.0.1".parse().unwrap(), store),
        Err(Denial::IpNotAllowed)
    );
    let local = "10.1.0.1".parse().unwrap();
    assert_eq!(
        ent.grant(
            &[kid],
            LicenseType::PersistentLicense,
            KeySystem::ClearKey,
            local,
            store
        ),
        Err(Denial::PersistenceNotAllowed)
    );
    assert_eq!(
        ent.grant(&[kid, other], t, KeySystem::ClearKey, local, store),
        Err(Denial::NotEntitled(other))
    );
    assert_eq!(
        ent.grant(&[kid], t, KeySystem::ClearKey, local, |_| None),
        Err(Denial::Unknown(kid))
    );
}

#[test]
fn single_use_needs_an_id() {
    let p = payload(json!({ "license_server": { "access_control": { "prevent_drm_message_reuse": true } } }));
    assert!(matches!(tolerance_err(p), TokenError::Invalid(_)));
}

#[test]
fn content_keys_source_holds_exactly_one_kind() {
    let source =
        |value: Value| check(&com_key().sign_token(&payload(json!({ "content_keys_source": value }))));
    assert!(matches!(
        source(json!({ "license_request": {} })),
        Ok(Entitlement {
            keys: KeySource::LicenseRequest,
            ..
        })
    ));
    assert!(matches!(
        source(json!({ "stored": [ { "id": KID } ] })),
        Ok(Entitlement { keys: KeySource::Stored(kids), .. }) if kids == vec![KID.parse::<Kid>().unwrap()]
    ));
    for (value, why) in [
        (json!({}), "exactly one of inline, stored, license_request"),
        (json!({ "inline": [], "license_request": {} }), "exactly one of"),
        (json!({ "license_request": null }), "exactly one of"),
        (json!({ "everything": true }), "unknown field `everything`"),
        (
            json!({ "inline": [ { "id": KID } ], "extra": 1 }),
            "unknown field `extra`",
        ),
        (
            json!({ "inline": "everything" }),
            "payload is not the expected JSON",
        ),
        (
            json!({ "stored": [ { "id": "not-a-uuid" } ] }),
            "a stored key id is not a UUID",
        ),
        (json!("inline"), "payload is not the expected JSON"),
    ] {
        let err = source(value.clone()).unwrap_err();
        assert!(
            matches!(&err, TokenError::Invalid(text) if text.contains(why)),
            "{value}: {err:?}"
        );
    }
}

/// Issue 25.1: a usage policy is enforced whichever source names the key, and a
/// field berth cannot honour is refused by name, never ignored.
#[test]
fn every_key_source_is_held_to_its_usage_policy_and_its_fields() {
    let strict = json!([ { "name": "strict", "widevine": { "device_security_level": "HW_SECURE_ALL", "hdcp": "HDCP_V2_2" } } ]);
    let relaxed =
        json!([ { "name": "relaxed", "widevine": { "device_security_level": "SW_SECURE_CRYPTO" } } ]);
    let source = |keys: Value, policies: &Value| {
        check(&com_key().sign_token(&payload(json!({
            "content_keys_source": keys,
            "content_key_usage_policies": policies,
        }))))
    };
    let demand = "content_key_usage_policies[strict].widevine.device_security_level";
    for keys in [
        json!({ "inline": [ { "id": KID, "usage_policy": "strict" } ] }),
        json!({ "stored": [ { "id": KID, "usage_policy": "strict" } ] }),
        json!({ "license_request": { "usage_policy": "strict" } }),
    ] {
        assert_eq!(
            source(keys.clone(), &strict).unwrap_err(),
            TokenError::Unsupported(demand.into()),
            "{keys}"
        );
        let relaxed_keys: Value =
            serde_json::from_str(&keys.to_string().replace("strict", "relaxed")).unwrap();
        assert!(
            source(relaxed_keys, &relaxed).is_ok(),
            "{keys} with a policy that asks for nothing"
        );
    }
    for (keys, field) in [
        (
            json!({ "inline": [ { "id": KID, "seed_id": "11111111-2222-4333-8444-555555555555" } ] }),
            "content_keys_source.inline[0].seed_id",
        ),
        (
            json!({ "inline": [ { "id": KID }, { "id": KID, "iv": "AAAAAAAAAAAAAAAAAAAAAA==" } ] }),
            "content_keys_source.inline[1].iv",
        ),
        (
            json!({ "license_request": { "seed_id": "11111111-2222-4333-8444-555555555555" } }),
            "content_keys_source.license_request.seed_id",
        ),
        (
            json!({ "stored": [ { "id": KID, "key_rotation": true } ] }),
            "content_keys_source.stored[0].key_rotation",
        ),
        (
            json!({ "stored": [ { "id": KID, "encrypted_key": "AAAAAAAAAAAAAAAAAAAAAA==" } ] }),
            "content_keys_source.stored[0].encrypted_key",
        ),
        (
            json!({ "license_request": { "id": KID } }),
            "content_keys_source.license_request.id",
        ),
        (
            json!({ "license_request": { "anything\nINFO forged": 1 } }),
            "content_keys_source.license_request.anything\nINFO forged",
        ),
    ] {
        assert_eq!(
            source(keys.clone(), &json!([])).unwrap_err(),
            TokenError::Unsupported(field.into()),
            "{keys}"
        );
    }
    // `null` asks for nothing.
    assert!(
        source(
            json!({ "inline": [ { "id": KID, "seed_id": null } ] }),
            &json!([])
        )
        .is_ok()
    );
}

#[test]
fn a_license_duration_is_for_fairplay_only() {
    // A license duration only FairPlay can carry: Clear Key and HLS refuse it.
    let p = payload(json!({ "license": { "duration": 3600 } }));
    let ent = check(&com_key().sign_token(&p)).unwrap();
    let kid: Kid = KID.parse().unwrap();
    let local = IpAddr::from([10, 0, 0, 1]);
    for key_system in [KeySystem::ClearKey, KeySystem::Hls] {
        assert_eq!(
            ent.grant(&[kid], LicenseType::Temporary, key_system, local, |_| Some(
                ContentKey([1; 16])
            )),
            Err(Denial::Unenforceable("license.duration".into()))
        );
    }
    assert!(
        ent.grant(&[kid], LicenseType::Temporary, KeySystem::FairPlay, local, |_| {
            Some(ContentKey([1; 16]))
        })
        .is_ok()
    );
}

#[test]
fn fairplay_rules_are_carried_by_fairplay_and_refused_by_clear_key() {
    let kid: Kid = KID.parse().unwrap();
    let local = IpAddr::from([10, 0, 0, 1]);
    let store = |_: &Kid| Some(ContentKey([1; 16]));
    let with = |section: serde_json::Value| {
        payload(json!({
            "content_keys_source": { "inline": [ { "id": KID, "usage_policy": "P" } ] },
            "content_key_usage_policies": [ { "name": "P", "fairplay": section } ],
        }))
    };
    let ent =
        check(&com_key().sign_token(&with(json!({ "hdcp": "TYPE1", "allow_airplay": false })))).unwrap();
    let rules = ent.fairplay_rules(&kid).unwrap();
    assert_eq!(
        (rules.hdcp, rules.allow_airplay, rules.allow_av_adapter),
        (Some(Hdcp::Type1), false, true)
    );
    assert_eq!(
        ent.grant(&[kid], LicenseType::Temporary, KeySystem::ClearKey, local, store),
        Err(Denial::Unenforceable(
            "content_key_usage_policies[P].fairplay.hdcp".into()
        ))
    );
    assert!(
        ent.grant(&[kid], LicenseType::Temporary, KeySystem::FairPlay, local, store)
            .is_ok()
    );

    // Sections that restrict nothing pass everywhere.
    for permissive in [json!({}), json!({ "hdcp": "NONE", "allow_airplay": true })] {
        let ent = check(&com_key().sign_token(&with(permissive))).unwrap();
        assert!(
            ent.grant(&[kid], LicenseType::Temporary, KeySystem::Hls, local, store)
                .is_ok()
        );
    }
    // What berth does not know in the section, or cannot read, is refused.
    assert_eq!(
        check(&com_key().sign_token(&with(json!({ "max_hdcp_version": 2 })))).unwrap_err(),
        TokenError::Unsupported("content_key_usage_policies[P].fairplay.max_hdcp_version".into())
    );
    for bad in [
        json!({ "hdcp": "TYPE2" }),
        json!({ "allow_airplay": "no" }),
        json!("TYPE0"),
    ] {
        assert!(matches!(
            check(&com_key().sign_token(&with(bad))),
            Err(TokenError::Invalid(_))
        ));
    }
}

#[test]
fn the_license_limit_is_the_duration_or_the_time_to_expiry_whichever_is_sooner() {
    let now = datetime!(2026-11-03 12:00 UTC);
    let mut ent = check(&com_key().sign_token(&payload(json!({})))).unwrap();
    assert_eq!(ent.license_limit(now), None);
    ent.license_duration = Some(7200);
    assert_eq!(ent.license_limit(now), Some(7200));
    ent.license_expires = Some(datetime!(2026-11-03 13:00 UTC));
    assert_eq!(ent.license_limit(now), Some(3600));
    ent.license_duration = None;
    assert_eq!(ent.license_limit(now), Some(3600));
}

/// The token's strings are read in place unless they hold escapes; with
/// every string escaped (the alg, the ids, the type, a date), the token says
/// the same as its plain twin.
#[test]
fn escaped_strings_read_as_their_plain_twins() {
    let escape = |text: &str| -> String { text.chars().map(|c| format!("\\u{:04x}", c as u32)).collect() };
    let text = format!(
        r#"{{"version":1,"com_key_id":"{}","id":"{}","expiration_date":"{}","message":{{"type":"{}","version":2,"content_keys_source":{{"inline":[{{"id":"{}"}}]}}}}}}"#,
        escape("11111111-2222-4333-8444-555555555555"),
        escape("token-1"),
        escape("2026-11-23T13:00:00Z"),
        escape("entitlement_message"),
        escape(KID),
    );
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{}"}}"#, escape("HS256")));
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(&text));
    let signature = URL_SAFE_NO_PAD.encode(com_key().hmac.sign(signing_input.as_bytes()));
    let escaped = check(&format!("{signing_input}.{signature}")).unwrap();
    let mut plain = payload(json!({}));
    plain["id"] = json!("token-1");
    plain["expiration_date"] = json!("2026-11-23T13:00:00Z");
    let plain = check(&com_key().sign_token(&plain)).unwrap();
    assert_eq!(escaped.token_id.as_deref(), Some("token-1"));
    assert_eq!(escaped.usable_until, plain.usable_until);
    assert_eq!(escaped.com_key_id, plain.com_key_id);
    assert!(matches!(&escaped.keys, KeySource::Inline(keys) if keys[0].0 == KID.parse().unwrap()));
}
