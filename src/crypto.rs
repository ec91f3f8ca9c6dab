//! The only place that calls openssl: AES-GCM sealing under the master key,
//! AES-CBC for token-carried keys, HMAC-SHA256, SHA-256, Ed25519, randomness and
//! constant-time comparison.
//!
//! Architecture Invariant: no I/O except reading/writing the master key file;
//! no SQL, no HTTP.

use std::io::Write as _;
use std::path::Path;

use openssl::pkey::{Id, PKey, Private, Public};
use openssl::sign::{Signer, Verifier};
use openssl::symm::{Cipher, Crypter, Mode};

use crate::ids::{Secret32, decode_b64_any, hex, hex_decode};

pub mod delivery;
pub mod fairplay;
pub mod xmldsig;

pub use delivery::{CertificateInfo, DeliveryKey};

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("decryption failed: wrong master key or corrupted data")]
    Open,
    #[error("openssl error: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
    /// A file berth was pointed at cannot be read, or does not hold what it
    /// should: which file, where, and what went wrong.
    #[error("reading {what} {}: {detail}", .path.display())]
    File {
        what: &'static str,
        path: std::path::PathBuf,
        detail: String,
    },
    /// A key of another algorithm than the one this use needs.
    #[error("the {what} key is not {needed}")]
    WrongKeyType {
        what: &'static str,
        needed: &'static str,
    },
    /// A private key that does not belong to the certificate given with it.
    #[error("the {0} key does not match the certificate")]
    KeyMismatch(&'static str),
    /// A value refused (a PKCS#12 file, a certificate, a ciphertext), with why.
    #[error("{0}")]
    Refused(String),
}

/// A [`CryptoError::File`] for `path`, from whatever the reading said.
fn file_error<'a>(what: &'static str, path: &'a Path) -> impl Fn(&dyn std::fmt::Display) -> CryptoError + 'a {
    move |detail| CryptoError::File {
        what,
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// Fills an array from OpenSSL's CSPRNG.
pub fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    openssl::rand::rand_bytes(&mut out).expect("the OpenSSL random generator works");
    out
}

/// Compares two byte strings in constant time (for equal lengths).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    openssl::sha::sha256(data)
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&sha256(data))
}

/// A SHA-256 that is fed in pieces (for the hash chain, which hashes joined fields).
pub struct Sha256(openssl::sha::Sha256);

impl Sha256 {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Sha256 {
        Sha256(openssl::sha::Sha256::new())
    }
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn finish(self) -> [u8; 32] {
        self.0.finish()
    }
}

/// An HMAC-SHA256 key prepared once and used for many messages (RFC 2104):
/// the SHA-256 states after the key's inner and outer pads are computed once,
/// so signing one message is two cloned states and a few block compressions,
/// with no per-call allocation or algorithm lookup (it runs twice per license).
pub struct HmacKey {
    inner: openssl::sha::Sha256,
    outer: openssl::sha::Sha256,
}

impl HmacKey {
    pub fn new(key: &[u8]) -> HmacKey {
        const BLOCK: usize = 64;
        let mut block = [0u8; BLOCK];
        if key.len() > BLOCK {
            block[..32].copy_from_slice(&sha256(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let mut inner = openssl::sha::Sha256::new();
        inner.update(&block.map(|b| b ^ 0x36));
        let mut outer = openssl::sha::Sha256::new();
        outer.update(&block.map(|b| b ^ 0x5c));
        wipe(&mut block);
        HmacKey { inner, outer }
    }

    pub fn sign(&self, data: &[u8]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        inner.update(data);
        let mut outer = self.outer.clone();
        outer.update(&inner.finish());
        outer.finish()
    }
}

/// Overwrites key material on the stack before it goes out of scope.
pub(crate) fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(bytes);
}

/// `AES-256-CBC-decrypt(key, iv, no padding)` of exactly one 16-byte block, as SPEC
/// section 3 defines for `encrypted_key`.
pub fn aes256_cbc_decrypt_block(key: &[u8; 32], iv: &[u8; 16], block: &[u8; 16]) -> [u8; 16] {
    let mut crypter =
        Crypter::new(Cipher::aes_256_cbc(), Mode::Decrypt, key, Some(iv)).expect("AES-256-CBC is available");
    crypter.pad(false);
    let mut out = [0u8; 32];
    let n = crypter.update(block, &mut out).expect("one block decrypts");
    let m = crypter.finalize(&mut out[n..]).expect("no padding to check");
    debug_assert_eq!(n + m, 16);
    let mut key_out = [0u8; 16];
    key_out.copy_from_slice(&out[..16]);
    key_out
}

/// The inverse of [`aes256_cbc_decrypt_block`], for minting tokens with inline keys.
pub fn aes256_cbc_encrypt_block(key: &[u8; 32], iv: &[u8; 16], block: &[u8; 16]) -> [u8; 16] {
    let mut crypter =
        Crypter::new(Cipher::aes_256_cbc(), Mode::Encrypt, key, Some(iv)).expect("AES-256-CBC is available");
    crypter.pad(false);
    let mut out = [0u8; 32];
    let n = crypter.update(block, &mut out).expect("one block encrypts");
    let m = crypter.finalize(&mut out[n..]).expect("no padding to add");
    debug_assert_eq!(n + m, 16);
    let mut ct = [0u8; 16];
    ct.copy_from_slice(&out[..16]);
    ct
}

const GCM_NONCE: usize = 12;
const GCM_TAG: usize = 16;

/// The 32-byte key that encrypts every secret berth keeps in its database.
pub struct MasterKey(Secret32);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    pub fn generate() -> MasterKey {
        MasterKey(Secret32(random()))
    }

    /// Reads a master key file: base64 or 64 hex digits (one line), or 32 raw bytes.
    pub fn load(path: &Path) -> Result<MasterKey, CryptoError> {
        let error = file_error("master key", path);
        let bytes = std::fs::read(path).map_err(|e| error(&e))?;
        Self::from_file_bytes(&bytes).ok_or_else(|| error(&"not 32 bytes (raw, hex or base64)"))
    }

    fn from_file_bytes(bytes: &[u8]) -> Option<MasterKey> {
        let decoded = match std::str::from_utf8(bytes).map(str::trim) {
            Ok(text) if text.len() == 64 => hex_decode(text),
            Ok(text) if !text.is_empty() && bytes.len() != 32 => decode_b64_any(text),
            _ => Some(bytes.to_vec()),
        }?;
        Some(MasterKey(Secret32(decoded.try_into().ok()?)))
    }

    /// Writes the key as base64 text to a new file with mode 0600; never
    /// overwrites. The file and its directory entry are on the disk when this
    /// returns: a database that survived a power cut without its master key
    /// would hold keys nobody can read.
    pub fn write_new(&self, path: &Path) -> std::io::Result<()> {
        use base64::Engine as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        let text = base64::engine::general_purpose::STANDARD.encode(self.0.0);
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        crate::durable::sync_parent(path)
    }

    /// Encrypts with AES-256-GCM; `context` is bound as associated data so that a
    /// ciphertext cannot be moved to another row or purpose.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce: [u8; GCM_NONCE] = random();
        let mut tag = [0u8; GCM_TAG];
        let ct = openssl::symm::encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.0.0,
            Some(&nonce),
            context,
            plaintext,
            &mut tag,
        )
        .expect("AES-256-GCM encryption does not fail");
        let mut out = Vec::with_capacity(GCM_NONCE + ct.len() + GCM_TAG);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out.extend_from_slice(&tag);
        out
    }

    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < GCM_NONCE + GCM_TAG {
            return Err(CryptoError::Open);
        }
        let (nonce, rest) = sealed.split_at(GCM_NONCE);
        let (ct, tag) = rest.split_at(rest.len() - GCM_TAG);
        openssl::symm::decrypt_aead(Cipher::aes_256_gcm(), &self.0.0, Some(nonce), context, ct, tag)
            .map_err(|_| CryptoError::Open)
    }

    pub fn open_array<const N: usize>(&self, context: &[u8], sealed: &[u8]) -> Result<[u8; N], CryptoError> {
        self.open(context, sealed)?
            .try_into()
            .map_err(|_| CryptoError::Open)
    }
}

/// The installation's Ed25519 identity.
pub struct SigningKey(PKey<Private>);

impl SigningKey {
    pub fn generate() -> SigningKey {
        SigningKey(PKey::generate_ed25519().expect("Ed25519 key generation works"))
    }

    pub fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, CryptoError> {
        let key = PKey::private_key_from_der(der)?;
        if key.id() != Id::ED25519 {
            return Err(CryptoError::WrongKeyType {
                what: "signing",
                needed: "Ed25519",
            });
        }
        Ok(SigningKey(key))
    }

    pub fn to_pkcs8_der(&self) -> Vec<u8> {
        self.0.private_key_to_pkcs8().expect("an Ed25519 key serialises")
    }

    /// SubjectPublicKeyInfo DER of the public half.
    pub fn public_der(&self) -> Vec<u8> {
        self.0.public_key_to_der().expect("an Ed25519 key serialises")
    }

    pub fn public_pem(&self) -> String {
        String::from_utf8(self.0.public_key_to_pem().expect("an Ed25519 key serialises"))
            .expect("PEM is ASCII")
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut signer = Signer::new_without_digest(&self.0).expect("Ed25519 signer");
        signer
            .sign_oneshot_to_vec(message)
            .expect("Ed25519 signing does not fail")
    }
}

/// An Ed25519 public key read from a PEM (for verifying reports).
pub struct PublicKey(PKey<Public>);

impl PublicKey {
    /// An Ed25519 public key from a PEM file (at most 64 KiB).
    pub fn load(path: &Path) -> Result<PublicKey, CryptoError> {
        use std::io::Read as _;
        let error = file_error("public key", path);
        let mut pem = Vec::new();
        std::fs::File::open(path)
            .map_err(|e| error(&e))?
            .take(64 * 1024 + 1)
            .read_to_end(&mut pem)
            .map_err(|e| error(&e))?;
        if pem.len() > 64 * 1024 {
            return Err(error(&"larger than 64 KiB"));
        }
        PublicKey::from_pem(&pem).map_err(|e| error(&e))
    }

    /// The key from its DER (SubjectPublicKeyInfo) form.
    pub fn from_der(der: &[u8]) -> Result<PublicKey, CryptoError> {
        let key = PKey::public_key_from_der(der)?;
        if key.id() != Id::ED25519 {
            return Err(CryptoError::WrongKeyType {
                what: "public",
                needed: "Ed25519",
            });
        }
        Ok(PublicKey(key))
    }

    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, CryptoError> {
        let key = PKey::public_key_from_pem(pem)?;
        if key.id() != Id::ED25519 {
            return Err(CryptoError::WrongKeyType {
                what: "public",
                needed: "Ed25519",
            });
        }
        Ok(PublicKey(key))
    }

    pub fn der(&self) -> Vec<u8> {
        self.0.public_key_to_der().expect("an Ed25519 key serialises")
    }

    pub fn to_pem(&self) -> String {
        let pem = self.0.public_key_to_pem().expect("an Ed25519 key serialises");
        String::from_utf8(pem).expect("PEM is ASCII")
    }

    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(mut verifier) = Verifier::new_without_digest(&self.0) else {
            return false;
        };
        verifier.verify_oneshot(signature, message).unwrap_or(false)
    }
}

/// A TLS client configuration for uploading reports: the system's CAs plus an
/// optional extra CA file, and an optional client certificate.
/// What `tls_acceptor` builds: handed to actix-web as it is, so that no other
/// module names openssl.
pub type TlsAcceptor = openssl::ssl::SslAcceptorBuilder;

/// A TLS client that does not verify the server's certificate, for berth's
/// probe of its own listener (the certificate names the players' host).
pub fn unverified_tls_connector() -> Result<openssl::ssl::SslConnector, CryptoError> {
    let mut builder = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client())?;
    builder.set_verify(openssl::ssl::SslVerifyMode::NONE);
    Ok(builder.build())
}

pub fn tls_connector(
    ca_file: Option<&Path>,
    client_cert: Option<(&Path, &Path)>,
) -> Result<openssl::ssl::SslConnector, CryptoError> {
    use openssl::ssl::{SslConnector, SslMethod};
    let mut builder = SslConnector::builder(SslMethod::tls_client())?;
    if let Some(ca) = ca_file {
        builder
            .set_ca_file(ca)
            .map_err(|e| file_error("CA file", ca)(&e))?;
    }
    if let Some((cert, key)) = client_cert {
        load_key_pair(
            &mut builder,
            cert,
            key,
            ("client key", "client certificate", "client"),
        )?;
    }
    Ok(builder.build())
}

/// Loads a PEM private key and certificate chain into `builder`, and checks
/// they belong together. The key first: loading the certificate after it does
/// not fail on a mismatch, so the check can say so plainly. `names`: how the
/// errors name the key file, the certificate file, and the pair.
fn load_key_pair(
    builder: &mut openssl::ssl::SslContextBuilder,
    cert: &Path,
    key: &Path,
    (key_name, cert_name, pair): (&'static str, &'static str, &'static str),
) -> Result<(), CryptoError> {
    builder
        .set_private_key_file(key, openssl::ssl::SslFiletype::PEM)
        .map_err(|e| file_error(key_name, key)(&e))?;
    builder
        .set_certificate_chain_file(cert)
        .map_err(|e| file_error(cert_name, cert)(&e))?;
    builder
        .check_private_key()
        .map_err(|_| CryptoError::KeyMismatch(pair))
}

/// A TLS server configuration for a listener from PEM files: Mozilla's
/// "intermediate" settings (TLS 1.2 and 1.3).
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<openssl::ssl::SslAcceptorBuilder, CryptoError> {
    use openssl::ssl::{SslAcceptor, SslMethod};
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    load_key_pair(&mut builder, cert, key, ("TLS key", "TLS certificate", "TLS"))?;
    Ok(builder)
}

/// [`tls_acceptor`] that also admits only clients presenting a certificate
/// issued by `client_ca` (PEM): the ground receiver's mutual TLS.
pub fn mutual_tls_acceptor(cert: &Path, key: &Path, client_ca: &Path) -> Result<TlsAcceptor, CryptoError> {
    use openssl::ssl::SslVerifyMode;
    let mut builder = tls_acceptor(cert, key)?;
    let read = file_error("client CA", client_ca);
    builder.set_ca_file(client_ca).map_err(|e| read(&e))?;
    // Which CAs the client may choose from, sent in the handshake.
    builder
        .set_client_ca_list(openssl::x509::X509Name::load_client_ca_file(client_ca).map_err(|e| read(&e))?);
    builder.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    Ok(builder)
}

/// The names a TLS client's verified certificate carries (its subject's common
/// names, then its DNS and URI subject alternative names), read from the
/// connection actix-web hands to `on_connect`; `None` for a connection without
/// TLS or without a client certificate.
pub fn peer_names(connection: &dyn std::any::Any) -> Option<Vec<String>> {
    type Tls = actix_tls::accept::openssl::TlsStream<actix_web::rt::net::TcpStream>;
    let cert = connection.downcast_ref::<Tls>()?.ssl().peer_certificate()?;
    let mut names: Vec<String> = cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .filter_map(|e| std::str::from_utf8(e.data().as_slice()).ok().map(str::to_owned))
        .collect();
    for alt in cert.subject_alt_names().into_iter().flatten() {
        names.extend(alt.dnsname().or(alt.uri()).map(str::to_owned));
    }
    Some(names)
}

/// When the first certificate in a PEM file (a listener's own, ahead of its
/// chain) stops being valid.
pub fn certificate_expiry(cert: &Path) -> Result<time::OffsetDateTime, CryptoError> {
    let read = file_error("TLS certificate", cert);
    let pem = std::fs::read(cert).map_err(|e| read(&e))?;
    let leaf = openssl::x509::X509::from_pem(&pem).map_err(|e| read(&e))?;
    let diff = openssl::asn1::Asn1Time::from_unix(0)?.diff(leaf.not_after())?;
    let seconds = i64::from(diff.days) * 86_400 + i64::from(diff.secs);
    time::OffsetDateTime::from_unix_timestamp(seconds).map_err(|e| read(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        fn hex_of(bytes: &[u8]) -> String {
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
        // Test case 2: a short key.
        assert_eq!(
            hex_of(&HmacKey::new(b"Jefe").sign(b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex_of(
                &HmacKey::new(&[0xaa; 131]).sign(b"Test Using Larger Than Block-Size Key - Hash Key First")
            ),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        // Against openssl's own HMAC, for a 32-byte key like a communication secret.
        let key = [7u8; 32];
        let pkey = PKey::hmac(&key).unwrap();
        let mut signer = Signer::new(openssl::hash::MessageDigest::sha256(), &pkey).unwrap();
        signer.update(b"header.payload").unwrap();
        assert_eq!(
            HmacKey::new(&key).sign(b"header.payload").to_vec(),
            signer.sign_to_vec().unwrap()
        );
    }

    #[test]
    fn seal_binds_context() {
        let mk = MasterKey::generate();
        let sealed = mk.seal(b"a", b"secret");
        assert_eq!(mk.open(b"a", &sealed).unwrap(), b"secret");
        assert!(mk.open(b"b", &sealed).is_err());
        assert!(MasterKey::generate().open(b"a", &sealed).is_err());
        assert!(mk.open(b"a", &sealed[..10]).is_err());
    }

    #[test]
    fn cbc_round_trips() {
        let key = [3u8; 32];
        let iv = [9u8; 16];
        let ct = aes256_cbc_encrypt_block(&key, &iv, &[1u8; 16]);
        assert_eq!(aes256_cbc_decrypt_block(&key, &iv, &ct), [1u8; 16]);
    }

    #[test]
    fn ed25519_signs_and_verifies() {
        let sk = SigningKey::generate();
        let pk = PublicKey::from_pem(sk.public_pem().as_bytes()).unwrap();
        let sig = sk.sign(b"m");
        assert_eq!(sig.len(), 64);
        assert!(pk.verify(b"m", &sig));
        assert!(!pk.verify(b"n", &sig));
        let again = SigningKey::from_pkcs8_der(&sk.to_pkcs8_der()).unwrap();
        assert_eq!(again.public_der(), sk.public_der());
    }

    #[test]
    fn master_key_file_forms() {
        let raw = [5u8; 32];
        assert!(MasterKey::from_file_bytes(&raw).is_some());
        assert!(MasterKey::from_file_bytes(hex(&raw).as_bytes()).is_some());
        assert!(MasterKey::from_file_bytes(b"short").is_none());
        assert!(MasterKey::from_file_bytes(b"").is_none());
    }
}
