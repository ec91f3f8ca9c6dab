//! The CKC (content key context) berth answers an SPC with: one content key
//! under the SPC's session key, R1, the blocks the SPC asked back, and the
//! terms, encrypted under the key derived from R1 and the anti-replay seed.
//!
//! Container: version (4 bytes, 1), reserved (4, zero), IV (16), the
//! payload's length (4), the payload (AES-128-CBC).

use super::spc::Spc;
use super::terms::{KeyDuration, Terms};
use super::tllv;
use crate::crypto::fairplay::{aes128_cbc_encrypt, aes128_ecb_encrypt, sha1};
use crate::crypto::random;
use crate::ids::ContentKey;

pub const CKC_VERSION: u32 = 1;

/// The content key duration block's key types and its fixed last word.
const LEASE: u32 = 0x1a4b_de7e;
const PERSISTENCE: u32 = 0x3df2_d9fb;
const PERSISTENCE_AND_DURATION: u32 = 0x18f0_6048;
const DURATION_RESERVED: u32 = 0x86d3_4a3a;

fn random_padding(n: usize) -> Vec<u8> {
    let block: [u8; 16] = random();
    block[..n].to_vec()
}

/// The CKC for `spc`, carrying `key` (with the content IV `iv`) on `terms`.
pub fn build(spc: &Spc, key: &ContentKey, iv: &[u8; 16], terms: &Terms) -> Vec<u8> {
    let mut payload = Vec::with_capacity(256);
    let mut wrapped = [0u8; 32];
    wrapped[..16].copy_from_slice(iv);
    wrapped[16..].copy_from_slice(&aes128_ecb_encrypt(&spc.session_key, &key.0));
    tllv::write(
        &mut payload,
        tllv::ENCRYPTED_CONTENT_KEY,
        &wrapped,
        random_padding,
    );
    tllv::write(&mut payload, tllv::R1, &spc.r1, random_padding);
    if let Some(duration) = terms.duration {
        let (lease, rental, kind) = match duration {
            KeyDuration::Lease(seconds) => (seconds, 0, LEASE),
            KeyDuration::Persistence => (0, 0, PERSISTENCE),
            KeyDuration::PersistenceFor(seconds) => (0, seconds, PERSISTENCE_AND_DURATION),
        };
        let mut value = Vec::with_capacity(16);
        for word in [lease, rental, kind, DURATION_RESERVED] {
            value.extend_from_slice(&word.to_be_bytes());
        }
        tllv::write(&mut payload, tllv::CONTENT_KEY_DURATION, &value, random_padding);
    }
    if let Some(hdcp) = terms.hdcp {
        tllv::write(
            &mut payload,
            tllv::HDCP_ENFORCEMENT,
            &super::terms::hdcp_value(hdcp).to_be_bytes(),
            random_padding,
        );
    }
    for (tag, value) in &spc.returned {
        tllv::write(&mut payload, *tag, value, random_padding);
    }
    let iv: [u8; 16] = random();
    let encrypted = aes128_cbc_encrypt(&anti_replay_key(spc), &iv, &payload);
    crate::crypto::wipe(&mut payload);
    crate::crypto::wipe(&mut wrapped);
    let mut ckc = Vec::with_capacity(28 + encrypted.len());
    ckc.extend_from_slice(&CKC_VERSION.to_be_bytes());
    ckc.extend_from_slice(&[0; 4]);
    ckc.extend_from_slice(&iv);
    ckc.extend_from_slice(&(encrypted.len() as u32).to_be_bytes());
    ckc.extend_from_slice(&encrypted);
    ckc
}

/// AES-128-ECB(SHA-1(R1)[..16], anti-replay seed): the key the CKC's payload
/// is encrypted under.
fn anti_replay_key(spc: &Spc) -> [u8; 16] {
    let key: [u8; 16] = sha1(&spc.r1)[..16].try_into().expect("16 of 20 bytes");
    aes128_ecb_encrypt(&key, &spc.anti_replay_seed)
}
