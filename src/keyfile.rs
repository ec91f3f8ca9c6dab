//! Content-key import files: berth's JSON format and DASH-IF CPIX with clear
//! `PlainValue` keys.
//!
//! Architecture Invariant: pure parsing; no I/O, no SQL. Fuzzed.

use serde::Deserialize;

use crate::ids::{ContentKey, Kid};
use crate::store::NewKey;

/// Import files larger than this are refused before parsing.
pub const MAX_KEY_FILE: usize = 16 * 1024 * 1024;
/// The most keys one file may hold.
pub const MAX_KEYS: usize = 100_000;

const CPIX_NS: &str = "urn:dashif:org:cpix";
const PSKC_NS: &str = "urn:ietf:params:xml:ns:keyprov:pskc";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct KeyFileError(pub String);

fn err(message: impl Into<String>) -> KeyFileError {
    KeyFileError(message.into())
}

/// What is suspicious in keys that parsed: a key of sixteen zero bytes is the
/// placeholder a packaging tool writes when it has no key, not a key content
/// is encrypted with. Imported all the same (content may really use it), but
/// said, so that a broken export is noticed before players fail to decrypt.
pub fn warnings(keys: &[NewKey]) -> Vec<String> {
    keys.iter()
        .filter(|k| k.key.0 == [0; 16])
        .map(|k| {
            format!(
                "key {} is all zeros: a placeholder rather than a content key? Check the export",
                k.kid
            )
        })
        .collect()
}

/// Parses a key file, telling JSON from CPIX by its first character.
pub fn parse(bytes: &[u8]) -> Result<Vec<NewKey>, KeyFileError> {
    if bytes.len() > MAX_KEY_FILE {
        return Err(err("the key file is larger than 16 MiB"));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| err("the key file is not UTF-8 text"))?;
    let text = text.trim_start_matches('\u{feff}').trim_start();
    let keys = match text.chars().next() {
        Some('{') => parse_json(text)?,
        Some('<') => parse_cpix(text)?,
        _ => {
            return Err(err(
                "the key file is neither berth JSON ({\"keys\":[...]}) nor CPIX XML",
            ));
        }
    };
    if keys.is_empty() {
        return Err(err("the key file holds no keys"));
    }
    if keys.len() > MAX_KEYS {
        return Err(err(format!("the key file holds more than {MAX_KEYS} keys")));
    }
    let mut seen = std::collections::HashSet::new();
    for key in &keys {
        if !seen.insert(key.kid) {
            return Err(err(format!("KID {} appears twice in the file", key.kid)));
        }
    }
    Ok(keys)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonFile {
    keys: Vec<JsonKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonKey {
    kid: String,
    key: String,
    #[serde(default)]
    label: String,
}

fn parse_json(text: &str) -> Result<Vec<NewKey>, KeyFileError> {
    let file: JsonFile =
        serde_json::from_str(text).map_err(|e| err(format!("the JSON key file is not valid: {e}")))?;
    file.keys
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            let kid: Kid = k.kid.parse().map_err(|e| err(format!("keys[{i}].kid: {e}")))?;
            let key = ContentKey::parse(&k.key).map_err(|e| err(format!("keys[{i}].key: {e}")))?;
            check_label(&k.label).map_err(|e| err(format!("keys[{i}].label: {e}")))?;
            Ok(NewKey {
                kid,
                key,
                label: k.label,
            })
        })
        .collect()
}

fn check_label(label: &str) -> Result<(), String> {
    if label.len() > 200 {
        return Err("longer than 200 characters".into());
    }
    if label.chars().any(char::is_control) {
        return Err("contains control characters".into());
    }
    Ok(())
}

fn parse_cpix(text: &str) -> Result<Vec<NewKey>, KeyFileError> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: 1_000_000,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options)
        .map_err(|e| err(format!("the CPIX document is not well-formed XML: {e}")))?;
    let root = doc.root_element();
    if root.tag_name().namespace() != Some(CPIX_NS) || root.tag_name().name() != "CPIX" {
        return Err(err(format!(
            "the XML root is not a CPIX element in namespace {CPIX_NS}"
        )));
    }
    let label = root.attribute("contentId").unwrap_or("").to_owned();
    check_label(&label).map_err(|e| err(format!("CPIX contentId: {e}")))?;
    let mut keys = Vec::new();
    for content_key in root
        .descendants()
        .filter(|n| n.tag_name().namespace() == Some(CPIX_NS) && n.tag_name().name() == "ContentKey")
    {
        let kid_text = content_key
            .attribute("kid")
            .ok_or_else(|| err("a CPIX ContentKey has no kid attribute"))?;
        let kid: Kid = kid_text
            .parse()
            .map_err(|e| err(format!("CPIX ContentKey kid: {e}")))?;
        let in_pskc = |name: &str| {
            content_key
                .descendants()
                .find(|n| n.tag_name().namespace() == Some(PSKC_NS) && n.tag_name().name() == name)
        };
        if in_pskc("EncryptedValue").is_some() {
            return Err(err(format!(
                "CPIX key {kid} is encrypted (EncryptedValue); encrypted CPIX is not supported: export the keys with PlainValue"
            )));
        }
        let plain =
            in_pskc("PlainValue").ok_or_else(|| err(format!("CPIX key {kid} has no pskc:PlainValue")))?;
        let value = plain.text().unwrap_or("").trim();
        let key = ContentKey::parse(value).map_err(|e| err(format!("CPIX key {kid}: {e}")))?;
        keys.push(NewKey {
            kid,
            key,
            label: label.clone(),
        });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPIX: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<cpix:CPIX contentId="movie-1" xmlns:cpix="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc">
  <cpix:ContentKeyList>
    <cpix:ContentKey kid="9eb4050d-e44b-4802-932e-27d75083e266" commonEncryptionScheme="cenc">
      <cpix:Data><pskc:Secret><pskc:PlainValue>FmY0xnWCPCNaSpRG+8HMdQ==</pskc:PlainValue></pskc:Secret></cpix:Data>
    </cpix:ContentKey>
  </cpix:ContentKeyList>
</cpix:CPIX>"#;

    #[test]
    fn reads_cpix_with_plain_values() {
        let keys = parse(CPIX.as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].label, "movie-1");
        assert_eq!(keys[0].key.0[0], 0x16);
    }

    #[test]
    fn refuses_encrypted_and_hostile_cpix() {
        let encrypted = CPIX.replace(
            "<pskc:PlainValue>FmY0xnWCPCNaSpRG+8HMdQ==</pskc:PlainValue>",
            "<pskc:EncryptedValue><xenc:CipherData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\"/></pskc:EncryptedValue>",
        );
        assert!(
            parse(encrypted.as_bytes())
                .unwrap_err()
                .0
                .contains("not supported")
        );
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><cpix:CPIX xmlns:cpix="urn:dashif:org:cpix">&b;</cpix:CPIX>"#;
        assert!(parse(bomb.as_bytes()).is_err());
        let wrong_ns = CPIX.replace("urn:dashif:org:cpix", "urn:other");
        assert!(parse(wrong_ns.as_bytes()).is_err());
        assert!(
            parse(b"<cpix:CPIX xmlns:cpix=\"urn:dashif:org:cpix\"/>")
                .unwrap_err()
                .0
                .contains("no keys")
        );
    }

    #[test]
    fn reads_json_and_names_the_bad_entry() {
        let ok = br#"{"keys":[{"kid":"9eb4050de44b4802932e27d75083e266","key":"00112233445566778899aabbccddeeff","label":"x"}]}"#;
        assert_eq!(parse(ok).unwrap()[0].key.0[1], 0x11);
        let bad = br#"{"keys":[{"kid":"9eb4050de44b4802932e27d75083e266","key":"0011"}]}"#;
        assert!(parse(bad).unwrap_err().0.contains("keys[0].key"));
        let twice = br#"{"keys":[{"kid":"9eb4050de44b4802932e27d75083e266","key":"00112233445566778899aabbccddeeff"},{"kid":"9eb4050de44b4802932e27d75083e266","key":"00112233445566778899aabbccddeeff"}]}"#;
        assert!(parse(twice).unwrap_err().0.contains("twice"));
        assert!(parse(br#"{"keys":[],"extra":1}"#).is_err());
        assert!(parse(&[0xff, 0xfe]).is_err());
        assert!(parse(b"").is_err());
    }
}
