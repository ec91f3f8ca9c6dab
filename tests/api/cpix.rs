//! Sealed keys: CPIX documents encrypted for the vessel's delivery certificate
//! (and signed) by a key provider, here Python's `cryptography` and the
//! xmlsec1 command line (tests/api/make_cpix.py), never berth's own code.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::helpers::*;

const KID_C: &str = "c0ffee00-1111-4222-8333-444444444444";
const KEY_C: &str = "0123456789abcdef0123456789abcdef";
const KID_D: &str = "d0ffee00-1111-4222-8333-444444444444";
const KEY_D: &str = "fedcba9876543210fedcba9876543210";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/make_cpix.py")
}

/// Runs make_cpix.py in `dir` (Debian's python3, with python3-cryptography).
fn make(dir: &Path, args: &[&str]) {
    let script = script();
    run_in(
        dir,
        "/usr/bin/python3",
        &[&[script.to_str().unwrap()], args].concat(),
    );
}

fn import(app: &TestApp, file: &str, config: Option<&Path>) -> std::process::Output {
    let path = app.dir.path().join(file);
    let mut args = vec!["keys", "import", path.to_str().unwrap()];
    if let Some(c) = config {
        args.extend(["--config", c.to_str().unwrap()]);
    }
    app.berth(&args)
}

fn refused(out: &std::process::Output, says: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(says), "expected {says:?} in: {err}");
}

fn kids(app: &TestApp) -> Vec<Value> {
    let out = app.berth(&["keys", "list", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["keys"].as_array().unwrap().clone()
}

/// A vessel, its delivery certificate as the key provider gets it, and a
/// signer's certificate.
async fn vessel() -> (TestApp, PathBuf) {
    let app = spawn_app().await;
    let dir = app.dir.path().to_path_buf();
    let out = app.berth(&[
        "keys",
        "delivery-cert",
        "--out",
        dir.join("vessel.pem").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    make(
        &dir,
        &["cert", "signer.key", "signer.pem", "--cn", "Example Key Service"],
    );
    (app, dir)
}

fn with_signers(dir: &Path, signers: &[&str]) -> PathBuf {
    let config = dir.join("signers.toml");
    let list: Vec<String> = signers.iter().map(|s| format!("{:?}", dir.join(s))).collect();
    std::fs::write(&config, format!("[keys]\ncpix_signers = [{}]\n", list.join(", "))).unwrap();
    config
}

/// The certificate key providers encrypt for names the vessel and holds an
/// RSA key of at least 3072 bits.
#[actix_web::test]
async fn the_delivery_certificate_names_the_vessel() {
    let (app, dir) = vessel().await;
    let cert = std::fs::read_to_string(dir.join("vessel.pem")).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    let info = app.berth(&["keys", "delivery-cert", "--json"]);
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(
        info["subject"],
        "CN=test-vessel, O=Test Aircraft, OU=berth key delivery"
    );
    assert!(info["rsa_bits"].as_u64().unwrap() >= 3072);
}

#[actix_web::test]
async fn an_encrypted_signed_cpix_document_imports_and_a_player_gets_its_keys() {
    let (app, dir) = vessel().await;
    // Another vessel first, this one second; a signature over each list and
    // one over the document, all children of the root as the schema has them;
    // other prefixes; key periods; UTF-16.
    make(&dir, &["cert", "other.key", "other.pem", "--cn", "Other Ship"]);
    let c = format!("{KID_C}:{KEY_C}");
    let d = format!("{KID_D}:{KEY_D}");
    make(
        &dir,
        &[
            "doc",
            "sealed.xml",
            "--recipient",
            "other.pem",
            "--recipient",
            "vessel.pem",
            "--key",
            &c,
            "--key",
            &d,
            "--prefix",
            "x",
            "--periods",
            "--utf16",
            "--content-id",
            "Film 7",
            "--sign",
            "signer.key,signer.pem",
            "--sign-lists",
            "signer.key,signer.pem",
        ],
    );
    let config = with_signers(&dir, &["signer.pem"]);
    let out = import(&app, "sealed.xml", Some(&config));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "imported 2 new keys (0 already present)\n"
    );
    let listed = kids(&app);
    let c_listed = listed.iter().find(|k| k["kid"] == KID_C).unwrap();
    assert_eq!(
        (&c_listed["label"], &c_listed["period"]),
        (&json!("Film 7"), &json!("period 0"))
    );
    let d_listed = listed.iter().find(|k| k["kid"] == KID_D).unwrap();
    assert_eq!(d_listed["period"], "period 1");

    // A player gets the key the provider put in.
    let token = app.token(&[KID_C], json!({}));
    let (status, body, _) = post_license(&app, Some(&token), &clearkey_body(&[KID_C], "temporary")).await;
    assert_eq!(status, 200, "{body}");
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body["keys"][0]["k"].as_str().unwrap())
        .unwrap();
    assert_eq!(key, hex_bytes(KEY_C));

    // A document for the same keys again changes nothing; unsigned, it is
    // refused while signers are configured, and fine without.
    make(
        &dir,
        &["doc", "plain.xml", "--recipient", "vessel.pem", "--key", &c],
    );
    refused(
        &import(&app, "plain.xml", Some(&config)),
        "the document is not signed",
    );
    let out = import(&app, "plain.xml", None);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "imported 0 new keys (1 already present)\n"
    );
}

fn hex_bytes(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Documents sealed wrong are refused by name, and nothing is imported.
#[actix_web::test]
async fn sealed_documents_not_for_this_vessel_or_damaged_are_refused_by_name() {
    let (app, dir) = vessel().await;
    let before = kids(&app).len();
    let c = format!("{KID_C}:{KEY_C}");
    let d = format!("{KID_D}:{KEY_D}");
    // Not addressed to this vessel: the recipients are named.
    make(&dir, &["cert", "other.key", "other.pem", "--cn", "Other Ship"]);
    make(
        &dir,
        &["doc", "other.xml", "--recipient", "other.pem", "--key", &c],
    );
    refused(
        &import(&app, "other.xml", None),
        "not addressed to this vessel: its keys are encrypted for CN=Other Ship",
    );
    // One key's MAC does not match: named, and the good key is not imported either.
    make(
        &dir,
        &[
            "doc",
            "mac.xml",
            "--recipient",
            "vessel.pem",
            "--key",
            &c,
            "--key",
            &d,
            "--wrong-mac",
            KID_D,
        ],
    );
    refused(
        &import(&app, "mac.xml", None),
        &format!("the MAC of key {KID_D} does not match"),
    );
    // An algorithm berth does not support is named.
    make(
        &dir,
        &[
            "doc",
            "alg.xml",
            "--recipient",
            "vessel.pem",
            "--key",
            &c,
            "--document-key-algorithm",
            "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
        ],
    );
    refused(
        &import(&app, "alg.xml", None),
        "the document key algorithm http://www.w3.org/2001/04/xmlenc#aes128-cbc is not supported",
    );
    // Recipients but no content keys.
    make(
        &dir,
        &["doc", "none.xml", "--recipient", "vessel.pem", "--no-keys"],
    );
    refused(&import(&app, "none.xml", None), "no keys");

    assert_eq!(kids(&app).len(), before, "nothing was imported");
}

/// signed.xml: KEY_C sealed for this vessel and signed by the trusted
/// signer; its text.
fn signed_document(dir: &Path, key: &str) -> String {
    make(
        dir,
        &[
            "doc",
            "signed.xml",
            "--recipient",
            "vessel.pem",
            "--key",
            key,
            "--sign",
            "signer.key,signer.pem",
        ],
    );
    std::fs::read_to_string(dir.join("signed.xml")).unwrap()
}

/// A signature that does not verify, or not by a trusted signer, or by a
/// certificate that is expired or weak, is refused by name.
#[actix_web::test]
async fn signatures_that_cannot_be_trusted_are_refused_by_name() {
    let (app, dir) = vessel().await;
    let before = kids(&app).len();
    let c = format!("{KID_C}:{KEY_C}");
    // Signed, then changed: the signature does not verify, signers or not.
    let text = signed_document(&dir, &c);
    std::fs::write(dir.join("changed.xml"), text.replace("movie-1", "movie-2")).unwrap();
    refused(&import(&app, "changed.xml", None), "does not verify");
    refused(
        &import(&app, "changed.xml", Some(&with_signers(&dir, &["signer.pem"]))),
        "does not verify",
    );
    // Signed by someone who is not a configured signer.
    make(&dir, &["cert", "rogue.key", "rogue.pem", "--cn", "Rogue"]);
    make(
        &dir,
        &[
            "doc",
            "rogue.xml",
            "--recipient",
            "vessel.pem",
            "--key",
            &c,
            "--sign",
            "rogue.key,rogue.pem",
        ],
    );
    refused(
        &import(&app, "rogue.xml", Some(&with_signers(&dir, &["signer.pem"]))),
        "not signed by a trusted signer",
    );
    // Expired, weak (1024-bit) and SHA-1 signer certificates.
    for (name, extra, says) in [
        ("expired", "--expired", "expired"),
        ("weak", "--bits=1024", "weak 1024-bit RSA key"),
        ("sha1", "--sha1", "which is weak"),
    ] {
        let (key, cert) = (format!("{name}.key"), format!("{name}.pem"));
        make(&dir, &["cert", &key, &cert, "--cn", name, extra]);
        let file = format!("{name}.xml");
        make(
            &dir,
            &[
                "doc",
                &file,
                "--recipient",
                "vessel.pem",
                "--key",
                &c,
                "--sign",
                &format!("{key},{cert}"),
            ],
        );
        refused(&import(&app, &file, None), says);
    }
    assert_eq!(kids(&app).len(), before, "nothing was imported");
}

/// Garbage, a DTD and a signer file that is not there are refused by name.
#[actix_web::test]
async fn garbage_a_dtd_and_a_missing_signer_file_are_refused_by_name() {
    let (app, dir) = vessel().await;
    let before = kids(&app).len();
    let c = format!("{KID_C}:{KEY_C}");
    let text = signed_document(&dir, &c);
    // Garbage and a DTD.
    std::fs::write(
        dir.join("garbage.xml"),
        b"<cpix:CPIX xmlns:cpix='urn:dashif:org:cpix'><unclosed>",
    )
    .unwrap();
    refused(&import(&app, "garbage.xml", None), "not well-formed");
    let dtd = text.replacen("?>", "?><!DOCTYPE x [<!ENTITY a \"b\">]>", 1);
    std::fs::write(dir.join("dtd.xml"), dtd).unwrap();
    refused(&import(&app, "dtd.xml", None), "not well-formed");
    // A signer file that is not there is named.
    refused(
        &import(&app, "signed.xml", Some(&with_signers(&dir, &["missing.pem"]))),
        "missing.pem",
    );

    assert_eq!(kids(&app).len(), before, "nothing was imported");
}

/// A key pair a vendor issued, as PKCS#12 made by the openssl command line
/// (issued.p12, its password in the file `password`).
fn vendor_issued_p12(dir: &Path) -> PathBuf {
    let run = |args: &[&str]| run_in(dir, "openssl", args);
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:3072",
        "-nodes",
        "-days",
        "30",
        "-subj",
        "/CN=test-vessel/O=Vendor CA issued",
        "-keyout",
        "issued.key",
        "-out",
        "issued.pem",
    ]);
    std::fs::write(dir.join("password"), "correct horse\n").unwrap();
    run(&[
        "pkcs12",
        "-export",
        "-inkey",
        "issued.key",
        "-in",
        "issued.pem",
        "-passout",
        "file:password",
        "-out",
        "issued.p12",
    ]);
    dir.join("issued.p12")
}

/// Imports `p12` as the delivery key, the password from its file.
fn import_p12(app: &TestApp, dir: &Path, p12: &Path) -> std::process::Output {
    app.berth(&[
        "keys",
        "delivery-key",
        "import",
        p12.to_str().unwrap(),
        "--password-file",
        dir.join("password").to_str().unwrap(),
    ])
}

/// A wrong password (from standard input) and a file that is not PKCS#12
/// are refused, and the key pair in use stays.
#[actix_web::test]
async fn a_delivery_key_import_with_a_wrong_password_or_file_is_refused() {
    let (app, dir) = vessel().await;
    let p12 = vendor_issued_p12(&dir);
    // A wrong password, from standard input: refused, the old key stays.
    let before = app.berth(&["keys", "delivery-cert"]).stdout;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "keys",
            "delivery-key",
            "import",
            p12.to_str().unwrap(),
            "--data-dir",
            app.data_dir().to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(b"wrong\n").unwrap();
    let out = child.wait_with_output().unwrap();
    refused(&out, "wrong password");
    assert_eq!(app.berth(&["keys", "delivery-cert"]).stdout, before);

    // A file that is not PKCS#12 says so; the password never came from the command line.
    refused(
        &app.berth(&[
            "keys",
            "delivery-key",
            "import",
            dir.join("issued.pem").to_str().unwrap(),
            "--password-file",
            dir.join("password").to_str().unwrap(),
        ]),
        "not a PKCS#12 file",
    );
}

/// The vendor's key pair replaces the generated one: documents for its
/// certificate import, documents for the old one no more.
#[actix_web::test]
async fn a_vendor_issued_delivery_key_replaces_the_generated_one() {
    let (app, dir) = vessel().await;
    let out = import_p12(&app, &dir, &vendor_issued_p12(&dir));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("O=Vendor CA issued"));
    let shown = String::from_utf8(app.berth(&["keys", "delivery-cert"]).stdout).unwrap();
    assert_eq!(shown, std::fs::read_to_string(dir.join("issued.pem")).unwrap());
    // Documents for the issued certificate import; for the old one, no more.
    let c = format!("{KID_C}:{KEY_C}");
    make(
        &dir,
        &["doc", "new.xml", "--recipient", "issued.pem", "--key", &c],
    );
    assert!(import(&app, "new.xml", None).status.success());
    make(
        &dir,
        &["doc", "old.xml", "--recipient", "vessel.pem", "--key", &c],
    );
    refused(&import(&app, "old.xml", None), "not addressed to this vessel");
}

/// Certificates a key provider would not encrypt for are refused, and the
/// working pair is kept.
#[actix_web::test]
async fn a_delivery_key_with_a_certificate_no_provider_would_use_is_refused() {
    let (app, dir) = vessel().await;
    assert!(import_p12(&app, &dir, &vendor_issued_p12(&dir)).status.success());
    let run = |args: &[&str]| run_in(&dir, "openssl", args);
    let shown = String::from_utf8(app.berth(&["keys", "delivery-cert"]).stdout).unwrap();
    for (name, extra, says) in [
        ("expired", "--expired", "expired"),
        ("future", "--future", "not valid yet"),
        ("sha1", "--sha1", "which is weak"),
        ("weak", "--bits=1024", "1024 bits"),
    ] {
        make(
            &dir,
            &[
                "cert",
                &format!("{name}.key"),
                &format!("{name}.pem"),
                "--cn",
                "test-vessel",
                extra,
            ],
        );
        let p12 = format!("{name}.p12");
        run(&[
            "pkcs12",
            "-export",
            "-inkey",
            &format!("{name}.key"),
            "-in",
            &format!("{name}.pem"),
        ]
        .into_iter()
        .chain(["-passout", "file:password", "-out", &p12])
        .collect::<Vec<_>>());
        let out = app.berth(&[
            "keys",
            "delivery-key",
            "import",
            dir.join(&p12).to_str().unwrap(),
            "--password-file",
            dir.join("password").to_str().unwrap(),
        ]);
        refused(&out, says);
        assert_eq!(
            shown,
            String::from_utf8(app.berth(&["keys", "delivery-cert"]).stdout).unwrap(),
            "{name}"
        );
    }
}

/// The manual's sealed-keys recipe (on the README's demo), run as written against a real berth (the
/// release binary and the demo's data dir and port swapped for this test's).
#[actix_web::test]
async fn the_manuals_sealed_keys_recipe_runs_as_written() {
    let app = spawn_app().await;
    let manual = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/doc/manual.md");
    let readme = std::fs::read_to_string(manual).unwrap();
    let section = readme.split("### End to end, on the demo").nth(1).unwrap();
    let block = section
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let base = app.url("/");
    let script = block
        .replace("/tmp/", &format!("{}/", app.dir.path().display()))
        .replace("cargo run --release -q --", env!("CARGO_BIN_EXE_berth"))
        .replace("target/demo", app.data_dir().to_str().unwrap())
        .replace("http://127.0.0.1:8080/", &base);
    // Off the test's thread: this berth answers the recipe's curl on it.
    let out = actix_web::rt::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .args(["-euc", &script])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("imported 1 new key"), "{stdout}");
    assert!(stdout.contains(r#""k":"ABEiM0RVZneImaq7zN3u_w""#), "{stdout}");
}

const KID_E: &str = "e0ffee00-1111-4222-8333-444444444444";
const KEY_E: &str = "00112233445566778899aabbccddeeff";
const KID_F: &str = "f0ffee00-1111-4222-8333-444444444444";
const KEY_F: &str = "ffeeddccbbaa99887766554433221100";
/// The key an attacker tries to slip in (its base64 has no `+`, which UTF-7 would read).
const EVIL_KID: &str = "0badbad0-1111-4222-8333-444444444444";
const EVIL_LIST: &str = r#"<cpix:ContentKeyList id="evil"><cpix:ContentKey kid="0badbad0-1111-4222-8333-444444444444"><cpix:Data><pskc:Secret><pskc:PlainValue>ERERERERERERERERERERAA==</pskc:PlainValue></pskc:Secret></cpix:Data></cpix:ContentKey></cpix:ContentKeyList>"#;

/// Whether the xmlsec1 command line (libxml2, as another verifier would read
/// the file) finds every signature in `file` valid with `cert`.
fn xmlsec1_verifies(dir: &Path, file: &str, cert: &str) -> bool {
    std::process::Command::new("xmlsec1")
        .args(["--verify", "--pubkey-cert-pem", cert])
        .args(
            [
                "DeliveryDataList",
                "ContentKeyList",
                "ContentKeyPeriodList",
                "ContentKeyUsageRuleList",
            ]
            .iter()
            .flat_map(|list| ["--id-attr:id".to_owned(), format!("urn:dashif:org:cpix:{list}")]),
        )
        .arg(file)
        .current_dir(dir)
        .output()
        .unwrap()
        .status
        .success()
}

fn imported(out: &std::process::Output, new: usize) {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(&format!("imported {new} new key")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A vessel trusting `signer.pem` and `ec.pem` (ECDSA), with `other.pem` (a
/// second recipient) and `rogue.pem` (trusted by no one) made too.
async fn vessel_with_signers() -> (TestApp, PathBuf, PathBuf) {
    let (app, dir) = vessel().await;
    make(&dir, &["cert", "other.key", "other.pem", "--cn", "Other Ship"]);
    make(
        &dir,
        &["cert", "ec.key", "ec.pem", "--cn", "EC Key Service", "--ec"],
    );
    make(&dir, &["cert", "rogue.key", "rogue.pem", "--cn", "Rogue"]);
    let config = with_signers(&dir, &["signer.pem", "ec.pem"]);
    (app, dir, config)
}

/// A document of `key` (`KID:KEY`) for two recipients with periods and a root
/// contentId, signed as `sign` says.
fn root_document(dir: &Path, file: &str, key: &str, utf16: bool, sign: &[&str]) {
    let mut args = vec![
        "doc",
        file,
        "--recipient",
        "other.pem",
        "--recipient",
        "vessel.pem",
        "--key",
        key,
        "--periods",
        "--content-id",
        "Root Title",
    ];
    if utf16 {
        args.push("--utf16");
    }
    args.extend(sign);
    make(dir, &args);
}

/// Lists signed as key services sign them, at the root: every list by one
/// trusted signer and the document by another (UTF-16), only the lists (the
/// root's contentId then unsigned, not a title), or lists by a rogue under a
/// trusted document signature. Each imports.
#[actix_web::test]
async fn signatures_over_lists_at_the_root_as_key_services_write_them_import() {
    let (app, dir, config) = vessel_with_signers().await;
    let (c, d, e) = (
        format!("{KID_C}:{KEY_C}"),
        format!("{KID_D}:{KEY_D}"),
        format!("{KID_E}:{KEY_E}"),
    );
    let both = ["--sign-lists", "ec.key,ec.pem", "--sign", "signer.key,signer.pem"];
    root_document(&dir, "both.xml", &c, true, &both);
    let text = String::from_utf8(
        std::fs::read(dir.join("both.xml")).unwrap()[2..]
            .chunks(2)
            .map(|p| p[0])
            .collect(),
    )
    .unwrap();
    assert_eq!(
        text.matches("<ds:Signature xmlns").count(),
        5,
        "four lists and the document"
    );
    imported(&import(&app, "both.xml", Some(&config)), 1);
    root_document(
        &dir,
        "lists.xml",
        &d,
        false,
        &["--sign-lists", "signer.key,signer.pem"],
    );
    assert!(xmlsec1_verifies(&dir, "lists.xml", "signer.pem"));
    imported(&import(&app, "lists.xml", Some(&config)), 1);
    let listed = kids(&app);
    let label = |kid: &str| listed.iter().find(|k| k["kid"] == kid).unwrap()["label"].clone();
    assert_eq!((label(KID_C), label(KID_D)), (json!("Root Title"), json!("")));
    let rogue_lists = [
        "--sign-lists",
        "rogue.key,rogue.pem",
        "--sign",
        "signer.key,signer.pem",
    ];
    root_document(&dir, "rogue-lists.xml", &e, false, &rogue_lists);
    imported(&import(&app, "rogue-lists.xml", Some(&config)), 1);
}

/// What a trusted signer did not sign imports nothing while signers are
/// configured: only the content keys signed (not the document and MAC keys
/// they are encrypted under), or every list by a rogue. Without signers, each
/// signature verifies with its own certificate and the rogue's document imports.
#[actix_web::test]
async fn lists_a_trusted_signer_did_not_sign_import_nothing_while_signers_are_configured() {
    let (app, dir, config) = vessel_with_signers().await;
    let f = format!("{KID_F}:{KEY_F}");
    let only_keys = ["--sign-lists", "signer.key,signer.pem", "--lists", "keys"];
    root_document(&dir, "only-keys.xml", &f, false, &only_keys);
    refused(
        &import(&app, "only-keys.xml", Some(&config)),
        "DeliveryDataList is not signed by a trusted signer",
    );
    root_document(
        &dir,
        "rogue.xml",
        &f,
        false,
        &["--sign-lists", "rogue.key,rogue.pem"],
    );
    refused(
        &import(&app, "rogue.xml", Some(&config)),
        "not signed by a trusted signer",
    );
    assert!(kids(&app).iter().all(|k| k["kid"] != KID_F));
    imported(&import(&app, "rogue.xml", None), 1);
}

/// Where a document's ContentKeyList starts and ends.
fn list_at(text: &str) -> (usize, usize) {
    let start = text.find("<cpix:ContentKeyList").unwrap();
    let end = text.find("</cpix:ContentKeyList>").unwrap() + "</cpix:ContentKeyList>".len();
    (start, end)
}

/// A trusted signer's document rewritten in UTF-7 so that libxml2 would
/// verify the signed list while berth's reader read the attacker's: refused
/// by name, with RSA and ECDSA signers.
#[actix_web::test]
async fn a_trusted_document_rewritten_in_utf7_imports_nothing() {
    let (app, dir) = vessel().await;
    make(
        &dir,
        &["cert", "ec.key", "ec.pem", "--cn", "EC Key Service", "--ec"],
    );
    let config = with_signers(&dir, &["signer.pem", "ec.pem"]);
    let c = format!("{KID_C}:{KEY_C}");
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    for (signer, cert) in [
        ("signer.key,signer.pem", "signer.pem"),
        ("ec.key,ec.pem", "ec.pem"),
    ] {
        make(
            &dir,
            &["doc", "signed.xml", "--clear", "--key", &c, "--sign", signer],
        );
        let signed = std::fs::read_to_string(dir.join("signed.xml")).unwrap();

        // UTF-7: the signed list becomes text to a UTF-8 reader, and the
        // attacker's list a comment to a UTF-7 reader. libxml2 (xmlsec1)
        // reads the signed document and says the signature is good.
        let escaped = signed.replace('+', "+-");
        let (start, end) = list_at(&escaped);
        let hidden = escaped[start..end].replace('<', "+ADw-").replace('>', "+AD4-");
        let utf7 = format!(
            "{}{hidden}+ADwAIQ---{EVIL_LIST}--+AD4-{}",
            &escaped[..start],
            &escaped[end..]
        )
        .replacen("encoding=\"UTF-8\"", "encoding=\"UTF-7\"", 1);
        write("utf7.xml", utf7.as_bytes());
        assert!(
            xmlsec1_verifies(&dir, "utf7.xml", cert),
            "the construction is a real bypass"
        );
        refused(
            &import(&app, "utf7.xml", Some(&config)),
            "declares encoding \"UTF-7\"",
        );
        refused(&import(&app, "utf7.xml", None), "declares encoding \"UTF-7\"");
    }
    assert!(kids(&app).iter().all(|k| k["kid"] != EVIL_KID));
}

/// A vessel trusting `signer.pem`, and a clear document of key C signed by it.
async fn trusted_signed_document() -> (TestApp, PathBuf, PathBuf, String) {
    let (app, dir) = vessel().await;
    let config = with_signers(&dir, &["signer.pem"]);
    let c = format!("{KID_C}:{KEY_C}");
    make(
        &dir,
        &[
            "doc",
            "signed.xml",
            "--clear",
            "--key",
            &c,
            "--sign",
            "signer.key,signer.pem",
        ],
    );
    let signed = std::fs::read_to_string(dir.join("signed.xml")).unwrap();
    (app, dir, config, signed)
}

/// Neither the signed key nor the attacker's is in the store.
fn nothing_of_the_document_imported(app: &TestApp) {
    let listed = kids(app);
    assert!(
        listed.iter().all(|k| k["kid"] != KID_C && k["kid"] != EVIL_KID),
        "nothing imported: {listed:?}"
    );
}

/// The trusted document with byte order marks that disagree with its
/// declaration, or another declared encoding, is refused by name.
#[actix_web::test]
async fn a_trusted_document_whose_encoding_two_readers_could_read_apart_imports_nothing() {
    let (app, dir, config, signed) = trusted_signed_document().await;
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    write(
        "bom8.xml",
        &[b"\xEF\xBB\xBF", signed.replacen("UTF-8", "UTF-16", 1).as_bytes()].concat(),
    );
    refused(&import(&app, "bom8.xml", Some(&config)), "its bytes are UTF-8");
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(signed.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    write("bom16.xml", &utf16);
    refused(&import(&app, "bom16.xml", Some(&config)), "its bytes are UTF-16");
    for other in ["ISO-8859-1", "EBCDIC-US", "UTF-32"] {
        write("other.xml", signed.replacen("UTF-8", other, 1).as_bytes());
        refused(
            &import(&app, "other.xml", Some(&config)),
            &format!("declares encoding \"{other}\""),
        );
    }
    nothing_of_the_document_imported(&app);
}

/// The trusted document rewritten around its signature: an entity that would
/// expand to the attacker's list, a second list with the signed list's id
/// (signature wrapping), an id with white space, the signature moved into the
/// list, an unsigned list beside the signed one. Each is refused by name.
#[actix_web::test]
async fn a_trusted_document_rewritten_around_its_signature_imports_nothing() {
    let (app, dir, config, signed) = trusted_signed_document().await;
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    let (_, end) = list_at(&signed);
    let around = |inside: &str| format!("{}{inside}{}", &signed[..end], &signed[end..]);
    let entity = signed
        .replacen(
            "?>",
            &format!("?><!DOCTYPE cpix:CPIX [<!ENTITY e '{EVIL_LIST}'>]>"),
            1,
        )
        .replacen("</cpix:ContentKeyList>", "</cpix:ContentKeyList>&e;", 1);
    write("entity.xml", entity.as_bytes());
    refused(&import(&app, "entity.xml", Some(&config)), "not well-formed");
    write(
        "twice.xml",
        around(&EVIL_LIST.replace("\"evil\"", "\"keys\"")).as_bytes(),
    );
    refused(
        &import(&app, "twice.xml", Some(&config)),
        "two elements have the id",
    );
    write(
        "space.xml",
        signed.replacen("id=\"keys\"", "id=\"keys \"", 1).as_bytes(),
    );
    refused(&import(&app, "space.xml", Some(&config)), "holds white space");
    let signature_at = signed.find("<ds:Signature").unwrap();
    let signature_end = signed.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let moved = format!(
        "{}{}{}{}",
        &signed[..end - "</cpix:ContentKeyList>".len()],
        &signed[signature_at..signature_end],
        &signed[end - "</cpix:ContentKeyList>".len()..signature_at],
        &signed[signature_end..]
    );
    write("moved.xml", moved.as_bytes());
    refused(
        &import(&app, "moved.xml", Some(&config)),
        "is not where CPIX puts signatures",
    );
    // Unsigned beside the signed list: the document signature no longer verifies.
    write("beside.xml", around(EVIL_LIST).as_bytes());
    refused(&import(&app, "beside.xml", Some(&config)), "does not verify");
    nothing_of_the_document_imported(&app);
}

/// Comments and CDATA are read alike by both readers: the trusted document
/// with the attacker's list in a comment imports the signed key, and only it.
#[actix_web::test]
async fn comments_and_cdata_in_a_trusted_document_import_the_signed_key_only() {
    let (app, dir, config, signed) = trusted_signed_document().await;
    let (start, _) = list_at(&signed);
    let comment = format!(
        "{}<!--{EVIL_LIST}-->{}",
        &signed[..start],
        &signed[start..].replacen(
            "ASNFZ4mrze8BI0VniavN7w==",
            "<![CDATA[ASNFZ4mrze8BI0VniavN7w==]]>",
            1
        )
    );
    std::fs::write(dir.join("comment.xml"), comment.as_bytes()).unwrap();
    imported(&import(&app, "comment.xml", Some(&config)), 1);
    let listed = kids(&app);
    assert!(listed.iter().any(|k| k["kid"] == KID_C));
    assert!(
        listed.iter().all(|k| k["kid"] != EVIL_KID),
        "the attacker's key is never imported"
    );
}
