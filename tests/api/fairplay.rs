//! FairPlay Streaming: SPCs made and CKCs opened by an independent device
//! side (tests/api/fairplay_client.py, Python's `cryptography`, written from
//! the published layout), WebKit's public test key and ASk, and a real
//! berth. No browser on Linux plays FairPlay, so no player is in the loop.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::helpers::*;

/// WebKit's test ASk, which goes with `fairplay/webkit-test-key.pem`.
const ASK: &str = "1a09d27bc2241afa82ea2458e6e8e6a3";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/fairplay_client.py")
}

fn python(dir: &Path, args: &[&str]) -> std::process::Output {
    run_in(
        dir,
        "/usr/bin/python3",
        &[&[script().to_str().unwrap()], args].concat(),
    )
}

/// A content provider's credentials, and the device side that uses them.
pub struct Fps {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ask: PathBuf,
}

impl Fps {
    /// WebKit's test key (RSA-1024, SPC version 1) in a certificate made
    /// here, or a fresh RSA-2048 key (SPC version 2).
    pub fn new(dir: &Path, bits: u32) -> Fps {
        let webkit = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/fairplay/webkit-test-key.pem");
        let mut args = vec!["credentials", "--out-cert", "fps.der", "--out-key", "fps.pem"];
        let bits_text = bits.to_string();
        if bits == 1024 {
            args.extend(["--key", webkit.to_str().unwrap()]);
        } else {
            args.extend(["--bits", &bits_text]);
        }
        python(dir, &args);
        std::fs::write(dir.join("ask.txt"), format!("{ASK}\n")).unwrap();
        Fps {
            dir: dir.to_path_buf(),
            cert: dir.join("fps.der"),
            key: dir.join("fps.pem"),
            ask: dir.join("ask.txt"),
        }
    }

    pub fn import_into(&self, app: &TestApp) -> std::process::Output {
        app.berth(&[
            "fairplay",
            "credentials",
            "import",
            "--certificate",
            self.cert.to_str().unwrap(),
            "--private-key",
            self.key.to_str().unwrap(),
            "--ask-file",
            self.ask.to_str().unwrap(),
        ])
    }

    /// An SPC for `asset`; its session (SK, R1, the seed) stays with the device.
    pub fn spc(&self, name: &str, asset: &str, extra: &[&str]) -> Vec<u8> {
        let out = format!("{name}.spc");
        let session = format!("{name}.json");
        let mut args = vec!["spc", "--cert", "fps.der", "--ask", ASK, "--asset", asset];
        args.extend(["--out", &out, "--session", &session]);
        args.extend(extra);
        python(&self.dir, &args);
        std::fs::read(self.dir.join(out)).unwrap()
    }

    /// The CKC opened by the device that made SPC `name`.
    pub fn open(&self, name: &str, ckc: &[u8]) -> Value {
        let path = self.dir.join(format!("{name}.ckc"));
        std::fs::write(&path, ckc).unwrap();
        let session = format!("{name}.json");
        let out = python(
            &self.dir,
            &["ckc", "--ckc", path.to_str().unwrap(), "--session", &session],
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// A berth with the test credentials imported (and taken up by the server).
pub async fn fairplay_app(bits: u32) -> (TestApp, Fps) {
    let app = spawn_app().await;
    let fps = Fps::new(app.dir.path(), bits);
    let out = fps.import_into(&app);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The key refresher takes the credentials within 250 ms.
    for _ in 0..40 {
        if client()
            .get(app.url("/fairplay/certificate"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    (app, fps)
}

/// POSTs `body` to `/fairplay/license` with the token in `X-AxDRM-Message`.
pub async fn post_spc(app: &TestApp, token: Option<&str>, body: Vec<u8>) -> (u16, Vec<u8>, Value) {
    let mut req = client().post(app.url("/fairplay/license"));
    if let Some(t) = token {
        req = req.insert_header(("X-AxDRM-Message", t));
    }
    let mut res = req.send_body(body).await.expect("request");
    let status = res.status().as_u16();
    let bytes = res.body().limit(1 << 20).await.expect("body").to_vec();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, bytes, json)
}

/// Wraps an SPC or unwraps a CKC for one request form.
type Bytes = fn(&[u8]) -> Vec<u8>;

fn skd(kid: &str) -> String {
    format!("skd://{kid}")
}

#[actix_web::test]
async fn the_certificate_is_served_as_imported_and_not_counted() {
    let (app, fps) = fairplay_app(1024).await;
    let mut res = client()
        .get(app.url("/fairplay/certificate"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "application/pkix-cert"
    );
    let body = res.body().await.unwrap();
    assert_eq!(body.to_vec(), std::fs::read(&fps.cert).unwrap());
    assert_eq!(app.log_rows(), 0, "a certificate fetch is not a license");
}

#[actix_web::test]
async fn a_ckc_carries_the_key_r1_and_the_blocks_the_spc_asked_back_in_every_form() {
    let (app, fps) = fairplay_app(1024).await;
    let forms: [(&str, Bytes, Bytes); 4] = [
        ("raw", |spc| spc.to_vec(), |ckc| ckc.to_vec()),
        (
            "base64",
            |spc| STANDARD.encode(spc).into_bytes(),
            |ckc| STANDARD.decode(ckc).unwrap(),
        ),
        (
            "form",
            |spc| {
                format!(
                    "spc={}&assetId={KID_A}",
                    STANDARD.encode(spc).replace('+', "%2B").replace('/', "%2F")
                )
                .into_bytes()
            },
            |ckc| {
                let text = std::str::from_utf8(ckc).unwrap();
                let inner = text
                    .strip_prefix("<ckc>")
                    .and_then(|t| t.strip_suffix("</ckc>"))
                    .expect("<ckc>");
                STANDARD.decode(inner).unwrap()
            },
        ),
        (
            "json",
            |spc| json!({ "spc": STANDARD.encode(spc) }).to_string().into_bytes(),
            |ckc| {
                let v: Value = serde_json::from_slice(ckc).unwrap();
                STANDARD.decode(v["ckc"].as_str().unwrap()).unwrap()
            },
        ),
    ];
    for (i, (name, wrap, unwrap)) in forms.into_iter().enumerate() {
        let spc = fps.spc(name, &skd(KID_A), &[]);
        let body = wrap(&spc);
        let token = app.token(&[KID_A], json!({}));
        let (status, answer, json) = post_spc(&app, Some(&token), body).await;
        assert_eq!(status, 200, "{name}: {json}");
        let opened = fps.open(name, &unwrap(&answer));
        assert_eq!(opened["version"], 1);
        assert_eq!(opened["key"], berth::ids::hex(&KEY_A), "{name}");
        assert_eq!(opened["iv"], "00".repeat(16), "no IV in the asset id: zeros");
        assert_eq!(opened["r1_matches"], true);
        assert_eq!(opened["returned_as_asked"], true, "{opened}");
        assert_eq!(
            (&opened["duration"], &opened["hdcp"]),
            (&Value::Null, &Value::Null)
        );
        assert_eq!(app.log_rows(), i as i64 + 1, "one CKC, one license");
    }
}

#[actix_web::test]
async fn an_spc_version_2_for_a_2048_bit_certificate_gets_its_key() {
    let (app, fps) = fairplay_app(2048).await;
    let spc = fps.spc("v2", &skd(KID_B), &[]);
    assert_eq!(&spc[..4], &[0, 0, 0, 2]);
    let (status, ckc, json) = post_spc(&app, Some(&app.token(&[KID_B], json!({}))), spc).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(fps.open("v2", &ckc)["key"], berth::ids::hex(&KEY_B));
}

/// Devices whose SPCs berth opens at the same time (on its SPC threads, one
/// per CPU) each get a CKC for their own session and their own key.
#[actix_web::test]
async fn spcs_sent_at_once_each_get_their_own_ckc() {
    let (app, fps) = fairplay_app(2048).await;
    let devices: Vec<(String, &str, [u8; 16])> = (0..12)
        .map(|i| {
            let (kid, key) = if i % 2 == 0 {
                (KID_A, KEY_A)
            } else {
                (KID_B, KEY_B)
            };
            (format!("device{i}"), kid, key)
        })
        .collect();
    // Every SPC made first (the device side takes a moment each), then all sent.
    let made: Vec<(Vec<u8>, String)> = devices
        .iter()
        .map(|(name, kid, _)| (fps.spc(name, &skd(kid), &[]), app.token(&[kid], json!({}))))
        .collect();
    let url = app.url("/fairplay/license");
    let sent: Vec<_> = made
        .into_iter()
        .map(|(spc, token)| {
            let url = url.clone();
            actix_web::rt::spawn(async move {
                let mut res = client()
                    .post(url)
                    .insert_header(("X-AxDRM-Message", token))
                    .send_body(spc)
                    .await
                    .expect("request");
                let body = res.body().limit(1 << 20).await.expect("body").to_vec();
                (res.status().as_u16(), body)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for answer in sent {
        answers.push(answer.await.unwrap());
    }
    for ((name, _, key), (status, ckc)) in devices.iter().zip(answers) {
        assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&ckc));
        let opened = fps.open(name, &ckc);
        assert_eq!(opened["key"], berth::ids::hex(key), "{name}");
        assert_eq!(opened["r1_matches"], true, "{name}");
    }
    assert_eq!(app.log_rows(), 12, "one license a CKC");
}

#[actix_web::test]
async fn the_asset_id_forms_packagers_write_name_the_key_and_a_given_iv_is_delivered() {
    let (app, fps) = fairplay_app(1024).await;
    let iv = "d5fbd6b82ed93e4ef98ae40931ee33b7";
    let bare = KID_A.replace('-', "");
    let forms = [
        (format!("skd://{bare}:{iv}"), iv.to_owned()),
        (format!("skd://fps.example.com/;{KID_A}"), "00".repeat(16)),
        (
            format!("skd://{}", STANDARD.encode(berth_kid(KID_A))),
            "00".repeat(16),
        ),
        (bare.to_uppercase(), "00".repeat(16)),
    ];
    for (i, (asset, want_iv)) in forms.iter().enumerate() {
        let name = format!("asset{i}");
        let spc = fps.spc(&name, asset, &[]);
        let (status, ckc, json) = post_spc(&app, Some(&app.token(&[KID_A], json!({}))), spc).await;
        assert_eq!(status, 200, "{asset}: {json}");
        let opened = fps.open(&name, &ckc);
        assert_eq!(
            (opened["key"].as_str().unwrap(), opened["iv"].as_str().unwrap()),
            (berth::ids::hex(&KEY_A).as_str(), want_iv.as_str()),
            "{asset}"
        );
    }
}

fn berth_kid(text: &str) -> [u8; 16] {
    kid(text).0
}

/// A token for KID_A whose usage policy is `fairplay` and whose license
/// section is `license`.
fn token_with(app: &TestApp, license: Value, fairplay: Value) -> String {
    app.token(
        &[],
        json!({
            "license": license,
            "content_keys_source": { "inline": [ { "id": KID_A, "usage_policy": "P" } ] },
            "content_key_usage_policies": [ { "name": "P", "fairplay": fairplay } ],
        }),
    )
}

/// One case of the token's rules: (license, fairplay policy, device
/// capabilities, the CKC's duration block, its HDCP block).
type TermsCase = (Value, Value, &'static str, Value, Value);

/// Each case's SPC answered with a CKC whose opened terms are the case's.
async fn ckcs_carry(app: &TestApp, fps: &Fps, cases: Vec<TermsCase>) {
    for (i, (license, policy, caps, duration, hdcp)) in cases.into_iter().enumerate() {
        let name = format!("terms{i}");
        let spc = fps.spc(&name, &skd(KID_A), &["--caps", caps]);
        let (status, ckc, json) = post_spc(app, Some(&token_with(app, license, policy)), spc).await;
        assert_eq!(status, 200, "case {i}: {json}");
        let opened = fps.open(&name, &ckc);
        assert_eq!(
            (&opened["duration"], &opened["hdcp"]),
            (&duration, &hdcp),
            "case {i}"
        );
    }
}

#[actix_web::test]
async fn the_tokens_duration_and_persistence_become_the_ckcs_lease_or_rental() {
    let (app, fps) = fairplay_app(1024).await;
    let streaming = json!({ "duration": 3600, "allow_persistence": false });
    let offline = json!({ "duration": 86400, "allow_persistence": true });
    let lease = |s: u64| json!({ "lease": s, "rental": 0, "type": "lease" });
    let cases = vec![
        (streaming, json!({}), "0", lease(3600), Value::Null),
        (
            offline.clone(),
            json!({}),
            "2",
            json!({ "lease": 0, "rental": 86400, "type": "persistence_and_rental" }),
            Value::Null,
        ),
        (
            json!({ "allow_persistence": true }),
            json!({}),
            "2",
            json!({ "lease": 0, "rental": 0, "type": "persistence" }),
            Value::Null,
        ),
        // A device without offline keys gets a streaming key even when the token allows more.
        (offline, json!({}), "0", lease(86400), Value::Null),
    ];
    ckcs_carry(&app, &fps, cases).await;
    // The log says which licenses were persistent.
    let kinds: Vec<String> = app
        .db()
        .last_licenses(10)
        .unwrap()
        .into_iter()
        .map(|row| row.license_type)
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "persistent-license").count(),
        2,
        "{kinds:?}"
    );
}

#[actix_web::test]
async fn the_policys_hdcp_becomes_the_ckcs_hdcp_block() {
    let (app, fps) = fairplay_app(1024).await;
    let streaming = json!({ "duration": 3600, "allow_persistence": false });
    let lease = json!({ "lease": 3600, "rental": 0, "type": "lease" });
    let cases = vec![
        (streaming, json!({ "hdcp": "TYPE1" }), "1", lease, json!("TYPE1")),
        (
            json!({}),
            json!({ "hdcp": "NONE" }),
            "1",
            Value::Null,
            json!("NONE"),
        ),
        // Type 0 is the device's own default where it cannot read the block.
        (
            json!({}),
            json!({ "hdcp": "TYPE0" }),
            "0",
            Value::Null,
            Value::Null,
        ),
    ];
    ckcs_carry(&app, &fps, cases).await;
}

#[actix_web::test]
async fn what_a_ckc_cannot_keep_is_refused_by_name_and_writes_no_row() {
    let (app, fps) = fairplay_app(1024).await;
    let type1 = token_with(&app, json!({}), json!({ "hdcp": "TYPE1" }));
    let spc = fps.spc("t1", &skd(KID_A), &["--caps", "0"]);
    let (status, _, json) = post_spc(&app, Some(&type1), spc).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (403, Some("unsupported_entitlement")),
        "{json}"
    );
    assert!(json["message"].as_str().unwrap().contains("fairplay"), "{json}");

    for (output, code) in [
        ("airplay", "output_not_allowed"),
        ("av-adapter", "output_not_allowed"),
    ] {
        let rules = json!({ "allow_airplay": false, "allow_av_adapter": false });
        let spc = fps.spc(output, &skd(KID_A), &["--streaming", output]);
        let (status, _, json) = post_spc(&app, Some(&token_with(&app, json!({}), rules)), spc).await;
        assert_eq!((status, json["error"].as_str()), (403, Some(code)), "{json}");
    }
    // Played on the device itself, the same rules give a key.
    let rules = json!({ "allow_airplay": false });
    let spc = fps.spc("local", &skd(KID_A), &["--streaming", "device"]);
    assert_eq!(
        post_spc(&app, Some(&token_with(&app, json!({}), rules)), spc)
            .await
            .0,
        200
    );
    assert_eq!(app.log_rows(), 1, "refusals write no row");

    // Clear Key cannot carry any of it.
    let (status, body, _) = post_license(&app, Some(&type1), &clearkey_body(&[KID_A], "temporary")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("unsupported_entitlement"))
    );
    let persist = token_with(&app, json!({ "allow_persistence": false }), json!({}));
    let spc = fps.spc("nopersist", &skd(KID_A), &["--caps", "2"]);
    let (status, ckc, _) = post_spc(&app, Some(&persist), spc).await;
    assert_eq!(status, 200);
    assert_eq!(
        fps.open("nopersist", &ckc)["duration"],
        Value::Null,
        "no persistence without the token's leave"
    );
}

/// Posts each body with a token for KID_A; each must get its status and
/// code, with a message, and no row may be written.
async fn refused_without_a_row(app: &TestApp, cases: Vec<(&str, Vec<u8>, u16, &str)>) {
    let token = app.token(&[KID_A], json!({}));
    for (what, body, status, code) in cases {
        let (got, _, json) = post_spc(app, Some(&token), body).await;
        assert_eq!(
            (got, json["error"].as_str()),
            (status, Some(code)),
            "{what}: {json}"
        );
        assert!(!json["message"].as_str().unwrap_or("").is_empty(), "{what}");
    }
    assert_eq!(app.log_rows(), 0, "no row for any of them");
}

#[actix_web::test]
async fn broken_bodies_and_containers_are_refused_by_name_before_any_decryption() {
    let (app, fps) = fairplay_app(1024).await;
    let good = fps.spc("good", &skd(KID_A), &[]);
    let edited = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut spc = good.clone();
        edit(&mut spc);
        spc
    };
    let cases = vec![
        (
            "truncated",
            edited(&|s| s.truncate(s.len() - 7)),
            400,
            "spc_malformed",
        ),
        (
            "oversized",
            edited(&|s| s.resize(40 * 1024, 0)),
            400,
            "spc_malformed",
        ),
        ("version 3", edited(&|s| s[3] = 3), 400, "spc_version_unsupported"),
        ("empty", Vec::new(), 400, "spc_malformed"),
        ("not an SPC", b"<ckc>AAAA</ckc>".to_vec(), 400, "spc_malformed"),
        (
            "PlayReady",
            b"<PlayReadyKeyMessage/>".to_vec(),
            501,
            "key_system_unsupported",
        ),
        ("Widevine", vec![0x08, 0x04], 501, "key_system_unsupported"),
        (
            "another certificate",
            fps.spc("h1", &skd(KID_A), &["--wrong-hash"]),
            400,
            "spc_wrong_certificate",
        ),
        (
            "a version 2 SPC for a 1024-bit key",
            fps.spc("h8", &skd(KID_A), &["--version", "2"]),
            400,
            "spc_malformed",
        ),
        ("over 64 KiB", vec![b'A'; 70 * 1024], 413, "body_too_large"),
    ];
    refused_without_a_row(&app, cases).await;
}

#[actix_web::test]
async fn payloads_that_open_wrong_are_refused_by_name() {
    let (app, fps) = fairplay_app(1024).await;
    let mut damaged = fps.spc("good", &skd(KID_A), &[]);
    let n = damaged.len();
    damaged[n - 20] ^= 0x55; // the payload's last blocks no longer decrypt to TLLVs
    let cases = vec![
        ("damaged payload", damaged, 400, "spc_malformed"),
        (
            "wrong integrity",
            fps.spc("h2", &skd(KID_A), &["--bad-integrity"]),
            400,
            "spc_integrity_failed",
        ),
        (
            "a block past the end",
            fps.spc("h3", &skd(KID_A), &["--bad-length"]),
            400,
            "spc_malformed",
        ),
        (
            "asks back a missing block",
            fps.spc("h4", &skd(KID_A), &["--ask-back", "1122334455667788"]),
            400,
            "spc_malformed",
        ),
        (
            "protocol 2",
            fps.spc("h5", &skd(KID_A), &["--protocol-used", "2"]),
            400,
            "spc_protocol_unsupported",
        ),
        (
            "asset id names no KID",
            fps.spc("h6", "twelve", &[]),
            400,
            "asset_id_invalid",
        ),
        (
            "asset the token does not name",
            fps.spc("h7", &skd(KID_UNKNOWN), &[]),
            403,
            "key_not_entitled",
        ),
    ];
    refused_without_a_row(&app, cases).await;
    // An unknown block the device asks back is returned as it came.
    let spc = fps.spc("unknown-block", &skd(KID_A), &["--unknown-tllv"]);
    let (got, ckc, _) = post_spc(&app, Some(&app.token(&[KID_A], json!({}))), spc).await;
    assert_eq!(got, 200);
    assert_eq!(fps.open("unknown-block", &ckc)["returned_as_asked"], true);
}

#[actix_web::test]
async fn a_missing_or_bad_token_or_an_unknown_key_gets_no_ckc() {
    let (app, fps) = fairplay_app(1024).await;
    let good = fps.spc("good", &skd(KID_A), &[]);
    let unknown = app.token(&[KID_UNKNOWN], json!({}));
    let (got, _, json) = post_spc(&app, Some(&unknown), fps.spc("h9", &skd(KID_UNKNOWN), &[])).await;
    assert_eq!(
        (got, json["error"].as_str()),
        (403, Some("key_unknown")),
        "{json}"
    );
    let (got, _, json) = post_spc(&app, None, good.clone()).await;
    assert_eq!((got, json["error"].as_str()), (401, Some("token_missing")));
    let (got, _, json) = post_spc(&app, Some("not.a.token"), good).await;
    assert_eq!((got, json["error"].as_str()), (401, Some("token_invalid")));
    assert_eq!(app.log_rows(), 0);
}

#[actix_web::test]
async fn without_credentials_fairplay_says_so() {
    let app = spawn_app().await;
    let res = client()
        .get(app.url("/fairplay/certificate"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 501);
    let fps = Fps::new(app.dir.path(), 1024);
    let (status, _, json) = post_spc(
        &app,
        Some(&app.token(&[KID_A], json!({}))),
        fps.spc("n", &skd(KID_A), &[]),
    )
    .await;
    assert_eq!(
        (status, json["error"].as_str()),
        (501, Some("fairplay_not_configured"))
    );
    assert_eq!(app.log_rows(), 0);
}

#[actix_web::test]
async fn fairplay_licenses_are_logged_counted_reported_and_billed() {
    let (app, fps) = fairplay_app(1024).await;
    let root = tempfile::tempdir().unwrap();
    let fleet = root.path().join("fleet");
    std::fs::create_dir_all(&fleet).unwrap();
    app.installed_at(time::macros::datetime!(2026-11-01 08:00 UTC));
    for i in 0..3 {
        app.clock
            .set(time::macros::datetime!(2026-11-03 10:00 UTC) + time::Duration::hours(i));
        let name = format!("count{i}");
        let token = app.token(&[KID_A], json!({ "session": { "user_id": format!("seat-{i}") } }));
        assert_eq!(
            post_spc(&app, Some(&token), fps.spc(&name, &skd(KID_A), &[]))
                .await
                .0,
            200
        );
    }
    license_at(
        &app,
        time::macros::datetime!(2026-11-04 10:00 UTC),
        Some("seat-9"),
        false,
    )
    .await;
    let rows = app.db().last_licenses(10).unwrap();
    assert_eq!(rows.iter().filter(|r| r.key_system == "fairplay").count(), 3);

    let out = app.berth(&["stats", "--json", "--month", "2026-11"]);
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["counts"]["by_key_system"]["fairplay"], 3, "{stats}");
    assert_eq!(stats["counts"]["active_users"], 4);
    let out = app.berth(&["log", "verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let file = export(&app, "2026-11", time::macros::datetime!(2026-12-01 00:00 UTC));
    let out = verify(&app, &file, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&read_zip(&file)["report.json"]).unwrap();
    assert_eq!(report["counts"]["by_key_system"]["fairplay"], 3, "{report}");
    std::fs::copy(&file, fleet.join(file.file_name().unwrap())).unwrap();
    let prices = root.path().join("prices.toml");
    std::fs::write(
        &prices,
        "currency = \"EUR\"\nbasis = \"licenses\"\n[vessel_types.aircraft]\ntiers = [ { unit_price = \"0.50\" } ]\n",
    )
    .unwrap();
    let bill = fleet_json(&berth(&[
        "fleet",
        "bill",
        "--json",
        "--prices",
        prices.to_str().unwrap(),
        fleet.to_str().unwrap(),
    ]));
    let line = &bill["months"]["2026-11"]["lines"][0];
    assert_eq!(
        (line["quantity"].as_u64(), line["amount"].as_str()),
        (Some(4), Some("2.00")),
        "{bill}"
    );
}

/// `berth fairplay credentials import` with these files.
fn import(app: &TestApp, cert: &Path, key: &Path, ask: Option<&Path>) -> std::process::Output {
    let mut args = vec![
        "fairplay",
        "credentials",
        "import",
        "--certificate",
        cert.to_str().unwrap(),
    ];
    args.extend(["--private-key", key.to_str().unwrap()]);
    if let Some(ask) = ask {
        args.extend(["--ask-file", ask.to_str().unwrap()]);
    }
    app.berth(&args)
}

fn refused(out: std::process::Output, says: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(says), "expected {says:?} in {err}");
}

fn shown(app: &TestApp) -> Value {
    let out = app.berth(&["fairplay", "credentials", "show", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[actix_web::test]
async fn credentials_that_cannot_serve_are_refused_by_name() {
    let app = spawn_app().await;
    let fps = Fps::new(app.dir.path(), 1024);
    let dir = app.dir.path();
    refused(import(&app, &fps.cert, &fps.key, None), "libfpscrypto");
    std::fs::write(dir.join("empty"), "\n").unwrap();
    refused(
        import(&app, &fps.cert, &fps.key, Some(&dir.join("empty"))),
        "no ASk",
    );
    std::fs::write(dir.join("short"), "1a09d27bc2241afa").unwrap();
    refused(
        import(&app, &fps.cert, &fps.key, Some(&dir.join("short"))),
        "32 hex digits",
    );
    let other = Fps::new(&tempfile::tempdir().unwrap().keep(), 2048);
    refused(
        import(&app, &fps.cert, &other.key, Some(&fps.ask)),
        "not the FPS certificate's",
    );
    run_in(
        dir,
        "openssl",
        &[
            "rsa",
            "-in",
            "fps.pem",
            "-aes128",
            "-passout",
            "pass:x",
            "-out",
            "locked.pem",
        ],
    );
    refused(
        import(&app, &fps.cert, &dir.join("locked.pem"), Some(&fps.ask)),
        "unencrypted",
    );
    refused(
        app.berth(&["fairplay", "credentials", "show"]),
        "no FairPlay credentials",
    );
}

#[actix_web::test]
async fn credentials_are_shown_and_kept_sealed() {
    let app = spawn_app().await;
    let fps = Fps::new(app.dir.path(), 1024);
    let dir = app.dir.path();
    let out = fps.import_into(&app);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown = shown(&app);
    let fingerprint = run_in(
        dir,
        "openssl",
        &[
            "x509",
            "-inform",
            "der",
            "-in",
            "fps.der",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let fingerprint = String::from_utf8(fingerprint.stdout).unwrap();
    assert_eq!(
        Some(shown["sha256_fingerprint"].as_str().unwrap()),
        fingerprint.trim().split('=').nth(1)
    );
    assert_eq!(
        (shown["rsa_bits"].as_u64(), shown["spc_version"].as_u64()),
        (Some(1024), Some(1))
    );
    assert!(
        shown["subject"]
            .as_str()
            .unwrap()
            .contains("berth test FPS certificate")
    );

    // Neither the ASk nor the private key is in the database or a backup in the clear.
    let backup = dir.join("backup.db");
    assert!(
        app.berth(&["backup", "--out", backup.to_str().unwrap()])
            .status
            .success()
    );
    let key_der = run_in(dir, "openssl", &["rsa", "-in", "fps.pem", "-outform", "der"]).stdout;
    let ask = berth::ids::hex_decode(ASK).unwrap();
    for file in [app.db_path(), backup] {
        let bytes = std::fs::read(&file).unwrap();
        for secret in [
            &ask[..],
            &key_der[160..192], /* inside the private exponent */
            ASK.as_bytes(),
        ] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "{secret:?} in {}",
                file.display()
            );
        }
    }
}

#[actix_web::test]
async fn an_expired_certificate_is_refused_and_the_credentials_in_use_are_kept() {
    let app = spawn_app().await;
    let fps = Fps::new(app.dir.path(), 1024);
    assert!(fps.import_into(&app).status.success());
    let before = shown(&app);
    let old = tempfile::tempdir().unwrap().keep();
    let args = [
        "credentials",
        "--bits",
        "1024",
        "--out-cert",
        "c.der",
        "--out-key",
        "k.pem",
    ];
    python(
        &old,
        &[&args[..], &["--days", "-1", "--start-days", "-30"]].concat(),
    );
    refused(
        import(&app, &old.join("c.der"), &old.join("k.pem"), Some(&fps.ask)),
        "not valid now",
    );
    assert_eq!(shown(&app), before);
}

#[actix_web::test]
async fn the_crew_keys_page_shows_the_fairplay_certificate() {
    let app = spawn_admin_app().await;
    let cookie = session(&app).await;
    assert!(
        page(&app, &cookie, "/keys")
            .await
            .contains("No FairPlay credentials")
    );
    let fps = Fps::new(app.dir.path(), 1024);
    assert!(fps.import_into(&app).status.success());
    let shown = berth::provisioning::fairplay_certificate(&app.db())
        .unwrap()
        .unwrap();
    let html = page(&app, &cookie, "/keys").await;
    for fact in [
        "FairPlay certificate",
        shown.info.sha256_fingerprint.as_str(),
        "RSA-1024 (SPC version 1)",
        shown.info.not_after.as_str(),
        "berth test FPS certificate",
    ] {
        assert!(html.contains(fact), "{fact} is not on the keys page");
    }
}
