//! FairPlay Streaming's key server (the KSM), for Apple devices: an SPC in,
//! a CKC out, one content key per CKC.
//!
//! Architecture Invariant: no I/O, no store, no HTTP. The provider's
//! credentials arrive opened (the store unseals them, the key ring holds
//! them); the token's rules arrive as `token::FairPlayRules`; the license
//! service logs the CKC's row before `ckc::build` runs.
//!
//! - [`wire`]: the request forms (raw, base64, `spc=`, JSON) and answers.
//! - [`spc`]: the SPC container and payload, opened with the credentials.
//! - [`tllv`]: FairPlay's tag-length-length-value blocks and tags.
//! - [`dfunction`]: Apple's D function (DASk from R2 and the ASk).
//! - [`asset`]: the asset id's KID forms (`skd://...`).
//! - [`terms`]: the token's rules as what a CKC can carry.
//! - [`ckc`]: the CKC.

pub mod asset;
pub mod ckc;
pub mod dfunction;
pub mod spc;
pub mod terms;
pub mod tllv;
pub mod wire;

use crate::crypto::fairplay::ProviderKey;

/// The Application Secret key (ASk) Apple issued with the FPS certificate.
pub struct Ask(pub [u8; 16]);

impl std::fmt::Debug for Ask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ask(..)")
    }
}

impl Drop for Ask {
    fn drop(&mut self) {
        crate::crypto::wipe(&mut self.0);
    }
}

impl Ask {
    /// The ASk as Apple's deployment page shows it: 32 hex digits (spaces,
    /// dashes and a `0x` are allowed around and between them).
    pub fn parse(text: &[u8]) -> Result<Ask, CredentialsError> {
        let text = std::str::from_utf8(text).map_err(|_| CredentialsError::Ask)?;
        let text = text.trim();
        let text = text.strip_prefix("0x").unwrap_or(text);
        let digits: String = text.chars().filter(|c| !matches!(c, ' ' | '-' | ':')).collect();
        let bytes = crate::ids::hex_decode(&digits).ok_or(CredentialsError::Ask)?;
        bytes.try_into().map(Ask).map_err(|_| CredentialsError::Ask)
    }
}

/// What a key server needs from the content provider's FPS deployment
/// package: the certificate, its private key, and the ASk.
#[derive(Debug)]
pub struct Credentials {
    pub key: ProviderKey,
    pub ask: Ask,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error(transparent)]
    Key(#[from] crate::crypto::fairplay::ProviderKeyError),
    #[error("the ASk is not 32 hex digits (16 bytes), as Apple's FPS deployment page gives it")]
    Ask,
    #[error(
        "these credentials have no ASk: they are the newer FPS credentials whose key derivation is inside Apple's closed crypto library (libfpscrypto), which berth does not ship; ask Apple for credentials with an ASk"
    )]
    NoAsk,
}

/// Why an SPC gets no CKC. Each has its own code in the license API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpcError {
    #[error("the SPC is malformed: {0}")]
    Malformed(String),
    #[error("SPC version {0} is not supported (versions 1 and 2 are)")]
    Version(u32),
    #[error("the SPC is for another FPS certificate than this server's")]
    WrongCertificate,
    #[error("the SPC's session key does not open with this server's FPS private key")]
    SessionKey,
    #[error("the SPC's [SK..R1] integrity check failed (a wrong ASk, or a damaged SPC)")]
    Integrity,
    #[error("the SPC asks for FairPlay protocol version {0}; berth speaks version 1")]
    Protocol(u32),
    #[error("the asset id {0:?} names no KID (see the reference for the skd:// forms)")]
    AssetId(String),
}
