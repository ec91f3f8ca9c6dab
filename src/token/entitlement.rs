//! Deciding a request against an entitlement: client address, persistence, and
//! that every requested KID is both entitled and known.

use std::net::IpAddr;

use super::{Entitlement, KeySource};
use crate::ids::{ContentKey, KeySystem, Kid, LicenseType};

/// Why an authentic token does not cover this request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("the client address is not allowed by the license token")]
    IpNotAllowed,
    #[error("the license token does not allow persistent licenses")]
    PersistenceNotAllowed,
    #[error("key {0} is not entitled by the license token")]
    NotEntitled(Kid),
    #[error("key {0} is not known to this server")]
    Unknown(Kid),
    #[error("the license token asks for {0}, which this key system cannot enforce")]
    Unenforceable(String),
}

impl Entitlement {
    /// Returns the content keys for `requested`, in order, or the first reason to
    /// deny. No partial grants: one bad KID denies the whole request. Clear
    /// Key and HLS keys carry no rules to the device, so a license duration
    /// or a FairPlay rule that restricts is refused for them.
    pub fn grant(
        &self,
        requested: &[Kid],
        license_type: LicenseType,
        key_system: KeySystem,
        client: IpAddr,
        store: impl Fn(&Kid) -> Option<ContentKey>,
    ) -> Result<Vec<(Kid, ContentKey)>, Denial> {
        if key_system != KeySystem::FairPlay {
            if self.license_duration.is_some() {
                return Err(Denial::Unenforceable("license.duration".into()));
            }
            for kid in requested {
                if let Some(field) = self.fairplay_rules(kid).and_then(|r| r.restriction()) {
                    return Err(Denial::Unenforceable(field));
                }
            }
        }
        if !self.allowed_ips.is_empty() {
            let client = client.to_canonical();
            if !self.allowed_ips.iter().any(|net| net.contains(&client)) {
                return Err(Denial::IpNotAllowed);
            }
        }
        if license_type == LicenseType::PersistentLicense && !self.allow_persistence {
            return Err(Denial::PersistenceNotAllowed);
        }
        let mut out = Vec::with_capacity(requested.len());
        for kid in requested {
            let key = match &self.keys {
                KeySource::Inline(keys) => match keys.iter().find(|(k, _)| k == kid) {
                    None => return Err(Denial::NotEntitled(*kid)),
                    Some((_, Some(key))) => Some(key.clone()),
                    Some((_, None)) => store(kid),
                },
                KeySource::Stored(kids) if !kids.contains(kid) => {
                    return Err(Denial::NotEntitled(*kid));
                }
                KeySource::Stored(_) | KeySource::LicenseRequest => store(kid),
            };
            out.push((*kid, key.ok_or(Denial::Unknown(*kid))?));
        }
        Ok(out)
    }
}
