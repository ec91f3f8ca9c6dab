//! Signing a license token as a portal would (`berth token mint`, for
//! commissioning and tests).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::ComKey;
use crate::crypto::aes256_cbc_encrypt_block;
use crate::ids::{ContentKey, Kid, format_instant};

/// What a minted token entitles.
#[derive(Debug, Clone)]
pub struct Minting<'a> {
    /// The KIDs; none means every KID the player asks for (`license_request`).
    pub kids: &'a [Kid],
    pub user_id: Option<&'a str>,
    pub valid_for: Duration,
    pub allow_persistence: bool,
    pub single_use: bool,
    /// Carry these content keys in the token, encrypted with the
    /// communication key (every KID must be among them).
    pub inline_keys: Option<&'a [(Kid, ContentKey)]>,
    /// The token's own id.
    pub token_id: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MintError {
    #[error("--inline-keys needs at least one --kid")]
    InlineWithoutKids,
    #[error("key {0} is not in the key store")]
    KeyNotStored(Kid),
}

/// A minted token and the instant it expires: printed as the token alone, or
/// with `--json` as both.
#[derive(Debug, serde::Serialize)]
pub struct Minted {
    pub token: String,
    pub expires_at: String,
}

impl std::fmt::Display for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.token)
    }
}

/// A signed token, valid from a minute before `now` (for clocks that lag) for
/// `valid_for`.
pub fn mint(com_key: &ComKey, what: &Minting<'_>, now: OffsetDateTime) -> Result<Minted, MintError> {
    let mut message = json!({
        "type": "entitlement_message",
        "version": 2,
        "license": { "allow_persistence": what.allow_persistence },
        "content_keys_source": key_source(com_key, what)?,
    });
    if what.single_use {
        message["license_server"] = json!({ "access_control": { "prevent_drm_message_reuse": true } });
    }
    if let Some(user) = what.user_id {
        message["session"] = json!({ "user_id": user });
    }
    let expires_at = format_instant(now + what.valid_for);
    let payload = json!({
        "version": 1,
        "com_key_id": com_key.id.to_string(),
        "id": what.token_id,
        "begin_date": format_instant(now - Duration::seconds(60)),
        "expiration_date": expires_at,
        "message": message,
    });
    Ok(Minted {
        token: com_key.sign_token(&payload),
        expires_at,
    })
}

fn key_source(com_key: &ComKey, what: &Minting<'_>) -> Result<Value, MintError> {
    if what.kids.is_empty() {
        if what.inline_keys.is_some() {
            return Err(MintError::InlineWithoutKids);
        }
        return Ok(json!({ "license_request": {} }));
    }
    let mut entries = Vec::with_capacity(what.kids.len());
    for kid in what.kids {
        let mut entry = json!({ "id": kid.to_string() });
        if let Some(store) = what.inline_keys {
            let (_, key) = store
                .iter()
                .find(|(k, _)| k == kid)
                .ok_or(MintError::KeyNotStored(*kid))?;
            let sealed = aes256_cbc_encrypt_block(&com_key.secret.0, &kid.0, &key.0);
            entry["encrypted_key"] = json!(STANDARD.encode(sealed));
        }
        entries.push(entry);
    }
    Ok(json!({ "inline": entries }))
}

/// A token's validity as `token mint --valid-for` takes it: 90s, 30m, 12h, 7d.
pub fn parse_validity(text: &str) -> Result<std::time::Duration, crate::ids::ParseError> {
    use crate::ids::ParseError;
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let not_a_duration = || ParseError(format!("{text:?} is not a duration like 90s, 30m, 12h, 7d"));
    let n: u64 = number.parse().map_err(|_| not_a_duration())?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(not_a_duration()),
    };
    if secs == 0 || secs > 366 * 86_400 {
        return Err(ParseError(
            "a token must be valid for between 1 second and 366 days".into(),
        ));
    }
    Ok(std::time::Duration::from_secs(secs))
}
