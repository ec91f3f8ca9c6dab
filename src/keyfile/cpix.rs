//! DASH-IF CPIX 2.x, as a recipient reads it: clear `PlainValue` keys, or keys
//! encrypted for this vessel's delivery certificate (`EncryptedValue`), with
//! the document's signatures checked first and key periods kept.
//!
//! Encrypted keys, as CPIX defines them: the `DeliveryData` whose certificate
//! is this vessel's carries the document key and the MAC key, each encrypted
//! with RSA-OAEP (MGF1, SHA-1); each content key is AES-256-CBC under the
//! document key, IV in front, and its `ValueMAC` is HMAC-SHA512 over IV and
//! ciphertext, checked before anything is decrypted.

use std::collections::HashMap;

use time::OffsetDateTime;

use super::{KeyFileError, check_label, err};
use crate::crypto::DeliveryKey;
use crate::crypto::delivery::{aes256_cbc_decrypt_padded, certificate_info, check_certificate, hmac_sha512};
use crate::crypto::xmldsig::{self, DSIG_NS, Scope, Verified};
use crate::ids::NewKey;
use crate::ids::{ContentKey, Kid, decode_b64_any};

const CPIX_NS: &str = "urn:dashif:org:cpix";
const PSKC_NS: &str = "urn:ietf:params:xml:ns:keyprov:pskc";
const XENC_NS: &str = "http://www.w3.org/2001/04/xmlenc#";
const AES256_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes256-cbc";
const RSA_OAEP: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
const HMAC_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512";
const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";

/// What a CPIX document is read with.
pub struct Recipient<'a> {
    /// This vessel's delivery key pair (encrypted documents need it).
    pub delivery: Option<&'a DeliveryKey>,
    /// Trusted signers' certificates (DER), from `[keys] cpix_signers`.
    pub signers: &'a [Vec<u8>],
    pub now: OffsetDateTime,
}

type Node<'a, 'input> = roxmltree::Node<'a, 'input>;

fn is(node: &Node<'_, '_>, ns: &str, name: &str) -> bool {
    node.tag_name().namespace() == Some(ns) && node.tag_name().name() == name
}

fn child<'a, 'input>(node: Node<'a, 'input>, ns: &str, name: &str) -> Option<Node<'a, 'input>> {
    node.children().find(|n| is(n, ns, name))
}

fn base64_of(node: Node<'_, '_>, what: &str) -> Result<Vec<u8>, KeyFileError> {
    let text: String = node
        .text()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    decode_b64_any(&text).ok_or_else(|| err(format!("{what} is not base64")))
}

/// The root's lists berth reads: what carries keys (the keys, and the
/// document and MAC keys they are encrypted under) and what it keeps of them
/// (key periods).
const READ_LISTS: [&str; 4] = [
    "DeliveryDataList",
    "ContentKeyList",
    "ContentKeyPeriodList",
    "ContentKeyUsageRuleList",
];

/// What the verified signatures vouch for. With trusted signers configured,
/// berth reads a list only when a trusted signer signed it, by its id or by
/// signing the whole document, and the root's own attributes (`contentId`)
/// only under a trusted signature of the whole document.
struct Vouched {
    required: bool,
    document: bool,
    lists: Vec<String>,
}

impl Vouched {
    fn of(verified: &[Verified], required: bool) -> Vouched {
        let trusted = verified.iter().filter(|v| v.trusted);
        Vouched {
            required,
            document: trusted.clone().any(|v| v.scope == Scope::Document),
            lists: trusted
                .filter_map(|v| match &v.scope {
                    Scope::Collection { id, .. } => Some(id.clone()),
                    Scope::Document => None,
                })
                .collect(),
        }
    }

    fn root_attributes(&self) -> bool {
        !self.required || self.document
    }

    /// Refuses the document unless every list berth reads is vouched for.
    fn check(&self, root: Node<'_, '_>) -> Result<(), KeyFileError> {
        if !self.required || self.document {
            return Ok(());
        }
        if self.lists.is_empty() {
            return Err(err(
                "the document is not signed by a trusted signer, and [keys] cpix_signers says it must be: nothing was imported",
            ));
        }
        for list in root.children().filter(|n| {
            n.tag_name().namespace() == Some(CPIX_NS) && READ_LISTS.contains(&n.tag_name().name())
        }) {
            let id = list.attribute("id").unwrap_or_default();
            if !self.lists.iter().any(|l| l == id) {
                return Err(err(format!(
                    "the document's {} is not signed by a trusted signer ([keys] cpix_signers): a trusted signer must sign the whole document, or every list of keys and periods; nothing was imported",
                    list.tag_name().name()
                )));
            }
        }
        Ok(())
    }
}

/// Reads a CPIX document from `text`, the one text its signatures are
/// verified on (see `one_document`).
pub fn parse(text: &str, recipient: &Recipient<'_>) -> Result<Vec<NewKey>, KeyFileError> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: 1_000_000,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options)
        .map_err(|e| err(format!("the CPIX document is not well-formed XML: {e}")))?;
    let root = doc.root_element();
    if !is(&root, CPIX_NS, "CPIX") {
        return Err(err(format!(
            "the XML root is not a CPIX element in namespace {CPIX_NS}"
        )));
    }
    let verified = xmldsig::verify(&doc, text, recipient.signers, recipient.now)
        .map_err(|e| err(format!("CPIX signature: {e}")))?;
    let vouched = Vouched::of(&verified, !recipient.signers.is_empty());
    vouched.check(root)?;
    let label = if vouched.root_attributes() {
        root.attribute("contentId").unwrap_or("").to_owned()
    } else {
        String::new()
    };
    check_label(&label).map_err(|e| err(format!("CPIX contentId: {e}")))?;
    let periods = key_periods(root)?;
    let content_keys: Vec<_> = root
        .children()
        .filter(|n| is(n, CPIX_NS, "ContentKeyList"))
        .flat_map(|list| list.children().filter(|n| is(n, CPIX_NS, "ContentKey")))
        .collect();
    let encrypted = content_keys
        .iter()
        .any(|k| k.descendants().any(|n| is(&n, PSKC_NS, "EncryptedValue")));
    let document_keys = if encrypted {
        Some(document_keys(root, recipient)?)
    } else {
        None
    };
    let mut keys = Vec::new();
    for content_key in content_keys {
        let kid: Kid = content_key
            .attribute("kid")
            .ok_or_else(|| err("a CPIX ContentKey has no kid attribute"))?
            .parse()
            .map_err(|e| err(format!("CPIX ContentKey kid: {e}")))?;
        let secret = child(content_key, CPIX_NS, "Data")
            .and_then(|d| child(d, PSKC_NS, "Secret"))
            .ok_or_else(|| err(format!("CPIX key {kid} has no Data/Secret")))?;
        let key = match (&document_keys, child(secret, PSKC_NS, "EncryptedValue")) {
            (Some(keys), Some(value)) => decrypt_content_key(kid, secret, value, keys)?,
            (Some(_), None) => {
                return Err(err(format!(
                    "CPIX key {kid} is in the clear in a document whose other keys are encrypted"
                )));
            }
            (None, _) => {
                let plain = child(secret, PSKC_NS, "PlainValue")
                    .ok_or_else(|| err(format!("CPIX key {kid} has no pskc:PlainValue")))?;
                ContentKey::parse(plain.text().unwrap_or("").trim())
                    .map_err(|e| err(format!("CPIX key {kid}: {e}")))?
            }
        };
        let own_label = content_key.attribute("contentId").map(str::to_owned);
        if let Some(l) = &own_label {
            check_label(l).map_err(|e| err(format!("CPIX key {kid} contentId: {e}")))?;
        }
        keys.push(NewKey {
            kid,
            key,
            label: own_label.unwrap_or_else(|| label.clone()),
            period: periods.get(&kid).cloned(),
        });
    }
    Ok(keys)
}

/// The document key and the MAC key of the `DeliveryData` addressed to this
/// vessel's certificate.
struct DocumentKeys {
    document: Vec<u8>,
    mac: Vec<u8>,
}

fn document_keys(root: Node<'_, '_>, recipient: &Recipient<'_>) -> Result<DocumentKeys, KeyFileError> {
    let delivery = recipient
        .delivery
        .ok_or_else(|| err("the CPIX keys are encrypted and this installation has no delivery key"))?;
    let mine = delivery.certificate_der();
    let mut recipients = Vec::new();
    let mut found = None;
    for data in root
        .children()
        .filter(|n| is(n, CPIX_NS, "DeliveryDataList"))
        .flat_map(|list| list.children().filter(|n| is(n, CPIX_NS, "DeliveryData")))
    {
        let cert = child(data, CPIX_NS, "DeliveryKey")
            .and_then(|k| child(k, DSIG_NS, "X509Data"))
            .and_then(|x| child(x, DSIG_NS, "X509Certificate"))
            .ok_or_else(|| err("a CPIX DeliveryData has no DeliveryKey/X509Data/X509Certificate"))?;
        let der = base64_of(cert, "a DeliveryData certificate")?;
        if der == mine {
            found = Some(data);
        } else {
            recipients.push(
                certificate_info(&der).map_or_else(|_| "an unreadable certificate".into(), |i| i.subject),
            );
        }
    }
    let Some(data) = found else {
        return Err(err(if recipients.is_empty() {
            "the CPIX keys are encrypted, but the document has no DeliveryData".to_owned()
        } else {
            format!(
                "the CPIX document is not addressed to this vessel: its keys are encrypted for {}; send the key provider this vessel's certificate (berth keys delivery-cert)",
                recipients.join("; ")
            )
        }));
    };
    check_certificate(&mine, recipient.now).map_err(|e| err(format!("delivery certificate: {e}")))?;
    let document_key =
        child(data, CPIX_NS, "DocumentKey").ok_or_else(|| err("DeliveryData has no DocumentKey"))?;
    let algorithm = document_key.attribute("Algorithm").unwrap_or(AES256_CBC);
    if algorithm != AES256_CBC {
        return Err(err(format!(
            "the document key algorithm {algorithm} is not supported"
        )));
    }
    let encrypted = document_key
        .descendants()
        .find(|n| is(n, PSKC_NS, "EncryptedValue"))
        .ok_or_else(|| err("DocumentKey has no EncryptedValue"))?;
    let document = rsa_decrypt(delivery, encrypted, "the document key")?;
    if document.len() != 32 {
        return Err(err("the document key is not 32 bytes"));
    }
    let mac_method = child(data, CPIX_NS, "MACMethod")
        .ok_or_else(|| err("DeliveryData has no MACMethod: encrypted keys without a MAC are refused"))?;
    let algorithm = mac_method.attribute("Algorithm").unwrap_or_default();
    if algorithm != HMAC_SHA512 {
        return Err(err(format!("the MAC algorithm {algorithm:?} is not supported")));
    }
    let mac_key = child(mac_method, CPIX_NS, "Key").ok_or_else(|| err("MACMethod has no Key"))?;
    let mac = rsa_decrypt(delivery, mac_key, "the MAC key")?;
    Ok(DocumentKeys { document, mac })
}

/// The `EncryptionMethod` algorithm and `CipherValue` under `node` (directly,
/// or inside a `pskc:EncryptedValue`).
fn encrypted_value<'a, 'input>(
    node: Node<'a, 'input>,
    what: &str,
) -> Result<(&'a str, Node<'a, 'input>), KeyFileError> {
    let method = node
        .descendants()
        .find(|n| is(n, XENC_NS, "EncryptionMethod"))
        .ok_or_else(|| err(format!("{what} has no EncryptionMethod")))?;
    let algorithm = method.attribute("Algorithm").unwrap_or_default();
    let cipher = node
        .descendants()
        .find(|n| is(n, XENC_NS, "CipherValue"))
        .ok_or_else(|| err(format!("{what} has no CipherValue")))?;
    if let Some(digest) = method.children().find(|n| is(n, DSIG_NS, "DigestMethod"))
        && digest.attribute("Algorithm") != Some(SHA1)
    {
        return Err(err(format!(
            "{what}: RSA-OAEP with digest {} is not supported (CPIX uses SHA-1)",
            digest.attribute("Algorithm").unwrap_or("?")
        )));
    }
    Ok((algorithm, cipher))
}

fn rsa_decrypt(delivery: &DeliveryKey, node: Node<'_, '_>, what: &str) -> Result<Vec<u8>, KeyFileError> {
    let (algorithm, cipher) = encrypted_value(node, what)?;
    if algorithm != RSA_OAEP {
        return Err(err(format!(
            "{what} is encrypted with {algorithm:?}, which is not supported (only {RSA_OAEP})"
        )));
    }
    let ciphertext = base64_of(cipher, what)?;
    delivery.decrypt_oaep(&ciphertext).map_err(|_| {
        err(format!(
            "{what} cannot be decrypted with this vessel's delivery key"
        ))
    })
}

fn decrypt_content_key(
    kid: Kid,
    secret: Node<'_, '_>,
    value: Node<'_, '_>,
    keys: &DocumentKeys,
) -> Result<ContentKey, KeyFileError> {
    let (algorithm, cipher) = encrypted_value(value, &format!("CPIX key {kid}"))?;
    if algorithm != AES256_CBC {
        return Err(err(format!(
            "CPIX key {kid} is encrypted with {algorithm:?}, which is not supported (only {AES256_CBC})"
        )));
    }
    let ciphertext = base64_of(cipher, &format!("CPIX key {kid}"))?;
    let mac =
        child(secret, PSKC_NS, "ValueMAC").ok_or_else(|| err(format!("CPIX key {kid} has no ValueMAC")))?;
    let mac = base64_of(mac, &format!("the ValueMAC of key {kid}"))?;
    if !crate::crypto::ct_eq(&hmac_sha512(&keys.mac, &ciphertext), &mac) {
        return Err(err(format!(
            "the MAC of key {kid} does not match: the key was changed or damaged on the way; nothing was imported"
        )));
    }
    let clear = aes256_cbc_decrypt_padded(&keys.document, &ciphertext)
        .map_err(|e| err(format!("CPIX key {kid}: {e}")))?;
    let bytes: [u8; 16] = clear
        .try_into()
        .map_err(|v: Vec<u8>| err(format!("CPIX key {kid} decrypts to {} bytes, not 16", v.len())))?;
    Ok(ContentKey(bytes))
}

/// Each key's rotation period, from `ContentKeyUsageRule`s with a
/// `KeyPeriodFilter` naming a `ContentKeyPeriod` (`index`, or `start`-`end`).
fn key_periods(root: Node<'_, '_>) -> Result<HashMap<Kid, String>, KeyFileError> {
    let mut periods = HashMap::new();
    for period in root
        .children()
        .filter(|n| is(n, CPIX_NS, "ContentKeyPeriodList"))
        .flat_map(|l| l.children().filter(|n| is(n, CPIX_NS, "ContentKeyPeriod")))
    {
        let id = period.attribute("id").unwrap_or_default();
        let text = match (
            period.attribute("index"),
            period.attribute("start"),
            period.attribute("end"),
        ) {
            (Some(index), ..) => format!("period {index}"),
            (None, Some(start), Some(end)) => format!("{start} to {end}"),
            (None, Some(start), None) => format!("from {start}"),
            _ => format!("period {id}"),
        };
        check_label(&text).map_err(|e| err(format!("ContentKeyPeriod {id}: {e}")))?;
        periods.insert(id.to_owned(), text);
    }
    let mut by_kid: HashMap<Kid, String> = HashMap::new();
    for rule in root
        .children()
        .filter(|n| is(n, CPIX_NS, "ContentKeyUsageRuleList"))
        .flat_map(|l| l.children().filter(|n| is(n, CPIX_NS, "ContentKeyUsageRule")))
    {
        let Some(kid) = rule.attribute("kid").and_then(|k| k.parse::<Kid>().ok()) else {
            continue;
        };
        for filter in rule.children().filter(|n| is(n, CPIX_NS, "KeyPeriodFilter")) {
            let id = filter.attribute("periodId").unwrap_or_default();
            let period = periods.get(id).ok_or_else(|| {
                err(format!(
                    "a KeyPeriodFilter names period {id:?}, which the document does not define"
                ))
            })?;
            let entry = by_kid.entry(kid).or_default();
            if !entry.split(", ").any(|p| p == period) {
                if !entry.is_empty() {
                    entry.push_str(", ");
                }
                entry.push_str(period);
            }
        }
    }
    Ok(by_kid)
}
