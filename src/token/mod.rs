//! License tokens (Axinom License Service Message, SPEC section 3): parsing, HS256
//! verification, validity dates, and the entitlement they carry.
//!
//! Architecture Invariant: pure functions of (token text, communication keys, now).
//! No I/O, no HTTP, no SQL; crypto only through `crate::crypto`.

mod entitlement;
mod mint;
mod policy;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::crypto::{HmacKey, aes256_cbc_decrypt_block, ct_eq};
use crate::ids::{ComKeyId, ContentKey, Kid, Secret32, b64_decode, decode_b64_any, parse_instant};

pub use entitlement::Denial;
pub use mint::{MintError, Minted, Minting, mint, parse_validity};
pub use policy::{FairPlayRules, Hdcp};

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 32 * 1024;

/// A communication key, ready to verify tokens.
pub struct ComKey {
    pub id: ComKeyId,
    pub secret: Secret32,
    hmac: HmacKey,
}

impl ComKey {
    pub fn new(id: ComKeyId, secret: Secret32) -> ComKey {
        let hmac = HmacKey::new(&secret.0);
        ComKey { id, secret, hmac }
    }

    /// Signs a token payload (for `berth token mint` and tests).
    pub fn sign_token(&self, payload: &Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(payload.to_string());
        let signing_input = format!("{header}.{body}");
        let sig = URL_SAFE_NO_PAD.encode(self.hmac.sign(signing_input.as_bytes()));
        format!("{signing_input}.{sig}")
    }
}

/// Looks up communication keys by id.
pub type ComKeys = HashMap<ComKeyId, Arc<ComKey>, foldhash::fast::RandomState>;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    #[error("the license token is not valid: {0}")]
    Invalid(String),
    #[error("the license token is not valid: communication key {0} is not known")]
    UnknownComKey(ComKeyId),
    #[error("the license token has expired ({0})")]
    Expired(String),
    #[error("the license token is not valid yet ({0})")]
    NotYetValid(String),
    #[error("the license token asks for {0}, which berth cannot enforce")]
    Unsupported(String),
}

fn invalid(why: impl Into<String>) -> TokenError {
    TokenError::Invalid(why.into())
}

/// Where the content keys of an entitlement come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Exactly these KIDs; a key carried in the token wins over the key store.
    Inline(Vec<(Kid, Option<ContentKey>)>),
    /// Exactly these KIDs, keys from the key store.
    Stored(Vec<Kid>),
    /// Whatever the player asks for, keys from the key store.
    LicenseRequest,
}

/// What a verified token allows.
#[derive(Debug, Clone)]
pub struct Entitlement {
    pub com_key_id: ComKeyId,
    pub token_id: Option<String>,
    pub keys: KeySource,
    pub allow_persistence: bool,
    pub prevent_reuse: bool,
    pub allowed_ips: Vec<IpNet>,
    pub user_id: Option<String>,
    /// The last instant the token can be used (for forgetting single-use ids).
    pub usable_until: Option<OffsetDateTime>,
    /// `license.duration`: how long a license may last on the device, in
    /// seconds. Only FairPlay can make a device keep it (Clear Key and HLS
    /// refuse a token that sets it).
    pub license_duration: Option<u32>,
    /// `license.expiration_datetime`: when licenses end (FairPlay carries it
    /// to the device as a duration; for every key system no license is
    /// issued after it).
    pub license_expires: Option<OffsetDateTime>,
    /// The `fairplay` sections of the usage policies the keys refer to: for
    /// one KID, or (`None`) for whatever the player asks (`license_request`).
    pub fairplay: Vec<(Option<Kid>, FairPlayRules)>,
}

impl Entitlement {
    /// The FairPlay rules for `kid`, if its usage policy has any.
    pub fn fairplay_rules(&self, kid: &Kid) -> Option<&FairPlayRules> {
        self.fairplay
            .iter()
            .find(|(for_kid, _)| for_kid.is_none_or(|k| k == *kid))
            .map(|(_, rules)| rules)
    }

    /// How many seconds a license issued at `now` may last: the license
    /// duration, or the time to the license's expiry if that is sooner.
    pub fn license_limit(&self, now: OffsetDateTime) -> Option<u32> {
        let to_expiry = self
            .license_expires
            .map(|end| (end - now).whole_seconds().clamp(0, i64::from(u32::MAX)) as u32);
        match (self.license_duration, to_expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A string of the token, borrowed from its decoded part (owned only when
/// it holds escapes): five strings a token were copied out one by one
/// (issue 37).
#[derive(Deserialize)]
#[serde(transparent)]
struct Text<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Text<'a>,
    #[serde(default)]
    crit: Option<Value>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    version: i64,
    #[serde(borrow)]
    com_key_id: Text<'a>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default, borrow)]
    begin_date: Option<Text<'a>>,
    #[serde(default, borrow)]
    expiration_date: Option<Text<'a>>,
    #[serde(borrow)]
    message: Message<'a>,
}

// No `#[serde(flatten)]` below: it buffers the whole object (every key and
// string copied) before the fields are read, and a duplicate key in the
// flattened rest would silently take the last value. The fields that restrict
// playback are named instead (`policy` denies what berth cannot enforce); any
// other unknown field is ignored, and a named field given twice is an error.

/// Declares an object of the token with its fields and, after `restricts`, the
/// fields that restrict playback, which `restrictions()` lists by their JSON
/// names for `policy::check_fields`. (A missing `Option` field is `None`.)
macro_rules! token_object {
    ($(#[$meta:meta])* struct $name:ident $(<$lt:lifetime>)? { $($(#[$fmeta:meta])* $field:ident: $ty:ty,)* } restricts { $($limit:ident),* $(,)? }) => {
        $(#[$meta])*
        struct $name $(<$lt>)? {
            $($(#[$fmeta])* $field: $ty,)*
            $(#[serde(default)] $limit: Option<Value>,)*
        }

        impl $(<$lt>)? $name $(<$lt>)? {
            fn restrictions(&self) -> [(&'static str, &Option<Value>); [$(stringify!($limit)),*].len()] {
                [$((stringify!($limit), &self.$limit)),*]
            }
        }
    };
}

token_object! {
    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(rename = "type", borrow)]
        kind: Text<'a>,
        version: i64,
        /// Boxed, like `license_server`: inline, the two made the payload
        /// 1,072 bytes, copied on every move while it is read (issue 37).
        license: Option<Box<License>>,
        #[serde(borrow)]
        content_keys_source: KeysSource<'a>,
        content_key_usage_policies: Option<Vec<policy::StrictValue>>,
        license_server: Option<Box<LicenseServer>>,
        session: Option<Session>,
    } restricts {
        first_play_expiration, concurrency_limit, output_protection
    }
}

token_object! {
    /// `restricts`: the limits on playback on the device after delivery.
    #[derive(Deserialize, Default)]
    struct License {
        start_datetime: Option<Value>,
        expiration_datetime: Option<Value>,
        allow_persistence: Option<Value>,
        duration: Option<Value>,
    } restricts {
        real_time_expiration, rental_duration, playback_duration,
            license_duration, first_play_expiration, max_playbacks
    }
}

token_object! {
    #[derive(Deserialize, Default)]
    struct LicenseServer {
        access_control: Option<AccessControl>,
    } restricts {
        concurrency_limit, max_licenses, max_devices
    }
}

token_object! {
    #[derive(Deserialize, Default)]
    struct AccessControl {
        prevent_drm_message_reuse: Option<bool>,
        allowed_ip_addresses: Option<Vec<String>>,
    } restricts {
        concurrency_limit, max_licenses, max_devices, allowed_countries,
            geo_restriction, device_restriction
    }
}

#[derive(Deserialize, Default)]
struct Session {
    #[serde(default)]
    user_id: Option<Value>,
}

/// `content_keys_source`: exactly one of the three (checked after parsing);
/// anything else in it is an error, not ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysSource<'a> {
    #[serde(default, borrow)]
    inline: Option<Vec<SourceEntry<'a>>>,
    #[serde(default, borrow)]
    stored: Option<Vec<SourceEntry<'a>>>,
    #[serde(default, borrow)]
    license_request: Option<SourceEntry<'a>>,
}

/// One object of `content_keys_source`: an `inline` or `stored` entry, or the
/// `license_request` object. Every field is read; the first one berth does not
/// know (`seed_id`, `iv`, anything else) is kept by name, so that the source it
/// is in can refuse it as unsupported rather than ignore it.
#[derive(Default)]
struct SourceEntry<'a> {
    id: Option<Text<'a>>,
    encrypted_key: Option<Text<'a>>,
    usage_policy: Option<Text<'a>>,
    unknown: Option<String>,
}

impl<'de: 'a, 'a> Deserialize<'de> for SourceEntry<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<'a>(std::marker::PhantomData<SourceEntry<'a>>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Fields<'a> {
            type Value = SourceEntry<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SourceEntry<'a>, A::Error> {
                let mut entry = SourceEntry::default();
                while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let slot = match name.as_ref() {
                        "id" => &mut entry.id,
                        "encrypted_key" => &mut entry.encrypted_key,
                        "usage_policy" => &mut entry.usage_policy,
                        other => {
                            // `null` asks for nothing; any other value does.
                            if !map.next_value::<Value>()?.is_null() && entry.unknown.is_none() {
                                entry.unknown = Some(short(other));
                            }
                            continue;
                        }
                    };
                    if slot.is_some() {
                        return Err(serde::de::Error::custom(format_args!("duplicate field `{name}`")));
                    }
                    *slot = map.next_value::<Option<Text<'a>>>()?;
                }
                Ok(entry)
            }
        }
        deserializer.deserialize_map(Fields(std::marker::PhantomData))
    }
}

impl SourceEntry<'_> {
    /// Refuses a field this source cannot honour, naming it by its path
    /// (`content_keys_source.<source>[<index>].<field>`).
    fn only(&self, source: &str, index: Option<usize>, allowed: &[&str]) -> Result<(), TokenError> {
        let present = [
            ("id", self.id.is_some()),
            ("encrypted_key", self.encrypted_key.is_some()),
        ];
        let field = present
            .iter()
            .find(|(name, is_there)| *is_there && !allowed.contains(name))
            .map(|(name, _)| (*name).to_owned())
            .or_else(|| self.unknown.clone());
        match field {
            Some(field) => Err(TokenError::Unsupported(match index {
                Some(i) => format!("content_keys_source.{source}[{i}].{field}"),
                None => format!("content_keys_source.{source}.{field}"),
            })),
            None => Ok(()),
        }
    }
}

/// Verifies a token and returns its entitlement.
///
/// `tolerance` widens every validity window on both sides, for drifting clocks.
pub fn verify(
    token: &str,
    com_keys: &ComKeys,
    now: OffsetDateTime,
    tolerance: Duration,
) -> Result<Entitlement, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(invalid("it is longer than 32 KiB"));
    }
    let mut parts = token.trim().split('.');
    let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("it is not a compact JWS (three dot-separated parts)"));
    };

    let header_text = decode_text(header_b64).map_err(|e| invalid(format!("header {e}")))?;
    let header: Header = parse_part(&header_text).map_err(|e| invalid(format!("header {e}")))?;
    if &*header.alg != "HS256" {
        return Err(invalid(format!(
            "algorithm {:?} is not accepted (only HS256)",
            short(&header.alg)
        )));
    }
    if header.crit.is_some() {
        return Err(invalid("critical header extensions are not supported"));
    }
    let payload_text = decode_text(payload_b64).map_err(|e| invalid(format!("payload {e}")))?;
    let payload: Payload = parse_part(&payload_text).map_err(|e| invalid(format!("payload {e}")))?;
    let com_key_id: ComKeyId = payload
        .com_key_id
        .parse()
        .map_err(|_| invalid("com_key_id is not a UUID"))?;
    let com_key = com_keys
        .get(&com_key_id)
        .ok_or(TokenError::UnknownComKey(com_key_id))?;

    let signature =
        b64_decode(&URL_SAFE_NO_PAD, sig_b64).map_err(|_| invalid("the signature is not base64url"))?;
    let signing_input_len = header_b64.len() + 1 + payload_b64.len();
    let expected = com_key.hmac.sign(&token.trim().as_bytes()[..signing_input_len]);
    if !ct_eq(&expected, &signature) {
        return Err(invalid("the signature does not match"));
    }

    // From here on the payload is authentic.
    check_semantics(payload, com_key, now, tolerance)
}

fn check_semantics(
    payload: Payload,
    com_key: &ComKey,
    now: OffsetDateTime,
    tolerance: Duration,
) -> Result<Entitlement, TokenError> {
    check_versions(&payload)?;
    let (usable_until, license_expires) = check_dates(&payload, now, tolerance)?;
    let message = payload.message;
    let license = message.license.as_ref();
    let allow_persistence = match license.and_then(|l| l.allow_persistence.as_ref()) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("license.allow_persistence is not a boolean")),
    };
    if let Some(license) = license {
        policy::check_fields("license", &license.restrictions())?;
    }
    policy::check_fields("message", &message.restrictions())?;
    let server = message.license_server.map(|s| *s).unwrap_or_default();
    policy::check_fields("license_server", &server.restrictions())?;
    let access = server.access_control.unwrap_or_default();
    policy::check_fields("license_server.access_control", &access.restrictions())?;
    let prevent_reuse = access.prevent_drm_message_reuse.unwrap_or(false);
    let allowed_ips = access
        .allowed_ip_addresses
        .unwrap_or_default()
        .iter()
        .map(|s| parse_ip_or_net(s))
        .collect::<Result<Vec<_>, _>>()?;
    let token_id = match payload.id {
        Some(id) if id.len() > 128 || id.is_empty() => return Err(invalid("id must be 1 to 128 characters")),
        other => other,
    };
    if prevent_reuse && token_id.is_none() {
        return Err(invalid("prevent_drm_message_reuse needs the token's id"));
    }
    let license_duration = license_duration(license.and_then(|l| l.duration.as_ref()))?;
    let policies = policy::Policies::parse(message.content_key_usage_policies.unwrap_or_default())?;
    let mut fairplay = Vec::new();
    Ok(Entitlement {
        com_key_id: com_key.id,
        token_id,
        keys: parse_key_source(message.content_keys_source, com_key, &policies, &mut fairplay)?,
        allow_persistence,
        prevent_reuse,
        allowed_ips,
        user_id: session_user(message.session.unwrap_or_default())?,
        usable_until,
        license_duration,
        license_expires,
        fairplay,
    })
}

/// `license.duration`: whole seconds, 0 or absent for none.
fn license_duration(value: Option<&Value>) -> Result<Option<u32>, TokenError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => Ok(None),
            Some(seconds) => Ok(Some(u32::try_from(seconds).unwrap_or(u32::MAX))),
            None => Err(invalid("license.duration is not a whole number of seconds")),
        },
        Some(_) => Err(invalid("license.duration is not a number")),
    }
}

/// The payload and message versions and types berth reads.
fn check_versions(payload: &Payload) -> Result<(), TokenError> {
    if payload.version != 1 {
        return Err(invalid(format!("version {} is not supported", payload.version)));
    }
    let message = &payload.message;
    if &*message.kind != "entitlement_message" {
        return Err(invalid(format!(
            "message type {:?} is not supported",
            short(&message.kind)
        )));
    }
    if !(1..=2).contains(&message.version) {
        return Err(invalid(format!(
            "entitlement message version {} is not supported",
            message.version
        )));
    }
    Ok(())
}

/// Checks both validity windows (the token's and the license's) against
/// `now`, each widened by `tolerance`; returns the last instant the token can
/// be used and when the license ends (`license.expiration_datetime`), where
/// they have an end.
fn check_dates(
    payload: &Payload,
    now: OffsetDateTime,
    tolerance: Duration,
) -> Result<(Option<OffsetDateTime>, Option<OffsetDateTime>), TokenError> {
    let license = payload.message.license.as_ref();
    let license_start = opt_str(
        license.and_then(|l| l.start_datetime.as_ref()),
        "license.start_datetime",
    )?;
    let license_end = opt_str(
        license.and_then(|l| l.expiration_datetime.as_ref()),
        "license.expiration_datetime",
    )?;
    let windows = [
        (
            "begin_date",
            payload.begin_date.as_deref(),
            "expiration_date",
            payload.expiration_date.as_deref(),
        ),
        (
            "license.start_datetime",
            license_start,
            "license.expiration_datetime",
            license_end,
        ),
    ];
    let instant = |name: &str, text: &str| {
        parse_instant(text).map_err(|_| {
            invalid(format!(
                "{name} is not an RFC 3339 date-time up to 9999-12-31T23:59:59Z"
            ))
        })
    };
    // Each window's end, in the order above: the token's, the license's.
    let mut ends = [None; 2];
    for ((start_name, start, end_name, end), slot) in windows.into_iter().zip(&mut ends) {
        if let Some(start) = start {
            // Saturating: a portal may write "never" as 9999-12-31T23:59:59Z,
            // and the date type ends there (plain `+` panicked).
            if now.saturating_add(tolerance) < instant(start_name, start)? {
                return Err(TokenError::NotYetValid(format!("{start_name} is in the future")));
            }
        }
        if let Some(end) = end {
            let end = instant(end_name, end)?;
            if now.saturating_sub(tolerance) > end {
                return Err(TokenError::Expired(format!("{end_name} has passed")));
            }
            *slot = Some(end);
        }
    }
    let usable_until = ends
        .iter()
        .flatten()
        .min()
        .map(|end| end.saturating_add(tolerance));
    Ok((usable_until, ends[1]))
}

/// `session.user_id`: a string or a number; empty or null is no user.
fn session_user(session: Session) -> Result<Option<String>, TokenError> {
    match session.user_id {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(invalid("session.user_id is not a string")),
    }
}

/// The keys the entitlement names, after refusing every field berth cannot
/// honour and every usage policy it cannot enforce, whichever source names it.
fn parse_key_source(
    source: KeysSource,
    com_key: &ComKey,
    policies: &policy::Policies,
    fairplay: &mut Vec<(Option<Kid>, FairPlayRules)>,
) -> Result<KeySource, TokenError> {
    let mut apply = |entry: &SourceEntry, kid: Option<Kid>| {
        if let Some(name) = &entry.usage_policy
            && let Some(rules) = policies.check_applied(name)?
        {
            fairplay.push((kid, rules));
        }
        Ok::<_, TokenError>(())
    };
    match (source.inline, source.stored, source.license_request) {
        (Some(entries), None, None) => {
            let mut keys = Vec::with_capacity(entries.len());
            for (i, entry) in entries.iter().enumerate() {
                entry.only("inline", Some(i), &["id", "encrypted_key"])?;
                let kid: Kid = entry
                    .id
                    .as_deref()
                    .unwrap_or("")
                    .parse()
                    .map_err(|_| invalid("an inline key id is not a UUID"))?;
                apply(entry, Some(kid))?;
                let key = match entry.encrypted_key.as_deref() {
                    None | Some("") => None,
                    Some(text) => Some(decrypt_inline_key(text, &kid, com_key)?),
                };
                keys.push((kid, key));
            }
            Ok(KeySource::Inline(keys))
        }
        (None, Some(entries), None) => {
            let mut kids = Vec::with_capacity(entries.len());
            for (i, entry) in entries.iter().enumerate() {
                entry.only("stored", Some(i), &["id"])?;
                let kid = entry.id.as_deref().unwrap_or("").parse::<Kid>();
                let kid = kid.map_err(|_| invalid("a stored key id is not a UUID"))?;
                apply(entry, Some(kid))?;
                kids.push(kid);
            }
            Ok(KeySource::Stored(kids))
        }
        (None, None, Some(entry)) => {
            entry.only("license_request", None, &[])?;
            apply(&entry, None)?;
            Ok(KeySource::LicenseRequest)
        }
        _ => Err(invalid(
            "content_keys_source must hold exactly one of inline, stored, license_request",
        )),
    }
}

fn decrypt_inline_key(text: &str, kid: &Kid, com_key: &ComKey) -> Result<ContentKey, TokenError> {
    let bytes = decode_b64_any(text).ok_or_else(|| invalid("an encrypted_key is not base64"))?;
    let block: [u8; 16] = bytes
        .try_into()
        .map_err(|_| invalid("an encrypted_key is not 16 bytes"))?;
    Ok(ContentKey(aes256_cbc_decrypt_block(
        &com_key.secret.0,
        &kid.0,
        &block,
    )))
}

fn parse_ip_or_net(text: &str) -> Result<IpNet, TokenError> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        invalid(format!(
            "allowed_ip_addresses has {:?}, not an address or CIDR",
            short(text)
        ))
    })
}

fn opt_str<'a>(value: Option<&'a Value>, name: &str) -> Result<Option<&'a str>, TokenError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{name} is not a string"))),
    }
}

/// Why a token's header or payload cannot be read.
#[derive(Debug, thiserror::Error)]
enum PartError {
    #[error("is not base64url")]
    NotBase64,
    #[error("is not UTF-8 JSON")]
    NotUtf8,
    #[error("is not the expected JSON ({0})")]
    NotExpected(serde_json::Error),
}

/// A part of the token decoded, and checked as UTF-8 once, whole: `from_slice`
/// would check every string in it on its own (two dozen calls per token).
fn decode_text(part: &str) -> Result<String, PartError> {
    let bytes = b64_decode(&URL_SAFE_NO_PAD, part.trim_end_matches('=')).map_err(|_| PartError::NotBase64)?;
    String::from_utf8(bytes).map_err(|_| PartError::NotUtf8)
}

/// A decoded part read as `T`, whose strings borrow from it.
fn parse_part<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, PartError> {
    serde_json::from_str(text).map_err(PartError::NotExpected)
}

/// Shortens attacker-controlled text before it goes into a message.
fn short(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests;
