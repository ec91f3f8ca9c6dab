//! The W3C Clear Key license message: request parsing and response building.
//!
//! Architecture Invariant: pure; no I/O, no HTTP types. Fuzzed.

use serde::Deserialize;

use crate::ids::{ContentKey, Kid, LicenseType};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The most KIDs one request may ask for.
pub const MAX_KIDS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearKeyRequest {
    pub kids: Vec<Kid>,
    pub license_type: LicenseType,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClearKeyError {
    /// JSON, but not a valid Clear Key request.
    #[error("{0}")]
    Malformed(String),
    /// Not JSON at all: another key system's message (named when it is
    /// recognised: Widevine, PlayReady).
    #[error(
        "the request is {} license request, not Clear Key's; berth serves Clear Key, HLS keys and FairPlay (at /fairplay/license); Widevine and PlayReady licenses need their vendors' own servers",
        .0.map_or("another key system's".to_owned(), |name| format!("a {name}"))
    )]
    NotClearKey(Option<&'static str>),
}

/// The request as sent; its strings borrowed from the body where they hold
/// no escapes (base64url KIDs never do), so reading one allocates nothing
/// per KID.
#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(borrow)]
    kids: Vec<std::borrow::Cow<'a, str>>,
    #[serde(rename = "type", default, borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
}

pub fn parse_request(body: &[u8]) -> Result<ClearKeyRequest, ClearKeyError> {
    // A UTF-8 byte order mark, which some HTTP stacks put before JSON, is
    // ignored, as RFC 8259 allows.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let trimmed = body.trim_ascii_start();
    if trimmed.is_empty() {
        return Err(ClearKeyError::Malformed("the request body is empty".into()));
    }
    if trimmed[0] != b'{' {
        return Err(ClearKeyError::NotClearKey(crate::ids::foreign_key_system(body)));
    }
    let raw: RawRequest = serde_json::from_slice(body).map_err(|e| {
        ClearKeyError::Malformed(format!(
            "the body is not a Clear Key request ({})",
            e.to_string().chars().take(120).collect::<String>()
        ))
    })?;
    if raw.kids.is_empty() {
        return Err(ClearKeyError::Malformed("kids is empty".into()));
    }
    if raw.kids.len() > MAX_KIDS {
        return Err(ClearKeyError::Malformed(format!(
            "kids has {} entries; at most {MAX_KIDS} are allowed",
            raw.kids.len()
        )));
    }
    let kids = raw
        .kids
        .iter()
        .map(|k| Kid::from_b64(k))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClearKeyError::Malformed(format!("a KID is not 16 bytes of base64url ({e})")))?;
    let license_type = match raw.kind.as_deref() {
        None => LicenseType::Temporary,
        Some(t) => t.parse().map_err(|_| {
            ClearKeyError::Malformed("type must be \"temporary\" or \"persistent-license\"".into())
        })?,
    };
    Ok(ClearKeyRequest { kids, license_type })
}

/// The license: one JSON Web Key per requested KID, unpadded base64url.
///
/// Written directly rather than through serde: every value is base64url (or
/// the license type's own name), which JSON never escapes, and the answer to
/// every license went through serde's escaping checks and a vector of
/// structs of owned strings (issue 37).
pub fn response(keys: &[(Kid, ContentKey)], license_type: LicenseType) -> Vec<u8> {
    let mut out = String::with_capacity(32 + keys.len() * 80);
    out.push_str("{\"keys\":[");
    for (i, (kid, key)) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Encoded in place: not two strings a key, copied in (issue 37).
        out.push_str("{\"kty\":\"oct\",\"kid\":\"");
        URL_SAFE_NO_PAD.encode_string(kid.0, &mut out);
        out.push_str("\",\"k\":\"");
        URL_SAFE_NO_PAD.encode_string(key.0, &mut out);
        out.push_str("\"}");
    }
    out.push_str("],\"type\":\"");
    out.push_str(license_type.as_str());
    out.push_str("\"}");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::b64_encode;

    #[test]
    fn the_response_is_the_json_serde_would_write() {
        let kid: Kid = "9eb4050d-e44b-4802-932e-27d75083e266".parse().unwrap();
        let other: Kid = "6a9c2e0b-6d43-4e2c-9a1f-0c3b7d5e8f21".parse().unwrap();
        for keys in [
            vec![],
            vec![(kid, ContentKey([0xfb; 16]))],
            vec![(kid, ContentKey([1; 16])), (other, ContentKey([0xff; 16]))],
        ] {
            for license_type in [LicenseType::Temporary, LicenseType::PersistentLicense] {
                let ours: serde_json::Value = serde_json::from_slice(&response(&keys, license_type)).unwrap();
                let expected = serde_json::json!({
                    "keys": keys.iter().map(|(kid, key)| serde_json::json!({
                        "kty": "oct", "kid": kid.to_b64url(), "k": b64_encode(&URL_SAFE_NO_PAD, &key.0),
                    })).collect::<Vec<_>>(),
                    "type": license_type.as_str(),
                });
                assert_eq!(ours, expected);
            }
        }
    }

    #[test]
    fn parses_player_requests() {
        let r = parse_request(br#"{"kids":["nrQFDeRLSAKTLifXUIPiZg"],"type":"temporary"}"#).unwrap();
        assert_eq!(r.kids[0].to_uuid_string(), "9eb4050d-e44b-4802-932e-27d75083e266");
        let r =
            parse_request(br#"{"kids":["nrQFDeRLSAKTLifXUIPiZg=="],"type":"persistent-license"}"#).unwrap();
        assert_eq!(r.license_type, LicenseType::PersistentLicense);
        let r = parse_request(br#"{"kids":["nrQFDeRLSAKTLifXUIPiZg"]}"#).unwrap();
        assert_eq!(r.license_type, LicenseType::Temporary);
    }

    #[test]
    fn ignores_a_byte_order_mark() {
        let r = parse_request(b"\xEF\xBB\xBF {\"kids\":[\"nrQFDeRLSAKTLifXUIPiZg\"]}").unwrap();
        assert_eq!(r.kids[0].to_uuid_string(), "9eb4050d-e44b-4802-932e-27d75083e266");
        // Only one, and only at the start.
        assert_eq!(
            parse_request(b"\xEF\xBB\xBF\xEF\xBB\xBF{}"),
            Err(ClearKeyError::NotClearKey(None))
        );
        assert!(matches!(
            parse_request(b" \xEF\xBB\xBF{\"kids\":[\"nrQFDeRLSAKTLifXUIPiZg\"]}"),
            Err(ClearKeyError::NotClearKey(None))
        ));
    }

    #[test]
    fn tells_other_key_systems_from_broken_requests() {
        assert_eq!(
            parse_request(&[0x08, 0x04]),
            Err(ClearKeyError::NotClearKey(Some("Widevine")))
        );
        assert_eq!(
            parse_request(b"<PlayReadyKeyMessage/>"),
            Err(ClearKeyError::NotClearKey(Some("PlayReady")))
        );
        let soap = br#"<?xml version="1.0"?><soap:Envelope><soap:Body><AcquireLicense/></soap:Body></soap:Envelope>"#;
        assert_eq!(
            parse_request(soap),
            Err(ClearKeyError::NotClearKey(Some("PlayReady")))
        );
        let error = ClearKeyError::NotClearKey(Some("Widevine")).to_string();
        assert!(
            error.contains("a Widevine license request") && error.contains("own servers"),
            "{error}"
        );
        for bad in [
            &b""[..],
            b"{",
            b"{}",
            br#"{"kids":[]}"#,
            br#"{"kids":["AAAA"]}"#,
            br#"{"kids":["!!!!"]}"#,
            br#"{"kids":"nrQFDeRLSAKTLifXUIPiZg"}"#,
            br#"{"kids":["nrQFDeRLSAKTLifXUIPiZg"],"type":"forever"}"#,
        ] {
            assert!(
                matches!(parse_request(bad), Err(ClearKeyError::Malformed(_))),
                "{bad:?}"
            );
        }
        let many = format!(
            "{{\"kids\":[{}]}}",
            vec!["\"nrQFDeRLSAKTLifXUIPiZg\""; 65].join(",")
        );
        assert!(matches!(
            parse_request(many.as_bytes()),
            Err(ClearKeyError::Malformed(_))
        ));
    }
}
