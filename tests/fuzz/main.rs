//! Mutation fuzzing of every parser a stranger's bytes reach: the token
//! verifier, the Clear Key request parser, the JSON/CPIX key importers,
//! FairPlay's SPC reader and the report-zip verifier. Seeds are valid inputs; each iteration flips, inserts,
//! deletes, duplicates or splices bytes, and the parser must return (an error is
//! fine), never panic or hang.
//!
//! It is the quick, deterministic companion of the coverage-guided `cargo fuzz`
//! targets in `tests/libfuzzer/` (which CI also runs): a few seconds inside
//! every `cargo test`, on any toolchain, the same inputs every time. Long runs:
//! `FUZZ_ITERATIONS=10000000 cargo test --release --test fuzz -- --nocapture`.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

use berth::crypto::SigningKey;
use berth::ids::{ComKeyId, Secret32};
use berth::token::ComKey;
use serde_json::json;
use signed_zip::signed_zip;

mod signed_zip;

/// xorshift64*: deterministic, seeded, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"true",
    b"-1",
    b"1e999",
    b"\\u0000",
    b".",
    b"=",
    b"\xff",
    b"<",
    b">",
    b"&lt;",
    b"<!DOCTYPE a [<!ENTITY x \"y\">]>",
    b"\r\n",
    b"HS256",
    b"none",
    b"inline",
    b"stored",
];

fn mutate(rng: &mut Rng, seed: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(seed);
    for _ in 0..=rng.below(4) {
        let len = out.len();
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                let b = rng.next() as u8;
                out.insert(i, b);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below((len - i).min(64)) + 1;
                out.drain(i..i + n);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below((len - i).min(256)) + 1;
                let copy = out[i..i + n].to_vec();
                let at = rng.below(out.len() + 1);
                out.splice(at..at, copy);
            }
            4 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                let at = rng.below(len + 1);
                out.splice(at..at, piece.iter().copied());
            }
            _ if len > 0 => {
                out.truncate(rng.below(len));
            }
            _ => {}
        }
    }
}

fn iterations(default: u64) -> u64 {
    std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run(name: &str, seeds: &[Vec<u8>], default: u64, mut target: impl FnMut(&[u8])) {
    let n = iterations(default);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    let mut input = Vec::new();
    let started = Instant::now();
    for i in 0..n {
        let seed = &seeds[(i as usize) % seeds.len()];
        mutate(&mut rng, seed, &mut input);
        target(&input);
    }
    println!(
        "FUZZ {name}: {n} executions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn com_keys() -> (Arc<ComKey>, berth::token::ComKeys) {
    let key = Arc::new(ComKey::new(
        ComKeyId(
            "11111111-2222-4333-8444-555555555555"
                .parse::<uuid::Uuid>()
                .unwrap(),
        ),
        Secret32([9; 32]),
    ));
    let map = berth::token::ComKeys::from_iter([(key.id, key.clone())]);
    (key, map)
}

#[test]
fn fuzz_tokens() {
    let (key, keys) = com_keys();
    let payload = json!({
        "version": 1, "com_key_id": key.id.to_string(), "id": "t-1",
        "begin_date": "2026-01-01T00:00:00Z", "expiration_date": "2027-01-01T00:00:00Z",
        "message": { "type": "entitlement_message", "version": 2,
            "license": { "allow_persistence": true, "start_datetime": "2026-01-01T00:00:00Z" },
            "content_keys_source": { "inline": [ { "id": "9eb4050d-e44b-4802-932e-27d75083e266", "encrypted_key": "AAAAAAAAAAAAAAAAAAAAAA==", "usage_policy": "p" } ] },
            "content_key_usage_policies": [ { "name": "p", "widevine": { "hdcp": "HDCP_NONE" } } ],
            "license_server": { "access_control": { "prevent_drm_message_reuse": true, "allowed_ip_addresses": ["10.0.0.0/8"] } },
            "session": { "user_id": "u" } }
    });
    let token = key.sign_token(&payload);
    let (_, body_and_sig) = token.split_once('.').unwrap();
    let (body, _) = body_and_sig.rsplit_once('.').unwrap();
    // Seeds: the whole token, and the decoded payload re-signed after mutation
    // (so mutations reach the entitlement rules, not just the signature check).
    let now = time::macros::datetime!(2026-06-01 00:00 UTC);
    let tolerance = time::Duration::minutes(5);
    // The seed reaches the entitlement rules as it is: a verified token
    // (otherwise the fuzzing below would only ever test the refusals).
    assert!(
        berth::token::verify(&token, &keys, now, tolerance).is_ok(),
        "the raw token seed verifies"
    );
    run("token (raw)", &[token.clone().into_bytes()], 100_000, |input| {
        let _ = berth::token::verify(&String::from_utf8_lossy(input), &keys, now, tolerance);
    });
    let decoded = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, body).unwrap();
    // And "never expires" as the last instant there is (it once panicked).
    let mut forever = payload.clone();
    forever["expiration_date"] = json!("9999-12-31T23:59:59Z");
    forever["message"]["license"]["expiration_datetime"] = json!("9999-12-31T23:59:59.999999999+00:00");
    // And every key source with what berth must refuse by name (issue 25).
    let sources = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/libfuzzer/seeds/token/payload-sources.json"),
    )
    .unwrap();
    let seeds = [decoded, serde_json::to_vec(&forever).unwrap(), sources];
    // The first two seeds, signed, reach the entitlement rules and are granted.
    for seed in &seeds[..2] {
        let value: serde_json::Value = serde_json::from_slice(seed).unwrap();
        let ent = berth::token::verify(&key.sign_token(&value), &keys, now, tolerance)
            .expect("a seed verifies, so mutations of it reach the entitlement rules");
        assert!(
            ent.grant(
                &[],
                berth::ids::LicenseType::Temporary,
                berth::ids::KeySystem::ClearKey,
                "10.1.2.3".parse().unwrap(),
                |_| None
            )
            .is_ok(),
            "a seed is granted"
        );
    }
    run("token (signed payload)", &seeds, 100_000, |input| {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(input) {
            let signed = key.sign_token(&value);
            if let Ok(ent) = berth::token::verify(&signed, &keys, now, tolerance) {
                // What the log writer does with a single-use token's last instant.
                let _ = ent.usable_until.map(berth::ids::format_instant);
                let _ = ent.grant(
                    &[],
                    berth::ids::LicenseType::Temporary,
                    berth::ids::KeySystem::FairPlay,
                    "10.1.2.3".parse().unwrap(),
                    |_| None,
                );
            }
        }
    });
}

#[test]
fn fuzz_clearkey_requests() {
    let seeds = vec![
        br#"{"kids":["nrQFDeRLSAKTLifXUIPiZg","nrQFDeRLSAKTLifXUIPiZg=="],"type":"temporary"}"#.to_vec(),
        br#"{"kids":["nrQF/eRLSAKTLifXUIPiZg"],"type":"persistent-license"}"#.to_vec(),
        vec![0x08, 0x04],
    ];
    run("clearkey request", &seeds, 300_000, |input| {
        let _ = berth::clearkey::parse_request(input);
    });
}

#[test]
fn fuzz_key_files() {
    let seeds = vec![
        br#"{"keys":[{"kid":"9eb4050d-e44b-4802-932e-27d75083e266","key":"00112233445566778899aabbccddeeff","label":"a"},{"kid":"9eb4050de44b4802932e27d75083e267","key":"ABEiM0RVZneImaq7zN3u/w=="}]}"#.to_vec(),
        br#"<?xml version="1.0"?><cpix:CPIX contentId="x" xmlns:cpix="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc"><cpix:ContentKeyList><cpix:ContentKey kid="9eb4050d-e44b-4802-932e-27d75083e266"><cpix:Data><pskc:Secret><pskc:PlainValue>ABEiM0RVZneImaq7zN3u/w==</pskc:PlainValue></pskc:Secret></cpix:Data></cpix:ContentKey></cpix:ContentKeyList></cpix:CPIX>"#.to_vec(),
    ];
    let clear = berth::keyfile::Recipient {
        delivery: None,
        signers: &[],
        now: time::OffsetDateTime::now_utc(),
    };
    run("key file", &seeds, 100_000, |input| {
        let _ = berth::keyfile::parse(input, &clear);
    });
}

/// The CPIX reader on a document encrypted for a delivery key and signed, as
/// tests/api/make_cpix.py (Python's cryptography and xmlsec1) makes one: the
/// seed imports as it is; mutations reach the decryption and the signature check.
#[test]
fn fuzz_sealed_cpix() {
    let now = time::OffsetDateTime::now_utc();
    let delivery = berth::crypto::DeliveryKey::generate("fuzz-vessel", "Fuzz", now).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vessel.pem"), delivery.certificate_pem()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/make_cpix.py");
    let make = |args: &[&str]| {
        let out = std::process::Command::new("/usr/bin/python3")
            .arg(&script)
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    make(&["cert", "s.key", "s.pem", "--cn", "signer"]);
    make(&[
        "doc",
        "seed.xml",
        "--recipient",
        "vessel.pem",
        "--periods",
        "--sign",
        "s.key,s.pem",
        "--key",
        "9eb4050d-e44b-4802-932e-27d75083e266:00112233445566778899aabbccddeeff",
    ]);
    let seed = std::fs::read(dir.path().join("seed.xml")).unwrap();
    let recipient = berth::keyfile::Recipient {
        delivery: Some(&delivery),
        signers: &[],
        now,
    };
    assert_eq!(berth::keyfile::parse(&seed, &recipient).unwrap().len(), 1);
    // The libFuzzer target's seed and key agree as well.
    let libfuzzer = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/libfuzzer");
    let read = |name: &str| std::fs::read(libfuzzer.join(name)).unwrap();
    let fuzzing =
        berth::crypto::DeliveryKey::from_der(&read("delivery-key.der"), &read("delivery-cert.der")).unwrap();
    let their_seed = read("seeds/key_file/sealed.xml");
    let theirs = berth::keyfile::Recipient {
        delivery: Some(&fuzzing),
        signers: &[],
        now,
    };
    assert_eq!(berth::keyfile::parse(&their_seed, &theirs).unwrap().len(), 1);
    run("sealed CPIX", &[seed], 3_000, |input| {
        let _ = berth::keyfile::parse(input, &recipient);
    });
}

/// The CPIX reader with a trusted signer, as the libFuzzer target
/// `cpix_trusted` runs it: its seeds import exactly the signed keys (the UTF-7
/// construction nothing), and no mutation imports any other key.
#[test]
fn fuzz_cpix_with_a_trusted_signer() {
    let libfuzzer = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/libfuzzer");
    let signers = [std::fs::read(libfuzzer.join("cpix-signer.der")).unwrap()];
    let recipient = berth::keyfile::Recipient {
        delivery: None,
        signers: &signers,
        now: time::OffsetDateTime::now_utc(),
    };
    let signed: Vec<String> = vec![
        "c0ffee00-1111-4222-8333-444444444444".into(),
        "d0ffee00-1111-4222-8333-444444444444".into(),
    ];
    let mut seeds = Vec::new();
    for name in ["document.xml", "lists.xml", "utf16.xml", "utf7.xml"] {
        let seed = std::fs::read(libfuzzer.join("seeds/cpix_trusted").join(name)).unwrap();
        let kids = berth::keyfile::parse(&seed, &recipient)
            .map(|keys| keys.iter().map(|k| k.kid.to_string()).collect::<Vec<_>>());
        match name {
            "utf7.xml" => assert!(kids.is_err(), "{name}: {kids:?}"),
            _ => assert_eq!(kids.as_ref(), Ok(&signed), "{name}"),
        }
        seeds.push(seed);
    }
    run("CPIX with a trusted signer", &seeds, 3_000, |input| {
        if let Ok(keys) = berth::keyfile::parse(input, &recipient) {
            assert!(
                keys.iter().all(|k| signed.contains(&k.kid.to_string())),
                "unsigned key imported"
            );
        }
    });
}

#[test]
fn fuzz_report_zips() {
    // A real report, exported from a real installation.
    let dir = tempfile::tempdir().unwrap();
    let config = berth::config::Config {
        data_dir: dir.path().join("d"),
        ..Default::default()
    };
    let args = berth::installation::NewInstallation {
        id: "fuzz".parse().unwrap(),
        vessel_type: berth::store::VesselType::Bus,
        vessel_name: "Fuzz".parse().unwrap(),
        admin_user: "admin".into(),
    };
    let installed = berth::clock::FixedClock::new(time::macros::datetime!(2026-01-10 09:00 UTC));
    berth::installation::create(&config, &args, &installed).unwrap();
    let master = berth::installation::load_master_key(&config.data_dir.join("master.key")).unwrap();
    let mut db = berth::store::Db::open(&config.data_dir, master).unwrap();
    let month = "2026-01".parse().unwrap();
    let report = berth::report::export(
        &mut db,
        month,
        time::macros::datetime!(2026-02-01 00:00 UTC),
        false,
        &dir.path().join("r"),
    )
    .unwrap();
    let seed = std::fs::read(&report.path).unwrap();
    let file = dir.path().join("fuzzed.zip");
    run("report zip", &[seed], 5_000, |input| {
        std::fs::File::create(&file).unwrap().write_all(input).unwrap();
        let _ = berth::report::verify_file(&file, None);
    });

    // A mutated byte of a zip rarely gets past its signature. The libFuzzer
    // target's second kind of input does: report.json, a NUL, licenses.csv,
    // hashed and signed into a zip with a key for fuzzing only, as an operator
    // holding a signing key could. Its seed verifies as it is.
    let libfuzzer = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/libfuzzer");
    let signer =
        SigningKey::from_pkcs8_der(&std::fs::read(libfuzzer.join("report-signer.der")).unwrap()).unwrap();
    let seed = std::fs::read(libfuzzer.join("seeds/report_zip/resigned.bin")).unwrap();
    let verify = |input: &[u8]| {
        let nul = input.iter().position(|b| *b == 0)?;
        let zip = signed_zip(&signer, &input[..nul], &input[nul + 1..]);
        Some(berth::report::verify_reader(std::io::Cursor::new(zip), None))
    };
    let verified = verify(&seed).unwrap().unwrap();
    assert_eq!(verified.report.counts.licenses, 3);
    run("report zip (re-signed contents)", &[seed], 2_000, |input| {
        let _ = verify(input);
    });
}

/// The ground receiver's first reading of a stranger's upload: the name in
/// the URL. Whatever it accepts is a name export writes, of one folder level.
#[test]
fn fuzz_ground_report_names() {
    let seeds: Vec<Vec<u8>> = [
        "berth-report-a320-d-aine-2026-10-3.zip",
        "berth-report-x.y_z-1999-01-12345.zip",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    run("ground report name", &seeds, 20_000, |input| {
        let Ok(text) = std::str::from_utf8(input) else {
            return;
        };
        if let Ok(name) = text.parse::<berth::ground::ReportName>() {
            assert_eq!(name.file_name(), text);
            assert!(!name.installation.starts_with('.') && !name.installation.contains('/'));
        }
    });
}

/// FairPlay's SPC reader, as the libFuzzer target `fairplay_spc` runs it:
/// its seeds (made by tests/api/fairplay_client.py for the fuzzing
/// credentials) open, in every request form and as a clear payload sealed
/// here, so mutations of them reach the TLLVs, [SK..R1] and the CKC.
#[test]
fn fuzz_fairplay_spcs() {
    use berth::crypto::fairplay::{ProviderKey, aes128_cbc_encrypt};
    use berth::fairplay::{Ask, Credentials, asset, ckc, spc, terms, wire};
    let libfuzzer = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/libfuzzer");
    let read = |name: &str| std::fs::read(libfuzzer.join(name)).unwrap();
    let credentials = Credentials {
        key: ProviderKey::new(
            &read("fairplay-cert.der"),
            &read("../api/fairplay/webkit-test-key.pem"),
        )
        .unwrap(),
        ask: Ask::parse(b"1a09d27bc2241afa82ea2458e6e8e6a3").unwrap(),
    };
    let wrapped = read("fairplay-wrapped-spck.bin");
    let body = |data: &[u8]| -> Option<Vec<u8>> {
        let (&mode, rest) = data.split_first()?;
        if mode == 0 {
            return wire::parse(rest).ok().map(|r| r.spc);
        }
        let mut clear = rest.to_vec();
        clear.resize(clear.len().div_ceil(16).max(1) * 16, 0);
        let mut spc = vec![0, 0, 0, 1, 0, 0, 0, 0];
        spc.extend([0; 16]);
        spc.extend(&wrapped);
        spc.extend(credentials.key.certificate_sha1());
        let encrypted = aes128_cbc_encrypt(&[0x42; 16], &[0; 16], &clear);
        spc.extend((encrypted.len() as u32).to_be_bytes());
        spc.extend(encrypted);
        Some(spc)
    };
    let mut seeds = Vec::new();
    for name in ["raw", "base64", "json", "form", "payload"] {
        let seed = read(&format!("seeds/fairplay_spc/{name}"));
        let opened = spc::open(&body(&seed).unwrap(), &credentials).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (kid, _) = asset::kid(&opened.asset_id).unwrap();
        assert_eq!(kid.to_string(), "9eb4050d-e44b-4802-932e-27d75083e266", "{name}");
        seeds.push(seed);
    }
    run("FairPlay SPC", &seeds, 3_000, |input| {
        let Some(body) = body(input) else { return };
        if let Ok(opened) = spc::open(&body, &credentials)
            && let Ok((_, iv)) = asset::kid(&opened.asset_id)
            && let Ok(terms) = terms::decide(None, Some(60), true, &opened)
        {
            let ckc = ckc::build(
                &opened,
                &berth::ids::ContentKey([7; 16]),
                &iv.unwrap_or([0; 16]),
                &terms,
            );
            assert_eq!(ckc.len() % 16, 12);
        }
    });
}
