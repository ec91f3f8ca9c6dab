//! The asset id an SPC carries, as the KID of the key it asks for.
//!
//! Players pass the `skd://` URI of the playlist's `EXT-X-KEY` (or the part
//! after `skd://`) as the asset id. The forms packagers write, all accepted:
//!
//! - `skd://9eb4050d-e44b-4802-932e-27d75083e266` (a UUID; Axinom, Shaka
//!   Packager with a key URI template, most SPEKE key providers),
//! - `skd://9eb4050de44b4802932e27d75083e266` (32 hex digits; Bento4,
//!   Unified Streaming),
//! - `skd://{9EB4050D-...}` (a UUID in braces; Microsoft-style tools),
//! - `skd://nrQFDeRLSAKTLifXUIPiZg==` (the KID's 16 bytes in base64 or
//!   base64url, padded or not),
//! - `skd://<kid>:<iv>` (a KID in any form above and the content IV in 32 hex
//!   digits; Bento4's and EZDRM's key-and-IV form), the IV then goes into the
//!   CKC,
//! - `skd://host/path;<kid>` or `skd://host/path/<kid>` (a host and path
//!   before the KID, EZDRM and some CDN setups), and a `?query` after it.
//!
//! The `skd://` scheme itself may be missing (the app passed only the rest).

use crate::ids::Kid;

use super::SpcError;

/// The KID the asset id names, and the content IV if it carries one.
pub fn kid(asset_id: &[u8]) -> Result<(Kid, Option<[u8; 16]>), SpcError> {
    let invalid = || {
        let shown: String = String::from_utf8_lossy(asset_id).chars().take(48).collect();
        SpcError::AssetId(shown)
    };
    let text = std::str::from_utf8(asset_id).map_err(|_| invalid())?.trim();
    let rest = match text.get(..6) {
        Some(scheme) if scheme.eq_ignore_ascii_case("skd://") => &text[6..],
        _ => text,
    };
    let rest = rest.split('?').next().unwrap_or(rest);
    let last = rest.rsplit(['/', ';']).next().unwrap_or(rest);
    let (kid_text, iv) = match last.split_once(':') {
        Some((kid, iv)) => (kid, Some(iv)),
        None => (last, None),
    };
    let kid = parse_kid(kid_text).ok_or_else(invalid)?;
    let iv = match iv {
        None => None,
        Some(iv) => Some(
            crate::ids::hex_decode(iv)
                .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
                .ok_or_else(invalid)?,
        ),
    };
    Ok((kid, iv))
}

fn parse_kid(text: &str) -> Option<Kid> {
    let unbraced = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    unbraced.parse::<Kid>().ok().or_else(|| Kid::from_b64(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KID: &str = "9eb4050d-e44b-4802-932e-27d75083e266";

    #[test]
    fn every_form_packagers_write_names_the_same_kid() {
        let kid: Kid = KID.parse().unwrap();
        let b64 = kid.to_b64url();
        let forms = [
            format!("skd://{KID}"),
            format!("SKD://{}", KID.to_uppercase()),
            KID.to_owned(),
            format!("skd://{}", KID.replace('-', "")),
            format!("skd://{{{}}}", KID.to_uppercase()),
            format!("skd://{b64}"),
            format!(
                "skd://{}==",
                crate::ids::b64_encode(&base64::engine::general_purpose::STANDARD_NO_PAD, &kid.0)
            ),
            format!("skd://fps.example.com/;{KID}"),
            format!("skd://keys.example.com/fairplay/{KID}?session=1"),
            format!(" skd://{KID} "),
        ];
        for form in forms {
            assert_eq!(super::kid(form.as_bytes()).unwrap(), (kid, None), "{form}");
        }
    }

    #[test]
    fn a_kid_and_iv_give_both() {
        let iv = "d5fbd6b82ed93e4ef98ae40931ee33b7";
        let (kid, got) = super::kid(format!("skd://{}:{iv}", KID.replace('-', "")).as_bytes()).unwrap();
        assert_eq!(kid, KID.parse().unwrap());
        assert_eq!(got.unwrap().to_vec(), crate::ids::hex_decode(iv).unwrap());
    }

    #[test]
    fn asset_ids_that_name_no_kid_are_refused_by_showing_them() {
        for bad in [
            &b"twelve"[..],
            b"skd://",
            b"skd://9eb4050d",
            b"skd://9eb4050d-e44b-4802-932e-27d75083e266:abcd",
            b"\xff\xfe",
            b"skd://zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        ] {
            let err = super::kid(bad).unwrap_err();
            assert!(matches!(err, SpcError::AssetId(_)), "{err:?}");
        }
    }
}
