//! TLLV blocks, FairPlay's record format: an 8-byte tag, the block's length,
//! the value's length (both 4 bytes, big-endian), the value, and padding to
//! the block's length. The tags berth reads or writes are named here.

use super::SpcError;

pub const SK_R1: u64 = 0x3d1a_10b8_bffa_c2ec;
pub const SK_R1_INTEGRITY: u64 = 0xb349_d480_9e91_0687;
pub const ANTI_REPLAY_SEED: u64 = 0x89c9_0f12_2041_06b2;
pub const R2: u64 = 0x71b5_595a_c152_1133;
pub const RETURN_REQUEST: u64 = 0x19f9_d4e5_ab76_09cb;
pub const ASSET_ID: u64 = 0x1bf7_f53f_5d5d_5a1f;
pub const TRANSACTION_ID: u64 = 0x47aa_7ad3_4405_77de;
pub const PROTOCOL_VERSIONS_SUPPORTED: u64 = 0x67b8_fb79_ecce_1a13;
pub const PROTOCOL_VERSION_USED: u64 = 0x5d81_bcbc_c7f6_1703;
pub const STREAMING_INDICATOR: u64 = 0xabb0_256a_3184_3974;
pub const MEDIA_PLAYBACK_STATE: u64 = 0xeb8e_fdf2_b25a_b3a0;
pub const CAPABILITIES: u64 = 0x9c02_af32_53c0_7fb2;

pub const ENCRYPTED_CONTENT_KEY: u64 = 0x58b3_8165_af0e_3d5a;
pub const R1: u64 = 0xea74_c464_5d5e_fee9;
pub const CONTENT_KEY_DURATION: u64 = 0x47ac_f6a4_18cd_091a;
pub const HDCP_ENFORCEMENT: u64 = 0x2e52_f153_0d8d_db4a;

const HEADER: usize = 16;

/// One block as read: its tag and value (padding dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tllv<'a> {
    pub tag: u64,
    pub value: &'a [u8],
}

/// The name of a tag berth knows, for error messages.
pub fn name(tag: u64) -> &'static str {
    match tag {
        SK_R1 => "[SK..R1]",
        SK_R1_INTEGRITY => "[SK..R1] integrity",
        ANTI_REPLAY_SEED => "anti-replay seed",
        R2 => "R2",
        RETURN_REQUEST => "return request",
        ASSET_ID => "asset id",
        TRANSACTION_ID => "transaction id",
        PROTOCOL_VERSIONS_SUPPORTED => "protocol versions supported",
        PROTOCOL_VERSION_USED => "protocol version used",
        STREAMING_INDICATOR => "streaming indicator",
        MEDIA_PLAYBACK_STATE => "media playback state",
        CAPABILITIES => "capabilities",
        _ => "unknown",
    }
}

/// Whether a known tag's value has a length it can have (`None`: a tag
/// berth does not read, any length: the media playback state, and blocks of
/// later protocol versions, are only ever returned as they came).
fn length_fits(tag: u64, len: usize) -> Option<bool> {
    Some(match tag {
        SK_R1 => len == 112,
        SK_R1_INTEGRITY | ANTI_REPLAY_SEED | CAPABILITIES => len == 16,
        R2 => (1..56).contains(&len),
        RETURN_REQUEST => len.is_multiple_of(8) && len <= 8 * 64,
        ASSET_ID => (2..=200).contains(&len),
        TRANSACTION_ID | STREAMING_INDICATOR => len == 8,
        PROTOCOL_VERSIONS_SUPPORTED => len >= 4 && len.is_multiple_of(4) && len <= 4 * 64,
        PROTOCOL_VERSION_USED => len == 4,
        _ => return None,
    })
}

/// Reads every block of a decrypted SPC payload. A block that runs past the
/// payload, a value longer than its block, a known tag with a value of the
/// wrong length and a tag given twice are refused by name.
pub fn read_all(payload: &[u8]) -> Result<Vec<Tllv<'_>>, SpcError> {
    let mut blocks: Vec<Tllv<'_>> = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        if rest.len() < HEADER {
            return Err(SpcError::Malformed("a TLLV header is cut short".into()));
        }
        let tag = u64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
        let block_len = u32::from_be_bytes(rest[8..12].try_into().expect("4 bytes")) as usize;
        let value_len = u32::from_be_bytes(rest[12..16].try_into().expect("4 bytes")) as usize;
        if value_len > block_len || block_len > rest.len() - HEADER {
            return Err(SpcError::Malformed(format!(
                "the {} TLLV ({tag:#018x}) has lengths that do not fit the payload",
                name(tag)
            )));
        }
        let value = &rest[HEADER..HEADER + value_len];
        if length_fits(tag, value_len) == Some(false) {
            return Err(SpcError::Malformed(format!(
                "the {} TLLV has a value of {value_len} bytes, which it cannot have",
                name(tag)
            )));
        }
        if blocks.iter().any(|b| b.tag == tag) {
            return Err(SpcError::Malformed(format!(
                "the {} TLLV ({tag:#018x}) is given twice",
                name(tag)
            )));
        }
        blocks.push(Tllv { tag, value });
        rest = &rest[HEADER + block_len..];
    }
    Ok(blocks)
}

/// Appends one block, its value padded with `padding` bytes to a multiple of
/// 16 (the CKC's payload is encrypted in whole AES blocks).
pub fn write(out: &mut Vec<u8>, tag: u64, value: &[u8], padding: impl FnOnce(usize) -> Vec<u8>) {
    let pad = (16 - value.len() % 16) % 16;
    out.extend_from_slice(&tag.to_be_bytes());
    out.extend_from_slice(&((value.len() + pad) as u32).to_be_bytes());
    out.extend_from_slice(&(value.len() as u32).to_be_bytes());
    out.extend_from_slice(value);
    out.extend_from_slice(&padding(pad));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(tag: u64, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut out, tag, value, |n| vec![0xAA; n]);
        out
    }

    #[test]
    fn blocks_read_back_and_are_padded_to_whole_aes_blocks() {
        let mut payload = block(ASSET_ID, b"twelve");
        payload.extend(block(0x1234, &[7; 40]));
        assert_eq!(payload.len() % 16, 0);
        let blocks = read_all(&payload).unwrap();
        assert_eq!(
            blocks[0],
            Tllv {
                tag: ASSET_ID,
                value: b"twelve"
            }
        );
        assert_eq!(blocks[1].value, &[7; 40]);
    }

    #[test]
    fn cut_short_overlong_wrong_sized_and_repeated_blocks_are_refused() {
        let good = block(ASSET_ID, b"twelve");
        for cut in [1, 15, 17, good.len() - 1] {
            assert!(read_all(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut overlong = good.clone();
        overlong[15] = 0xFF; // value longer than its block
        assert!(read_all(&overlong).is_err());
        let mut huge = good.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(read_all(&huge).is_err());
        assert!(read_all(&block(SK_R1_INTEGRITY, &[0; 15])).is_err());
        assert!(read_all(&block(ASSET_ID, b"x")).is_err());
        let mut twice = good.clone();
        twice.extend(&good);
        let err = read_all(&twice).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }
}
