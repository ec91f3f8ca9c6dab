//! Content-key import files: berth's JSON format and DASH-IF CPIX, with clear
//! keys or keys encrypted for this vessel ([`cpix`]), signed or not.
//!
//! Architecture Invariant: parsing and crypto only; no I/O, no SQL. Fuzzed.

mod cpix;

pub use cpix::Recipient;

use serde::Deserialize;

use crate::ids::NewKey;
use crate::ids::{ContentKey, Kid};

/// Import files larger than this are refused before parsing.
pub const MAX_KEY_FILE: usize = 16 * 1024 * 1024;
/// The most keys one file may hold.
pub const MAX_KEYS: usize = 100_000;

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

/// How a key file's bytes were written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Utf16Le,
    Utf16Be,
}

/// The text of a key file: UTF-8, or UTF-16 with a byte order mark (as
/// Windows tools write XML), without the mark; and which of them it was.
fn decode(bytes: &[u8]) -> Result<(String, Encoding), KeyFileError> {
    let utf16 = |bytes: &[u8], read: fn([u8; 2]) -> u16| {
        if !bytes.len().is_multiple_of(2) {
            return Err(err("the key file is UTF-16 with an odd number of bytes"));
        }
        let units: Vec<u16> = bytes.chunks_exact(2).map(|c| read([c[0], c[1]])).collect();
        String::from_utf16(&units).map_err(|_| err("the key file is not valid UTF-16"))
    };
    let (text, encoding) = match bytes {
        [0xFF, 0xFE, rest @ ..] => (utf16(rest, u16::from_le_bytes)?, Encoding::Utf16Le),
        [0xFE, 0xFF, rest @ ..] => (utf16(rest, u16::from_be_bytes)?, Encoding::Utf16Be),
        _ => (
            std::str::from_utf8(bytes)
                .map_err(|_| err("the key file is neither UTF-8 nor UTF-16 with a byte order mark"))?
                .to_owned(),
            Encoding::Utf8,
        ),
    };
    Ok((text.trim_start_matches('\u{feff}').to_owned(), encoding))
}

/// Parses a key file, telling JSON from CPIX by its first character.
/// Encrypted and signed CPIX is read as `recipient` can.
pub fn parse(bytes: &[u8], recipient: &Recipient<'_>) -> Result<Vec<NewKey>, KeyFileError> {
    if bytes.len() > MAX_KEY_FILE {
        return Err(err("the key file is larger than 16 MiB"));
    }
    let (text, encoding) = decode(bytes)?;
    let text = text.trim_start();
    let keys = match text.chars().next() {
        Some('{') => parse_json(text)?,
        Some('<') => cpix::parse(&one_document(text, encoding)?, recipient)?,
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
                period: None,
            })
        })
        .collect()
}

/// Why a key's label (its title for the crew) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LabelProblem {
    #[error("longer than 200 characters")]
    TooLong,
    #[error("contains control characters")]
    ControlCharacters,
}

fn check_label(label: &str) -> Result<(), LabelProblem> {
    if label.len() > 200 {
        return Err(LabelProblem::TooLong);
    }
    if label.chars().any(char::is_control) {
        return Err(LabelProblem::ControlCharacters);
    }
    Ok(())
}

/// The one text every reader of an XML key file reads: the decoded document
/// with its declaration's `encoding` taken out, after checking that the
/// declared encoding is the one the bytes are in. berth's own reader and
/// libxml2 (which verifies the signatures) are both given exactly this UTF-8
/// text, so neither can read a document the other did not: a declared
/// `UTF-7`, or a declaration that disagrees with the byte order mark, would
/// make libxml2 decode other characters than berth did, and is refused.
fn one_document(text: &str, encoding: Encoding) -> Result<String, KeyFileError> {
    let Some(rest) = text.strip_prefix("<?xml") else {
        return Ok(text.to_owned());
    };
    let (declaration, body) = rest
        .split_once("?>")
        .ok_or_else(|| err("the XML declaration is not closed"))?;
    let attributes = declaration_attributes(declaration)?;
    let declared = attributes
        .iter()
        .find(|(name, _)| *name == "encoding")
        .map(|(_, value)| value.to_ascii_uppercase());
    let agrees = match (declared.as_deref(), encoding) {
        (None, _)
        | (Some("UTF-8"), Encoding::Utf8)
        | (Some("UTF-16"), Encoding::Utf16Le | Encoding::Utf16Be) => true,
        (Some("UTF-16LE"), Encoding::Utf16Le) | (Some("UTF-16BE"), Encoding::Utf16Be) => true,
        (Some("UTF-8" | "UTF-16" | "UTF-16LE" | "UTF-16BE"), _) => false,
        (Some(other), _) => {
            return Err(err(format!(
                "the document declares encoding {:?}; berth reads CPIX only in UTF-8 or UTF-16, so that the signature checker and the key reader read one document",
                other.chars().take(40).collect::<String>()
            )));
        }
    };
    if !agrees {
        return Err(err(format!(
            "the document declares encoding {:?} but its bytes are {}: refused, since readers would disagree on its text",
            declared.unwrap_or_default(),
            match encoding {
                Encoding::Utf8 => "UTF-8",
                Encoding::Utf16Le => "UTF-16 (little-endian byte order mark)",
                Encoding::Utf16Be => "UTF-16 (big-endian byte order mark)",
            }
        )));
    }
    let kept: String = attributes
        .iter()
        .filter(|(name, _)| *name != "encoding")
        .map(|(name, value)| format!(" {name}=\"{value}\""))
        .collect();
    Ok(format!("<?xml{kept}?>{body}"))
}

/// The pseudo-attributes of an XML declaration (`version="1.0" ...`), strictly:
/// a name, `=`, a quoted value, separated by white space.
fn declaration_attributes(declaration: &str) -> Result<Vec<(&str, &str)>, KeyFileError> {
    let bad = || err("the XML declaration cannot be read");
    let mut attributes = Vec::new();
    let mut rest = declaration;
    loop {
        let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        if trimmed.is_empty() {
            return Ok(attributes);
        }
        if trimmed.len() == rest.len() {
            return Err(bad());
        }
        let (name, after) = trimmed.split_once('=').ok_or_else(bad)?;
        let name = name.trim_end_matches([' ', '\t', '\r', '\n']);
        if !["version", "encoding", "standalone"].contains(&name) {
            return Err(bad());
        }
        let after = after.trim_start_matches([' ', '\t', '\r', '\n']);
        let quote = after
            .chars()
            .next()
            .filter(|q| matches!(q, '"' | '\''))
            .ok_or_else(bad)?;
        let (value, tail) = after[1..].split_once(quote).ok_or_else(bad)?;
        if value.contains(['"', '\'', '<', '&']) {
            return Err(bad());
        }
        attributes.push((name, value));
        rest = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Vec<NewKey>, KeyFileError> {
        let clear = Recipient {
            delivery: None,
            signers: &[],
            now: time::macros::datetime!(2026-12-01 00:00 UTC),
        };
        super::parse(bytes, &clear)
    }

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
    fn reads_utf16_with_any_prefixes_comments_and_layout() {
        let other = CPIX
            .replace("encoding=\"UTF-8\"", "encoding='UTF-16'")
            .replace("cpix:", "c:")
            .replace("xmlns:cpix", "xmlns:c")
            .replace("pskc:", "p:")
            .replace("xmlns:pskc", "xmlns:p")
            .replace("<c:Data>", "<!-- the key --><c:Data>\n\t");
        for bom in [[0xFF, 0xFE], [0xFE, 0xFF]] {
            let mut bytes = bom.to_vec();
            for unit in other.encode_utf16() {
                let pair = if bom[0] == 0xFF {
                    unit.to_le_bytes()
                } else {
                    unit.to_be_bytes()
                };
                bytes.extend(pair);
            }
            assert_eq!(parse(&bytes).unwrap()[0].key.0[0], 0x16);
        }
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
                .contains("encrypted and this installation has no delivery key")
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
