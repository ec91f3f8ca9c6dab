//! The vessel's delivery key pair (RSA, with an X.509 certificate that key
//! providers encrypt CPIX documents for) and the primitives a CPIX recipient
//! needs: RSA-OAEP (MGF1/SHA-1), HMAC-SHA512, AES-256-CBC with padding, and the
//! checks on a certificate a document names.

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::{Padding, Rsa};
use openssl::x509::{X509, X509NameBuilder};
use time::OffsetDateTime;

use super::CryptoError;

/// Bits of a delivery key berth makes.
pub const DELIVERY_KEY_BITS: u32 = 3072;
/// Below this an RSA key is weak, in a delivery or a signer certificate.
pub const MIN_RSA_BITS: u32 = 2048;
/// How long a certificate berth makes is valid.
const VALID_DAYS: u32 = 10 * 366;

/// What a person checks about a certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertificateInfo {
    /// `CN=..., O=...`, as OpenSSL's one-line form writes it.
    pub subject: String,
    /// SHA-256 of the DER, hex pairs separated by `:`.
    pub sha256_fingerprint: String,
    pub not_after: String,
    pub rsa_bits: Option<u32>,
}

/// The vessel's delivery key: its private key and its certificate.
pub struct DeliveryKey {
    key: PKey<Private>,
    certificate: X509,
}

impl std::fmt::Debug for DeliveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryKey").finish_non_exhaustive()
    }
}

fn invalid(what: &str) -> impl Fn(openssl::error::ErrorStack) -> CryptoError + '_ {
    move |e| CryptoError::Refused(format!("{what}: {e}"))
}

impl DeliveryKey {
    /// A new RSA-3072 key pair with a self-signed certificate (SHA-256) whose
    /// subject names the installation (CN) and the vessel (O).
    pub fn generate(
        installation: &str,
        vessel: &str,
        now: OffsetDateTime,
    ) -> Result<DeliveryKey, CryptoError> {
        let key = PKey::from_rsa(Rsa::generate(DELIVERY_KEY_BITS)?)?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_nid(Nid::COMMONNAME, installation)?;
        name.append_entry_by_nid(Nid::ORGANIZATIONNAME, vessel)?;
        name.append_entry_by_nid(Nid::ORGANIZATIONALUNITNAME, "berth key delivery")?;
        let name = name.build();
        let mut cert = X509::builder()?;
        cert.set_version(2)?;
        let serial = BigNum::from_slice(&super::random::<16>())?;
        let serial = serial.to_asn1_integer()?;
        cert.set_serial_number(&serial)?;
        cert.set_subject_name(&name)?;
        cert.set_issuer_name(&name)?;
        cert.set_pubkey(&key)?;
        let start = Asn1Time::from_unix(now.unix_timestamp() - 3600)?;
        cert.set_not_before(&start)?;
        let end = Asn1Time::from_unix(now.unix_timestamp() + i64::from(VALID_DAYS) * 86_400)?;
        cert.set_not_after(&end)?;
        let usage = openssl::x509::extension::KeyUsage::new()
            .critical()
            .key_encipherment()
            .build()?;
        cert.append_extension(usage)?;
        cert.sign(&key, MessageDigest::sha256())?;
        Ok(DeliveryKey {
            key,
            certificate: cert.build(),
        })
    }

    /// A key pair a vendor issued, as PKCS#12 (`.p12`/`.pfx`): an RSA key of at
    /// least 2048 bits and the certificate that goes with it.
    pub fn from_pkcs12(der: &[u8], password: &str) -> Result<DeliveryKey, CryptoError> {
        let parsed = openssl::pkcs12::Pkcs12::from_der(der)
            .map_err(invalid("not a PKCS#12 file"))?
            .parse2(password)
            .map_err(|_| {
                CryptoError::Refused("the PKCS#12 file cannot be opened: wrong password, or damaged".into())
            })?;
        let (Some(key), Some(certificate)) = (parsed.pkey, parsed.cert) else {
            return Err(CryptoError::Refused(
                "the PKCS#12 file must hold a private key and its certificate".into(),
            ));
        };
        DeliveryKey::checked(key, certificate)
    }

    /// The stored form back: PKCS#8 DER of the key, DER of the certificate.
    pub fn from_der(pkcs8: &[u8], certificate: &[u8]) -> Result<DeliveryKey, CryptoError> {
        let key = PKey::private_key_from_pkcs8(pkcs8)?;
        DeliveryKey::checked(key, X509::from_der(certificate)?)
    }

    fn checked(key: PKey<Private>, certificate: X509) -> Result<DeliveryKey, CryptoError> {
        let rsa = key.rsa().map_err(|_| CryptoError::WrongKeyType {
            what: "delivery",
            needed: "RSA",
        })?;
        if rsa.size() * 8 < MIN_RSA_BITS {
            return Err(CryptoError::Refused(format!(
                "the delivery key has {} bits; at least {MIN_RSA_BITS} are needed",
                rsa.size() * 8
            )));
        }
        if !certificate.public_key()?.public_eq(&key) {
            return Err(CryptoError::Refused(
                "the certificate is not the delivery key's".into(),
            ));
        }
        Ok(DeliveryKey { key, certificate })
    }

    pub fn pkcs8_der(&self) -> Vec<u8> {
        self.key.private_key_to_pkcs8().expect("an RSA key serialises")
    }

    pub fn certificate_der(&self) -> Vec<u8> {
        self.certificate.to_der().expect("a certificate serialises")
    }

    pub fn certificate_pem(&self) -> String {
        let pem = self.certificate.to_pem().expect("a certificate serialises");
        String::from_utf8(pem).expect("PEM is ASCII")
    }
}

/// A DER certificate as PEM.
pub fn certificate_pem(der: &[u8]) -> Result<String, CryptoError> {
    let pem = X509::from_der(der)
        .map_err(invalid("not an X.509 certificate"))?
        .to_pem()?;
    Ok(String::from_utf8(pem).expect("PEM is ASCII"))
}

impl DeliveryKey {
    /// RSA-OAEP with MGF1 and SHA-1 (`xmlenc#rsa-oaep-mgf1p`), as CPIX
    /// encrypts its document and MAC keys.
    pub fn decrypt_oaep(&self, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let rsa = self.key.rsa()?;
        let mut out = vec![0; rsa.size() as usize];
        let n = rsa
            .private_decrypt(ciphertext, &mut out, Padding::PKCS1_OAEP)
            .map_err(|_| CryptoError::Refused("RSA-OAEP decryption failed".into()))?;
        out.truncate(n);
        Ok(out)
    }
}

/// The subject, fingerprint and expiry of a DER certificate.
pub fn certificate_info(der: &[u8]) -> Result<CertificateInfo, CryptoError> {
    let cert = X509::from_der(der).map_err(invalid("not an X.509 certificate"))?;
    let subject = cert
        .subject_name()
        .entries()
        .map(|e| {
            let name = e.object().nid().short_name().unwrap_or("?");
            let value = std::str::from_utf8(e.data().as_slice()).unwrap_or("?");
            format!("{name}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let fingerprint = cert.digest(MessageDigest::sha256())?;
    let (_, not_after) = certificate_validity(der)?;
    Ok(CertificateInfo {
        subject,
        sha256_fingerprint: fingerprint
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
        not_after: crate::ids::format_instant(not_after),
        rsa_bits: cert.public_key()?.rsa().ok().map(|r| r.size() * 8),
    })
}

/// When a DER certificate starts and stops being valid.
pub fn certificate_validity(der: &[u8]) -> Result<(OffsetDateTime, OffsetDateTime), CryptoError> {
    let cert = X509::from_der(der).map_err(invalid("not an X.509 certificate"))?;
    let epoch = Asn1Time::from_unix(0)?;
    let instant = |t: &openssl::asn1::Asn1TimeRef| -> Result<OffsetDateTime, CryptoError> {
        let diff = epoch.diff(t)?;
        OffsetDateTime::from_unix_timestamp(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
            .map_err(|e| CryptoError::Refused(e.to_string()))
    };
    Ok((instant(cert.not_before())?, instant(cert.not_after())?))
}

/// Why a certificate cannot be trusted with keys.
#[derive(Debug, thiserror::Error)]
pub enum CertificateProblem {
    #[error(transparent)]
    Unreadable(#[from] CryptoError),
    #[error("the certificate {subject} expired on {not_after}")]
    Expired { subject: String, not_after: String },
    #[error("the certificate {0} is not valid yet")]
    NotYetValid(String),
    #[error(
        "the certificate {subject} has a weak {bits}-bit RSA key (at least {MIN_RSA_BITS} bits are needed)"
    )]
    WeakKey { subject: String, bits: u32 },
    #[error("the certificate {subject} is signed with {algorithm}, which is weak")]
    WeakSignature { subject: String, algorithm: String },
}

/// Whether a certificate a CPIX document names (or a delivery key's) can be
/// trusted with keys at `now`: not expired or not yet valid, an RSA key of at
/// least 2048 bits, not signed with SHA-1 (or MD5). Its info if so.
pub fn check_certificate(der: &[u8], now: OffsetDateTime) -> Result<CertificateInfo, CertificateProblem> {
    let info = certificate_info(der)?;
    let cert = X509::from_der(der).map_err(CryptoError::from)?;
    let at = Asn1Time::from_unix(now.unix_timestamp()).map_err(CryptoError::from)?;
    let subject = || info.subject.clone();
    if cert.not_after() < at {
        return Err(CertificateProblem::Expired {
            subject: subject(),
            not_after: info.not_after.clone(),
        });
    }
    if cert.not_before() > at {
        return Err(CertificateProblem::NotYetValid(subject()));
    }
    if let Some(bits) = info.rsa_bits.filter(|bits| *bits < MIN_RSA_BITS) {
        return Err(CertificateProblem::WeakKey {
            subject: subject(),
            bits,
        });
    }
    let algorithm = cert.signature_algorithm().object().nid();
    if [
        Nid::SHA1WITHRSAENCRYPTION,
        Nid::ECDSA_WITH_SHA1,
        Nid::MD5WITHRSAENCRYPTION,
        Nid::DSAWITHSHA1,
    ]
    .contains(&algorithm)
    {
        return Err(CertificateProblem::WeakSignature {
            subject: subject(),
            algorithm: algorithm.long_name().unwrap_or("SHA-1").to_owned(),
        });
    }
    Ok(info)
}

/// HMAC-SHA512 (CPIX's `ValueMAC`).
pub fn hmac_sha512(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = PKey::hmac(key).expect("an HMAC key of any length");
    let mut signer =
        openssl::sign::Signer::new(MessageDigest::sha512(), &key).expect("HMAC-SHA512 is available");
    signer.update(data).expect("HMAC update");
    signer.sign_to_vec().expect("HMAC final")
}

/// AES-256-CBC with PKCS#7 padding, the IV in front of the ciphertext (CPIX's
/// `xmlenc#aes256-cbc` values).
pub fn aes256_cbc_decrypt_padded(key: &[u8], iv_and_ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if key.len() != 32 {
        return Err(CryptoError::Refused(format!(
            "an AES-256 key is 32 bytes, not {}",
            key.len()
        )));
    }
    if iv_and_ciphertext.len() < 32 || !iv_and_ciphertext.len().is_multiple_of(16) {
        return Err(CryptoError::Refused(
            "an AES-256-CBC value is a 16-byte IV and whole 16-byte blocks".into(),
        ));
    }
    let (iv, ciphertext) = iv_and_ciphertext.split_at(16);
    openssl::symm::decrypt(openssl::symm::Cipher::aes_256_cbc(), key, Some(iv), ciphertext)
        .map_err(|_| CryptoError::Refused("AES-256-CBC decryption failed (bad padding)".into()))
}

/// Every certificate in a PEM file, DER.
pub fn certificates_from_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>, CryptoError> {
    let certificates = X509::stack_from_pem(pem).map_err(invalid("not PEM certificates"))?;
    if certificates.is_empty() {
        return Err(CryptoError::Refused("no certificate in the file".into()));
    }
    certificates
        .iter()
        .map(|c| c.to_der().map_err(CryptoError::from))
        .collect()
}
