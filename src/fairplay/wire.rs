//! The forms players and apps send an SPC in, and the CKC back in the same
//! form:
//!
//! | request body                         | answer                          |
//! |--------------------------------------|---------------------------------|
//! | the SPC's bytes                      | the CKC's bytes                 |
//! | the SPC in base64                    | the CKC in base64               |
//! | `spc=<base64>[&assetId=...]` (form)  | `<ckc>base64</ckc>`             |
//! | `{"spc": "<base64>", ...}` (JSON)    | `{"ckc": "<base64>"}`           |
//!
//! Base64 may be standard or URL-safe, padded or not; a form's `+` that
//! arrived as a space is read back as `+`.

use base64::engine::general_purpose::STANDARD;

use crate::ids::{b64_encode, decode_b64_any};

/// The form a request came in, which its answer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Raw,
    Base64,
    UrlEncoded,
    Json,
}

/// Why a body holds no SPC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("the body is empty; it should hold an SPC")]
    Empty,
    #[error("the body is not an SPC, its base64, an spc= form or JSON with \"spc\"")]
    NotAnSpc,
    #[error("the {0} form's spc is not base64")]
    NotBase64(&'static str),
    #[error("the {0} form has no spc")]
    NoSpc(&'static str),
    #[error("the form's assetId does not match the SPC's asset id")]
    AssetIdMismatch,
    #[error(
        "the request is a {0} license request, not a FairPlay SPC; berth serves Clear Key, HLS keys and FairPlay; {0} licenses need their vendor's own server"
    )]
    OtherKeySystem(&'static str),
}

/// The request: its SPC and form, and the `assetId` a form named, if any.
#[derive(Debug)]
pub struct Request {
    pub spc: Vec<u8>,
    pub form: Form,
    pub asset_id: Option<String>,
}

#[derive(serde::Deserialize)]
struct JsonRequest {
    spc: Option<String>,
    #[serde(rename = "assetId", alias = "asset_id", default)]
    asset_id: Option<String>,
}

fn decode(text: &str, form: &'static str) -> Result<Vec<u8>, WireError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    decode_b64_any(&compact).ok_or(WireError::NotBase64(form))
}

/// Reads a request body.
pub fn parse(body: &[u8]) -> Result<Request, WireError> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err(WireError::Empty);
    }
    // An SPC starts with its version, 00 00 00 01 or 00 00 00 02: never text.
    if body.len() >= 4 && body[..3] == [0, 0, 0] {
        return Ok(Request {
            spc: body.to_vec(),
            form: Form::Raw,
            asset_id: None,
        });
    }
    if let Some(name) = crate::ids::foreign_key_system(body) {
        return Err(WireError::OtherKeySystem(name));
    }
    let text = std::str::from_utf8(trimmed).map_err(|_| WireError::NotAnSpc)?;
    if text.starts_with('{') {
        let json: JsonRequest = serde_json::from_str(text).map_err(|_| WireError::NotAnSpc)?;
        let spc = json.spc.ok_or(WireError::NoSpc("JSON"))?;
        return Ok(Request {
            spc: decode(&spc, "JSON")?,
            form: Form::Json,
            asset_id: json.asset_id,
        });
    }
    if text.contains('=') && text.split('&').any(|pair| pair.starts_with("spc=")) {
        let mut spc = None;
        let mut asset_id = None;
        for (name, value) in form_urlencoded::parse(text.as_bytes()) {
            match name.as_ref() {
                "spc" => spc = Some(value.replace(' ', "+")),
                "assetId" | "asset_id" => asset_id = Some(value.into_owned()),
                _ => {}
            }
        }
        let spc = spc.ok_or(WireError::NoSpc("spc="))?;
        return Ok(Request {
            spc: decode(&spc, "spc=")?,
            form: Form::UrlEncoded,
            asset_id,
        });
    }
    match decode(text, "base64") {
        Ok(spc) => Ok(Request {
            spc,
            form: Form::Base64,
            asset_id: None,
        }),
        Err(_) => Err(WireError::NotAnSpc),
    }
}

/// The answer's content type and body for a CKC in `form`.
pub fn answer(form: Form, ckc: &[u8]) -> (&'static str, Vec<u8>) {
    match form {
        Form::Raw => ("application/octet-stream", ckc.to_vec()),
        Form::Base64 => ("text/plain", b64_encode(&STANDARD, ckc).into_bytes()),
        Form::UrlEncoded => (
            "application/xml",
            format!("<ckc>{}</ckc>", b64_encode(&STANDARD, ckc)).into_bytes(),
        ),
        Form::Json => (
            "application/json",
            serde_json::json!({ "ckc": b64_encode(&STANDARD, ckc) })
                .to_string()
                .into_bytes(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPC: [u8; 8] = [0, 0, 0, 1, 0, 0, 0, 0];

    #[test]
    fn every_form_gives_the_same_spc() {
        let b64 = b64_encode(&STANDARD, &SPC);
        let cases = [
            (SPC.to_vec(), Form::Raw, None),
            (b64.clone().into_bytes(), Form::Base64, None),
            (format!("{b64}\n").into_bytes(), Form::Base64, None),
            (
                format!("spc={}&assetId=skd%3A%2F%2Fx", b64.replace('+', "%2B")).into_bytes(),
                Form::UrlEncoded,
                Some("skd://x"),
            ),
            (
                format!("{{\"spc\":\"{b64}\",\"assetId\":\"a\"}}").into_bytes(),
                Form::Json,
                Some("a"),
            ),
        ];
        for (body, form, asset) in cases {
            let request = parse(&body).unwrap();
            assert_eq!((request.spc.as_slice(), request.form), (&SPC[..], form));
            assert_eq!(request.asset_id.as_deref(), asset);
        }
    }

    #[test]
    fn a_plus_that_became_a_space_in_a_form_is_read_back() {
        let spc = [0xfb, 0xef, 0xbe, 0xfb];
        let b64 = b64_encode(&STANDARD, &spc);
        assert!(b64.contains('+'));
        let request = parse(format!("spc={b64}").as_bytes()).unwrap();
        assert_eq!(request.spc, spc);
    }

    #[test]
    fn bodies_without_an_spc_are_refused_by_form() {
        assert_eq!(parse(b"  ").unwrap_err(), WireError::Empty);
        assert_eq!(
            parse(b"{\"ckc\":\"AA==\"}").unwrap_err(),
            WireError::NoSpc("JSON")
        );
        assert_eq!(
            parse(b"{\"spc\":\"***\"}").unwrap_err(),
            WireError::NotBase64("JSON")
        );
        assert_eq!(parse(b"{\"spc\":").unwrap_err(), WireError::NotAnSpc);
        assert_eq!(parse(b"spc=%%%").unwrap_err(), WireError::NotBase64("spc="));
        assert_eq!(parse(b"<ckc>AA==</ckc>").unwrap_err(), WireError::NotAnSpc);
        assert_eq!(
            parse(b"<PlayReadyKeyMessage/>").unwrap_err(),
            WireError::OtherKeySystem("PlayReady")
        );
        assert_eq!(
            parse(&[0x08, 0x04]).unwrap_err(),
            WireError::OtherKeySystem("Widevine")
        );
    }

    #[test]
    fn answers_take_the_requests_form() {
        assert_eq!(answer(Form::Raw, &[1, 2]).1, vec![1, 2]);
        assert_eq!(answer(Form::Base64, &[1, 2]).1, b"AQI=");
        assert_eq!(answer(Form::UrlEncoded, &[1, 2]).1, b"<ckc>AQI=</ckc>");
        assert_eq!(answer(Form::Json, &[1, 2]).1, br#"{"ckc":"AQI="}"#);
    }
}
