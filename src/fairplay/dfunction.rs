//! Apple's D function: DASk = AES-128-ECB(ASk, H(R2)), where H is a SHA-1
//! over R2 in a 64-byte block whose last 8 bytes mix R2's words, as Apple's
//! FPS Server SDK and WebKit's test key server define it.

use crate::crypto::fairplay::{aes128_ecb_encrypt, sha1};

const P: u32 = 813_416_437;
const ROUNDS: usize = 16;

/// The 16-byte hash of R2 (1 to 55 bytes; the caller checked the length).
pub fn hash(r2: &[u8]) -> [u8; 16] {
    assert!((1..56).contains(&r2.len()), "R2 is 1 to 55 bytes");
    let mut pad = [0u8; 64];
    pad[..r2.len()].copy_from_slice(r2);
    pad[r2.len()] = 0x80;
    let word = |i: usize| u32::from_be_bytes(pad[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    let mut m = [0u32; 2];
    m[0] = (0..7).fold(0u32, |sum, i| sum.wrapping_add(word(i)));
    m[1] = (7..14).fold(0u32, |sum, i| sum.wrapping_add(word(i)));
    for value in &mut m {
        for _ in 0..ROUNDS {
            *value = if *value & 1 == 1 {
                *value >> 1
            } else {
                value.wrapping_mul(3).wrapping_add(1) % P
            };
        }
    }
    pad[56..60].copy_from_slice(&m[0].to_le_bytes());
    pad[60..64].copy_from_slice(&m[1].to_le_bytes());
    sha1(&pad)[..16].try_into().expect("16 of 20 bytes")
}

/// DASk for this R2 under the provider's ASk.
pub fn dask(r2: &[u8], ask: &[u8; 16]) -> [u8; 16] {
    aes128_ecb_encrypt(ask, &hash(r2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::hex_decode;

    /// WebKit's vectors (LayoutTests/http/tests/media/fairplay/resources/
    /// keyserver/test_DFunction.py, BSD): R2 of 20, 30, 40 and 50 bytes.
    #[test]
    fn the_hash_matches_webkits_vectors() {
        let vectors = [
            (
                "a4c411c54d94727143504aece5613da8c6ee6dd2",
                "3a24a068c116842f10fac5c86cb1cb5c",
            ),
            (
                "ee810dd5779ce50aa8df3824b3f2594cf9ee68a9",
                "93c82dc4d1c4a338896bfce2e7dc12a0",
            ),
            (
                "303838a2b4cab66f25d53bd331b5ee4c035b6e12",
                "c74f35704ec58c0882bc4014a74152a8",
            ),
            (
                "a4c411c54d94727143504aece5613da8c6ee6dd26ba5d07ec0dc44c84ec4",
                "4b46ab65bd04af0dd721718a68663390",
            ),
            (
                "9a0618db8a4ecc1c8f1fa8e9482dbbe56647afe10739e4bd00d29db0d9cc",
                "2d467d6fc4aab309e8b4618247567e06",
            ),
            (
                "ee810dd5779ce50aa8df3824b3f2594cf9ee68a9c6caa7a36709f55494d5c56971d390bc57a68223",
                "430b6db2ce11ce6bcd7076187c44aa1b",
            ),
            (
                "303838a2b4cab66f25d53bd331b5ee4c035b6e12afcd05c5a5a85a382ff4bfae230844aef7e2ae5c",
                "a77994aeda51df868cd82bd3b1131401",
            ),
            (
                "a4c411c54d94727143504aece5613da8c6ee6dd26ba5d07ec0dc44c84ec48140b244d5be323d251acb3a4bb19898891973db",
                "f2272c254504fc4ce7af2873c1de184f",
            ),
            (
                "303838a2b4cab66f25d53bd331b5ee4c035b6e12afcd05c5a5a85a382ff4bfae230844aef7e2ae5c834671c1632afca943eb",
                "b1caecddef433ceb4d8ed554f1702dbd",
            ),
        ];
        for (r2, expected) in vectors {
            let r2 = hex_decode(r2).unwrap();
            assert_eq!(
                hash(&r2).to_vec(),
                hex_decode(expected).unwrap(),
                "R2 {} bytes",
                r2.len()
            );
        }
    }
}
