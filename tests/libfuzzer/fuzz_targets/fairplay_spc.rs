#![no_main]
//! FairPlay's SPC, from a stranger's bytes to a CKC. The first byte picks
//! where the rest goes in:
//!
//! - 0: a request body (raw, base64, `spc=` or JSON) as `/fairplay/license`
//!   reads it, opened with credentials that exist only for fuzzing (WebKit's
//!   public test key and ASk, in fairplay-cert.der): what a stranger reaches
//!   before any decryption succeeds;
//! - 1: an SPC payload in the clear, which the target encrypts under a fixed
//!   session key (wrapped for the fuzzing certificate in
//!   fairplay-wrapped-spck.bin) so that the payload's TLLVs, [SK..R1] and
//!   everything after them are reached. Its seed carries a valid [SK..R1].
//!
//! Whatever opens is carried on to the asset id's KID, the terms and a CKC.

use std::sync::LazyLock;

use berth::crypto::fairplay::{ProviderKey, aes128_cbc_encrypt};
use berth::fairplay::{Ask, Credentials, asset, ckc, spc, terms, wire};

static CREDENTIALS: LazyLock<Credentials> = LazyLock::new(|| Credentials {
    key: ProviderKey::new(
        include_bytes!("../fairplay-cert.der"),
        include_bytes!("../../api/fairplay/webkit-test-key.pem"),
    )
    .expect("the fuzzing credentials"),
    ask: Ask::parse(b"1a09d27bc2241afa82ea2458e6e8e6a3").expect("the fuzzing ASk"),
});

const SPCK: [u8; 16] = [0x42; 16];

/// An SPC container around a clear payload, for the fuzzing certificate.
fn sealed(payload: &[u8]) -> Vec<u8> {
    let mut clear = payload.to_vec();
    clear.resize(clear.len().div_ceil(16).max(1) * 16, 0);
    let encrypted = aes128_cbc_encrypt(&SPCK, &[0; 16], &clear);
    let mut spc = vec![0, 0, 0, 1, 0, 0, 0, 0];
    spc.extend([0; 16]);
    spc.extend(include_bytes!("../fairplay-wrapped-spck.bin"));
    spc.extend(CREDENTIALS.key.certificate_sha1());
    spc.extend((encrypted.len() as u32).to_be_bytes());
    spc.extend(encrypted);
    spc
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let body = match mode {
        0 => match wire::parse(rest) {
            Ok(request) => request.spc,
            Err(_) => return,
        },
        _ => sealed(rest),
    };
    let Ok(opened) = spc::open(&body, &CREDENTIALS) else {
        return;
    };
    let Ok((_, iv)) = asset::kid(&opened.asset_id) else {
        return;
    };
    for persistence in [false, true] {
        if let Ok(terms) = terms::decide(None, Some(3600), persistence, &opened) {
            let ckc = ckc::build(&opened, &berth::ids::ContentKey([7; 16]), &iv.unwrap_or([0; 16]), &terms);
            assert!(ckc.len() >= 28 + 64 && ckc.len() % 16 == 12, "a CKC of {} bytes", ckc.len());
            let _ = wire::answer(wire::Form::Json, &ckc);
        }
    }
});
