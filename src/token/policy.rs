//! Fail closed: find the restrictions in an entitlement that berth cannot enforce.
//!
//! berth delivers Clear Key and HLS identity keys. Neither can make a device keep
//! a license only for a while, limit concurrent streams, or protect outputs, so an
//! entitlement that asks for any of that is denied, naming the field. Fields that
//! restrict nothing (or say "no restriction" explicitly) are accepted; unknown
//! fields outside the restriction lists are ignored, as the SPEC says.

use std::collections::HashMap;

use serde_json::Value;

use super::{TokenError, short};

fn unsupported(field: impl Into<String>) -> TokenError {
    TokenError::Unsupported(field.into())
}

/// Denies the first of an object's restricting fields (`Message::restrictions`
/// and the like name them) whose value asks for something.
pub fn check_fields(prefix: &str, fields: &[(&str, &Option<Value>)]) -> Result<(), TokenError> {
    for (name, value) in fields {
        if let Some(value) = value
            && restricts(name, value)
        {
            return Err(unsupported(format!("{prefix}.{name}")));
        }
    }
    Ok(())
}

/// Values that mean "no restriction" in the DRM-specific policy sections.
const PERMISSIVE_STRINGS: &[&str] = &[
    "",
    "SW_SECURE_CRYPTO",
    "HDCP_NONE",
    "HDCP_SRM_RULE_NONE",
    "never",
    "copy_free",
    "cgms_none",
    "none",
    "NONE",
];

/// Whether a field's value asks for something. `allow_*` fields restrict when
/// false; other booleans restrict when true; the lowest numeric levels (0, 100
/// for PlayReady output protection, 150 for PlayReady security level) and the
/// "none" strings restrict nothing; anything else restricts.
fn restricts(name: &str, value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) if name.starts_with("allow") => !b,
        Value::Bool(b) => *b,
        Value::Number(n) => !matches!(n.as_f64(), Some(x) if x == 0.0 || x == 100.0 || x == 150.0),
        Value::String(s) => !PERMISSIVE_STRINGS.contains(&s.as_str()),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// A JSON value as `serde_json` reads one, except that an object naming a
/// key twice is an error: `Value` keeps the last, so a restricting field
/// followed by a permissive copy of itself would be read as permissive.
pub struct StrictValue(pub Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate field `{}` in a usage policy",
                    short(&key)
                )));
            }
            let StrictValue(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The named usage policies of an entitlement message.
pub struct Policies(HashMap<String, Value>);

impl Policies {
    /// The policies by name; a name given to two policies is refused (which of
    /// them a key means would be a guess).
    pub fn parse(list: Vec<StrictValue>) -> Result<Policies, TokenError> {
        let mut map = HashMap::new();
        for StrictValue(policy) in list {
            let Some(name) = policy.get("name").and_then(Value::as_str) else {
                return Err(TokenError::Invalid(
                    "a content key usage policy has no name".into(),
                ));
            };
            let name = name.to_owned();
            if map.contains_key(&name) {
                return Err(TokenError::Invalid(format!(
                    "usage policy {:?} is defined twice",
                    short(&name)
                )));
            }
            map.insert(name, policy);
        }
        Ok(Policies(map))
    }

    /// Checks the policy a key refers to: any output-protection or device
    /// demand in it denies the license, except in its `fairplay` section,
    /// which is returned for the key systems that can carry it.
    pub fn check_applied(&self, name: &str) -> Result<Option<FairPlayRules>, TokenError> {
        let policy = self
            .0
            .get(name)
            .ok_or_else(|| TokenError::Invalid(format!("usage policy {:?} is not defined", short(name))))?;
        let Value::Object(fields) = policy else {
            return Err(TokenError::Invalid("a usage policy is not an object".into()));
        };
        let mut fairplay = None;
        for (section, body) in fields {
            let path = format!("content_key_usage_policies[{}].{section}", short(name));
            match section.as_str() {
                "name" => continue,
                "fairplay" => fairplay = Some(FairPlayRules::parse(&path, body)?),
                _ => {
                    find_restriction(&path, section, body).map_or(Ok(()), |field| Err(unsupported(field)))?
                }
            }
        }
        Ok(fairplay.filter(|rules| *rules != FairPlayRules::default()))
    }
}

/// The HDCP level a FairPlay policy asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hdcp {
    NotRequired,
    Type0,
    Type1,
}

/// A usage policy's `fairplay` section: `hdcp` (`NONE`, `TYPE0`, `TYPE1`),
/// `allow_airplay` and `allow_av_adapter` (both `true` when absent).
/// FairPlay carries them in its CKC; Clear Key and HLS keys cannot, and
/// refuse a key whose section restricts anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FairPlayRules {
    pub hdcp: Option<Hdcp>,
    pub allow_airplay: bool,
    pub allow_av_adapter: bool,
    /// `content_key_usage_policies[<name>].fairplay`, for messages.
    pub policy: String,
}

impl Default for FairPlayRules {
    fn default() -> FairPlayRules {
        FairPlayRules {
            hdcp: None,
            allow_airplay: true,
            allow_av_adapter: true,
            policy: String::new(),
        }
    }
}

impl FairPlayRules {
    fn parse(path: &str, section: &Value) -> Result<FairPlayRules, TokenError> {
        let Value::Object(fields) = section else {
            return Err(TokenError::Invalid(format!("{path} is not an object")));
        };
        let mut rules = FairPlayRules::default();
        for (field, value) in fields {
            let flag = |value: &Value| {
                value
                    .as_bool()
                    .ok_or_else(|| TokenError::Invalid(format!("{path}.{} is not a boolean", short(field))))
            };
            match field.as_str() {
                "hdcp" => {
                    rules.hdcp = match value.as_str() {
                        Some("NONE") => Some(Hdcp::NotRequired),
                        Some("TYPE0") => Some(Hdcp::Type0),
                        Some("TYPE1") => Some(Hdcp::Type1),
                        _ => {
                            return Err(TokenError::Invalid(format!(
                                "{path}.hdcp is not NONE, TYPE0 or TYPE1"
                            )));
                        }
                    }
                }
                "allow_airplay" => rules.allow_airplay = flag(value)?,
                "allow_av_adapter" => rules.allow_av_adapter = flag(value)?,
                other => {
                    if restricts(other, value) {
                        return Err(unsupported(format!("{path}.{}", short(other))));
                    }
                }
            }
        }
        if rules != FairPlayRules::default() {
            rules.policy = path.to_owned();
        }
        Ok(rules)
    }

    /// The first field a key system that carries no rules (Clear Key, HLS)
    /// would have to ignore, by its path.
    pub fn restriction(&self) -> Option<String> {
        let field = if matches!(self.hdcp, Some(Hdcp::Type0 | Hdcp::Type1)) {
            "hdcp"
        } else if !self.allow_airplay {
            "allow_airplay"
        } else if !self.allow_av_adapter {
            "allow_av_adapter"
        } else {
            return None;
        };
        Some(format!("{}.{field}", self.policy))
    }
}

/// Walks a policy section and returns the path of the first restricting field.
fn find_restriction(path: &str, name: &str, value: &Value) -> Option<String> {
    match value {
        Value::Object(map) => map.iter().find_map(|(key, inner)| {
            // PlayReady play enablers allow outputs; they never restrict.
            if key == "play_enablers" {
                return None;
            }
            find_restriction(&format!("{path}.{}", short(key)), key, inner)
        }),
        other => restricts(name, other).then(|| path.to_owned()),
    }
}
