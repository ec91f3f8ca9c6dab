//! The SPC (server playback context) a device sends: its container, and the
//! payload inside once the provider's key opens it.
//!
//! Container: version (4 bytes, 1 or 2), reserved (4, zero), the payload's
//! IV (16), the session key wrapped with RSA-OAEP (128 bytes for version 1,
//! 256 for version 2), SHA-1 of the FPS certificate (20), the payload's
//! length (4), the payload (AES-128-CBC under the session key).

use super::tllv::{self, Tllv};
use super::{Credentials, SpcError};
use crate::crypto::ct_eq;
use crate::crypto::fairplay::aes128_cbc_decrypt;

/// SPCs are 2 to 4 KB; anything past this is not one.
pub const MAX_SPC: usize = 16 * 1024;

/// The container, read but not opened.
#[derive(Debug)]
pub struct Container<'a> {
    pub version: u32,
    pub iv: [u8; 16],
    pub wrapped_key: &'a [u8],
    pub certificate_hash: [u8; 20],
    pub payload: &'a [u8],
}

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes"))
}

/// Reads the container; nothing is decrypted.
pub fn container(spc: &[u8]) -> Result<Container<'_>, SpcError> {
    if spc.len() > MAX_SPC {
        return Err(SpcError::Malformed(format!(
            "it is {} bytes; an SPC is at most {MAX_SPC}",
            spc.len()
        )));
    }
    if spc.len() < 8 {
        return Err(SpcError::Malformed("it is shorter than an SPC header".into()));
    }
    let version = be32(spc);
    let wrapped_len = match version {
        1 => 128,
        2 => 256,
        other => return Err(SpcError::Version(other)),
    };
    let header = 8 + 16 + wrapped_len + 20 + 4;
    if spc.len() < header {
        return Err(SpcError::Malformed(format!(
            "a version {version} SPC has a {header}-byte header; this one is {} bytes",
            spc.len()
        )));
    }
    if spc[4..8] != [0; 4] {
        return Err(SpcError::Malformed("its reserved bytes are not zero".into()));
    }
    let payload_len = be32(&spc[header - 4..]) as usize;
    let payload = &spc[header..];
    if payload_len != payload.len() || payload.is_empty() || !payload.len().is_multiple_of(16) {
        return Err(SpcError::Malformed(format!(
            "its payload length says {payload_len} bytes, {} follow (whole AES blocks are needed)",
            payload.len()
        )));
    }
    Ok(Container {
        version,
        iv: spc[8..24].try_into().expect("16 bytes"),
        wrapped_key: &spc[24..24 + wrapped_len],
        certificate_hash: spc[24 + wrapped_len..44 + wrapped_len]
            .try_into()
            .expect("20 bytes"),
        payload,
    })
}

/// Where the device will show the content, from the streaming indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// On the device itself (no indicator, or one that names neither below).
    Device,
    AirPlay,
    AvAdapter,
}

const AIRPLAY: u64 = 0xabb0_256a_3184_3974;
const AV_ADAPTER: u64 = 0x5f9c_8132_b59f_2fde;

/// What the device says it can enforce (the capabilities TLLV's flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub hdcp_enforcement: bool,
    pub offline_key: bool,
}

/// An opened SPC: what the key server needs to answer it.
pub struct Spc {
    pub version: u32,
    pub asset_id: Vec<u8>,
    pub capabilities: Capabilities,
    pub output: Output,
    pub protocol_versions: Vec<u32>,
    pub transaction_id: Option<[u8; 8]>,
    pub(super) session_key: [u8; 16],
    pub(super) r1: Vec<u8>,
    pub(super) anti_replay_seed: [u8; 16],
    /// The blocks the return request asks back, in its order.
    pub(super) returned: Vec<(u64, Vec<u8>)>,
}

impl std::fmt::Debug for Spc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spc")
            .field("version", &self.version)
            .field("asset_id", &String::from_utf8_lossy(&self.asset_id))
            .field("capabilities", &self.capabilities)
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

impl Drop for Spc {
    fn drop(&mut self) {
        crate::crypto::wipe(&mut self.session_key);
        crate::crypto::wipe(&mut self.r1);
    }
}

/// FairPlay's protocol version berth speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Opens an SPC with the provider's credentials: the certificate hash must
/// name their certificate, the session key must open with their private key,
/// and [SK..R1] (under DASk, from R2 and the ASk) must carry the integrity
/// value the SPC states.
pub fn open(spc: &[u8], credentials: &Credentials) -> Result<Spc, SpcError> {
    let container = container(spc)?;
    if !ct_eq(&container.certificate_hash, credentials.key.certificate_sha1()) {
        return Err(SpcError::WrongCertificate);
    }
    let expected_version = if credentials.key.bits() == 1024 { 1 } else { 2 };
    if container.version != expected_version {
        return Err(SpcError::Malformed(format!(
            "a version {} SPC for a {}-bit FPS certificate (version {expected_version} is expected)",
            container.version,
            credentials.key.bits()
        )));
    }
    let spck = credentials
        .key
        .unwrap_session_key(container.wrapped_key)
        .map_err(|_| SpcError::SessionKey)?;
    let mut payload = aes128_cbc_decrypt(&spck, &container.iv, container.payload);
    let opened = read_payload(&payload, container.version, credentials);
    crate::crypto::wipe(&mut payload);
    opened
}

fn find<'a>(blocks: &'a [Tllv<'a>], tag: u64) -> Option<&'a [u8]> {
    blocks.iter().find(|b| b.tag == tag).map(|b| b.value)
}

fn required<'a>(blocks: &'a [Tllv<'a>], tag: u64) -> Result<&'a [u8], SpcError> {
    find(blocks, tag).ok_or_else(|| SpcError::Malformed(format!("it has no {} TLLV", tllv::name(tag))))
}

fn read_payload(payload: &[u8], version: u32, credentials: &Credentials) -> Result<Spc, SpcError> {
    let blocks = tllv::read_all(payload)?;
    let sk_r1 = required(&blocks, tllv::SK_R1)?;
    let integrity = required(&blocks, tllv::SK_R1_INTEGRITY)?;
    let r2 = required(&blocks, tllv::R2)?;
    let dask = super::dfunction::dask(r2, &credentials.ask.0);
    let mut clear = open_sk_r1(&dask, sk_r1);
    if !ct_eq(&clear[80..96], integrity) {
        crate::crypto::wipe(&mut clear);
        return Err(SpcError::Integrity);
    }
    let session_key: [u8; 16] = clear[..16].try_into().expect("16 bytes");
    let r1 = clear[36..80].to_vec();
    crate::crypto::wipe(&mut clear);
    let protocol_versions = match find(&blocks, tllv::PROTOCOL_VERSIONS_SUPPORTED) {
        Some(list) => list.chunks(4).map(be32).collect(),
        None => vec![PROTOCOL_VERSION],
    };
    let used = find(&blocks, tllv::PROTOCOL_VERSION_USED).map(be32);
    if !protocol_versions.contains(&PROTOCOL_VERSION) || used.is_some_and(|v| v != PROTOCOL_VERSION) {
        return Err(SpcError::Protocol(used.unwrap_or(protocol_versions[0])));
    }
    Ok(Spc {
        version,
        asset_id: required(&blocks, tllv::ASSET_ID)?.to_vec(),
        capabilities: capabilities(find(&blocks, tllv::CAPABILITIES)),
        output: match find(&blocks, tllv::STREAMING_INDICATOR)
            .map(|v| u64::from_be_bytes(v.try_into().expect("8")))
        {
            Some(AIRPLAY) => Output::AirPlay,
            Some(AV_ADAPTER) => Output::AvAdapter,
            _ => Output::Device,
        },
        protocol_versions,
        transaction_id: find(&blocks, tllv::TRANSACTION_ID).map(|v| v.try_into().expect("8 bytes")),
        session_key,
        r1,
        anti_replay_seed: required(&blocks, tllv::ANTI_REPLAY_SEED)?
            .try_into()
            .expect("16 bytes"),
        returned: returned(&blocks)?,
    })
}

/// [SK..R1]'s value (its IV, then 96 encrypted bytes) opened under DASk:
/// SK (16 bytes), HU (20), R1 (44), the integrity value (16).
fn open_sk_r1(dask: &[u8; 16], value: &[u8]) -> Vec<u8> {
    let iv: [u8; 16] = value[..16].try_into().expect("SK..R1 is 112 bytes");
    aes128_cbc_decrypt(dask, &iv, &value[16..112])
}

fn capabilities(value: Option<&[u8]>) -> Capabilities {
    let flags = value.map_or(0, |v| u128::from_be_bytes(v.try_into().expect("16 bytes")));
    Capabilities {
        hdcp_enforcement: flags & 1 != 0,
        offline_key: flags & 0b10 != 0,
    }
}

/// The blocks the return request names, each of which the SPC must carry.
fn returned(blocks: &[Tllv<'_>]) -> Result<Vec<(u64, Vec<u8>)>, SpcError> {
    let Some(request) = find(blocks, tllv::RETURN_REQUEST) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
    for tag in request
        .chunks(8)
        .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
    {
        if tag == tllv::SK_R1 || out.iter().any(|(t, _)| *t == tag) {
            return Err(SpcError::Malformed(format!(
                "the return request names {tag:#018x} twice or asks for [SK..R1]"
            )));
        }
        let value = find(blocks, tag).ok_or_else(|| {
            SpcError::Malformed(format!(
                "the return request asks for a {} TLLV ({tag:#018x}) the SPC does not carry",
                tllv::name(tag)
            ))
        })?;
        out.push((tag, value.to_vec()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{hex, hex_decode};

    /// WebKit's [SK..R1] vector (keyserver/test_TLLVs.py, BSD): the block,
    /// opened under its DASk, gives its SK, HU, R1 and integrity value.
    #[test]
    fn sk_r1_opens_as_webkits_vector_says() {
        let block = hex_decode(concat!(
            "3d1a10b8bffac2ec0000007000000070cdfdd1b658e8f671010d42be671ef3e097cbf1992626f1e144d778c7",
            "f2fc3a7f6859cec85ac81ff5ae27edfa17dbbc178b57b2281b27a19fa47cf2151757ddd5dbdf11ed7bf4a849",
            "20f308bbc503530b774f8bda1406fb7f4d8166ecfc6a7b340e3e18d6ba42cd44e59e9561052121e5"
        ))
        .unwrap();
        let blocks = tllv::read_all(&block).unwrap();
        assert_eq!(blocks[0].tag, tllv::SK_R1);
        let dask: [u8; 16] = hex_decode("d9f11e0d0e8e08bc875173eba62526e1")
            .unwrap()
            .try_into()
            .unwrap();
        let clear = open_sk_r1(&dask, blocks[0].value);
        assert_eq!(hex(&clear[..16]), "7e88d66fef9394f893ead034a8f5cb2e");
        assert_eq!(hex(&clear[16..36]), "c16ee4e768b6a501af5dda8d31bfa1ff15fbb47f");
        assert_eq!(
            hex(&clear[36..80]),
            "810e309ffe133d6438d811a3198a387c4c181580f961ce3d1f7ee5dccc15cd30616fc87b7fb72bab6df1d4bc"
        );
        assert_eq!(hex(&clear[80..96]), "e64ec97c7f6200d41dc18ae43af8e175");
    }

    /// WebKit's capabilities vector: flags 3 are HDCP enforcement and offline keys.
    #[test]
    fn capability_flags_read_as_webkits_vector_says() {
        let block = hex_decode("9C02AF3253C07FB2000000100000001000000000000000000000000000000003").unwrap();
        let blocks = tllv::read_all(&block).unwrap();
        assert_eq!(
            capabilities(Some(blocks[0].value)),
            Capabilities {
                hdcp_enforcement: true,
                offline_key: true
            }
        );
        assert_eq!(capabilities(None), Capabilities::default());
    }

    #[test]
    fn containers_of_other_versions_sizes_and_shapes_are_refused() {
        let mut spc = vec![0, 0, 0, 1, 0, 0, 0, 0];
        spc.extend([7; 16 + 128 + 20]);
        spc.extend(32u32.to_be_bytes());
        spc.extend([9; 32]);
        let read = container(&spc).unwrap();
        assert_eq!(
            (read.version, read.wrapped_key.len(), read.payload.len()),
            (1, 128, 32)
        );
        let mut v3 = spc.clone();
        v3[3] = 3;
        assert_eq!(container(&v3).unwrap_err(), SpcError::Version(3));
        let mut reserved = spc.clone();
        reserved[5] = 1;
        assert!(matches!(container(&reserved), Err(SpcError::Malformed(_))));
        for cut in [0, 7, 100, spc.len() - 1] {
            assert!(
                matches!(container(&spc[..cut]), Err(SpcError::Malformed(_))),
                "cut {cut}"
            );
        }
        let mut ragged = spc.clone();
        ragged.truncate(spc.len() - 1);
        ragged[176..180].copy_from_slice(&31u32.to_be_bytes()); // true, but not whole blocks
        assert!(matches!(container(&ragged), Err(SpcError::Malformed(_))));
        let mut huge = spc.clone();
        huge.resize(MAX_SPC + 1, 0);
        assert!(matches!(container(&huge), Err(SpcError::Malformed(_))));
    }
}
