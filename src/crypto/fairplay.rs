//! The primitives FairPlay Streaming's key server needs, and its provider
//! key: RSA-OAEP (SHA-1 for SPC version 1, SHA-256 for version 2) with the
//! provider's private key, AES-128 in ECB and CBC without padding, SHA-1 (of
//! the certificate, of R1, in Apple's D function).
//!
//! The FPS wire format itself is read and written in `crate::fairplay`.

use openssl::encrypt::Decrypter;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode};
use openssl::x509::X509;

use super::CryptoError;

/// The FPS certificate and the private key that goes with it.
pub struct ProviderKey {
    key: PKey<Private>,
    certificate_der: Vec<u8>,
    /// SHA-1 of the certificate's DER: what an SPC names it by.
    certificate_sha1: [u8; 20],
}

impl std::fmt::Debug for ProviderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderKey").finish_non_exhaustive()
    }
}

/// Why credentials cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderKeyError {
    #[error("the FPS certificate is not a DER X.509 certificate")]
    NotACertificate,
    #[error(
        "the private key is not an unencrypted PEM or DER RSA key (decrypt it first: openssl rsa -in KEY.pem -out plain.pem)"
    )]
    NotAKey,
    #[error(
        "the private key is {0} bits; FairPlay's provider keys are RSA 1024 (SPC version 1) or 2048 (SPC version 2)"
    )]
    KeySize(u32),
    #[error("the private key is not the FPS certificate's")]
    NotThePair,
}

impl ProviderKey {
    /// The certificate (DER) with its private key (PEM, PKCS#1 or PKCS#8, or DER).
    pub fn new(certificate_der: &[u8], key: &[u8]) -> Result<ProviderKey, ProviderKeyError> {
        let certificate = X509::from_der(certificate_der).map_err(|_| ProviderKeyError::NotACertificate)?;
        let key = PKey::private_key_from_pem(key)
            .or_else(|_| PKey::private_key_from_der(key))
            .map_err(|_| ProviderKeyError::NotAKey)?;
        let rsa = key.rsa().map_err(|_| ProviderKeyError::NotAKey)?;
        let bits = rsa.size() * 8;
        if bits != 1024 && bits != 2048 {
            return Err(ProviderKeyError::KeySize(bits));
        }
        let public = certificate
            .public_key()
            .map_err(|_| ProviderKeyError::NotACertificate)?;
        if !public.public_eq(&key) {
            return Err(ProviderKeyError::NotThePair);
        }
        let certificate_der = certificate
            .to_der()
            .map_err(|_| ProviderKeyError::NotACertificate)?;
        Ok(ProviderKey {
            certificate_sha1: sha1(&certificate_der),
            key,
            certificate_der,
        })
    }

    /// The stored form: the certificate's DER and the key as PKCS#8 DER.
    pub fn pkcs8_der(&self) -> Vec<u8> {
        self.key.private_key_to_pkcs8().expect("an RSA key serialises")
    }

    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    pub fn certificate_sha1(&self) -> &[u8; 20] {
        &self.certificate_sha1
    }

    pub fn bits(&self) -> u32 {
        self.key.bits()
    }

    /// Opens the SPC's wrapped session key: RSA-OAEP with SHA-1 (and MGF1
    /// SHA-1) for a 1024-bit key, SHA-256 for a 2048-bit one. Anything but a
    /// 16-byte AES key inside is an error.
    pub fn unwrap_session_key(&self, wrapped: &[u8]) -> Result<[u8; 16], CryptoError> {
        let digest = if self.bits() == 1024 {
            MessageDigest::sha1()
        } else {
            MessageDigest::sha256()
        };
        let mut decrypter = Decrypter::new(&self.key)?;
        decrypter.set_rsa_padding(Padding::PKCS1_OAEP)?;
        decrypter.set_rsa_oaep_md(digest)?;
        decrypter.set_rsa_mgf1_md(digest)?;
        let mut out = vec![0; decrypter.decrypt_len(wrapped)?];
        let n = decrypter
            .decrypt(wrapped, &mut out)
            .map_err(|_| CryptoError::Open)?;
        let key: [u8; 16] = out[..n].try_into().map_err(|_| CryptoError::Open)?;
        super::wipe(&mut out);
        Ok(key)
    }
}

pub fn sha1(data: &[u8]) -> [u8; 20] {
    openssl::sha::sha1(data)
}

fn aes128(mode: Mode, cipher: Cipher, key: &[u8; 16], iv: Option<&[u8; 16]>, data: &[u8]) -> Vec<u8> {
    assert!(
        data.len().is_multiple_of(16),
        "AES without padding takes whole blocks"
    );
    let mut crypter = Crypter::new(cipher, mode, key, iv.map(|iv| &iv[..])).expect("AES-128 is available");
    crypter.pad(false);
    let mut out = vec![0u8; data.len() + 16];
    let n = crypter.update(data, &mut out).expect("whole blocks go through");
    let m = crypter.finalize(&mut out[n..]).expect("no padding to check");
    out.truncate(n + m);
    out
}

/// AES-128-ECB encryption of one block.
pub fn aes128_ecb_encrypt(key: &[u8; 16], block: &[u8; 16]) -> [u8; 16] {
    let out = aes128(Mode::Encrypt, Cipher::aes_128_ecb(), key, None, block);
    out[..16].try_into().expect("one block")
}

/// AES-128-ECB decryption of one block (the inverse, for tests and the CKC reader).
pub fn aes128_ecb_decrypt(key: &[u8; 16], block: &[u8; 16]) -> [u8; 16] {
    let out = aes128(Mode::Decrypt, Cipher::aes_128_ecb(), key, None, block);
    out[..16].try_into().expect("one block")
}

/// AES-128-CBC decryption without padding; `data` is whole blocks.
pub fn aes128_cbc_decrypt(key: &[u8; 16], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    aes128(Mode::Decrypt, Cipher::aes_128_cbc(), key, Some(iv), data)
}

/// AES-128-CBC encryption without padding; `data` is whole blocks.
pub fn aes128_cbc_encrypt(key: &[u8; 16], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    aes128(Mode::Encrypt, Cipher::aes_128_cbc(), key, Some(iv), data)
}
