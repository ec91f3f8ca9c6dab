//! What a CKC allows, decided from the token before anything is logged: the
//! token's FairPlay rules for the key, its license duration and expiry, and
//! whether it allows persistence, against what the device says it can
//! enforce and where it is showing the content. What a CKC cannot carry is
//! refused by name.

use super::spc::{Output, Spc};
use crate::ids::LicenseType;
use crate::token::{FairPlayRules, Hdcp};

/// The content key duration block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDuration {
    /// Streaming: the key works for this many seconds after the CKC arrives.
    Lease(u32),
    /// Offline playback, with no end.
    Persistence,
    /// Offline playback for this many seconds.
    PersistenceFor(u32),
}

/// The terms one CKC carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    /// `None`: no duration block (the key lasts the playback session).
    pub duration: Option<KeyDuration>,
    /// `None`: no HDCP block (the device's default, HDCP Type 0).
    pub hdcp: Option<Hdcp>,
}

impl Terms {
    /// What the log records the license as.
    pub fn license_type(&self) -> LicenseType {
        match self.duration {
            Some(KeyDuration::Persistence | KeyDuration::PersistenceFor(_)) => LicenseType::PersistentLicense,
            _ => LicenseType::Temporary,
        }
    }
}

/// Why the token's rules cannot be kept on this device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the license token does not allow playback over {0}")]
    Output(&'static str),
    #[error("the license token asks for HDCP Type 1 ({0}), and this device cannot enforce HDCP in a CKC")]
    Hdcp(String),
}

/// The HDCP enforcement block's value for each level.
pub fn hdcp_value(hdcp: Hdcp) -> u64 {
    match hdcp {
        Hdcp::NotRequired => 0xef72_894c_a789_5b78,
        Hdcp::Type0 => 0x4079_1ac7_8bd5_c571,
        Hdcp::Type1 => 0x285a_0863_bba8_e1d3,
    }
}

/// The terms for one key. `limit` is the license's remaining life in
/// seconds (its duration, or its expiry if sooner), if it has one.
pub fn decide(
    rules: Option<&FairPlayRules>,
    limit: Option<u32>,
    allow_persistence: bool,
    spc: &Spc,
) -> Result<Terms, Refusal> {
    let default = FairPlayRules::default();
    let rules = rules.unwrap_or(&default);
    match spc.output {
        Output::AirPlay if !rules.allow_airplay => return Err(Refusal::Output("AirPlay")),
        Output::AvAdapter if !rules.allow_av_adapter => return Err(Refusal::Output("an AV adapter")),
        _ => {}
    }
    let hdcp = match rules.hdcp {
        // The device's default is Type 0; a device that cannot read the HDCP
        // block keeps it, which is at least what NONE and TYPE0 ask.
        Some(level) if spc.capabilities.hdcp_enforcement => Some(level),
        Some(Hdcp::Type1) => return Err(Refusal::Hdcp(rules.policy.clone())),
        _ => None,
    };
    let persistent = allow_persistence && spc.capabilities.offline_key;
    let duration = match (persistent, limit) {
        (true, Some(seconds)) => Some(KeyDuration::PersistenceFor(seconds.max(1))),
        (true, None) => Some(KeyDuration::Persistence),
        (false, Some(seconds)) => Some(KeyDuration::Lease(seconds.max(1))),
        (false, None) => None,
    };
    Ok(Terms { duration, hdcp })
}
