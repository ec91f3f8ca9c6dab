//! XML signatures on CPIX documents, verified by libxmlsec1 (through the
//! `xmlsec` binding, on libxml2): berth canonicalises nothing itself.
//!
//! Before libxmlsec1 sees a signature, berth holds it to what CPIX signs and
//! nothing more: an enveloped signature over the whole document (a reference
//! to `""`) as a child of the root, or one over a collection (`#<its id>`) as
//! that collection's child; one reference; only the enveloped-signature and
//! canonicalisation transforms (no XPath, no XSLT, nothing that fetches);
//! SHA-2 digests and RSA or ECDSA with SHA-2. Everything else is refused, by
//! name, so libxmlsec1 never resolves a URI or runs a transform berth did not
//! expect.

use std::sync::Mutex;

use time::OffsetDateTime;

use super::delivery::{CertificateInfo, check_certificate};

pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";

const CANONICALISATIONS: [&str; 6] = [
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    "http://www.w3.org/2006/12/xml-c14n11",
    "http://www.w3.org/2006/12/xml-c14n11#WithComments",
];
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const SIGNATURE_METHODS: [&str; 6] = [
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
];
const DIGEST_METHODS: [&str; 3] = [
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];

/// What a signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The whole document.
    Document,
    /// One collection (`ContentKeyList`, ...), by element name.
    Collection(String),
}

/// A signature that verified, and the certificate whose key it verified with.
#[derive(Debug, Clone)]
pub struct Verified {
    pub scope: Scope,
    pub signer: CertificateInfo,
}

type Node<'a, 'input> = roxmltree::Node<'a, 'input>;

fn dsig<'a, 'input>(node: Node<'a, 'input>, name: &str) -> Option<Node<'a, 'input>> {
    node.children()
        .find(|n| n.tag_name().namespace() == Some(DSIG_NS) && n.tag_name().name() == name)
}

fn algorithm<'a>(node: Option<Node<'a, '_>>, what: &str) -> Result<&'a str, String> {
    node.and_then(|n| n.attribute("Algorithm"))
        .ok_or_else(|| format!("a signature has no {what} algorithm"))
}

/// Checks one `ds:Signature` against what CPIX signs; returns its scope.
fn check_shape(signature: Node<'_, '_>) -> Result<Scope, String> {
    let parent = signature.parent_element().ok_or("a signature without a parent")?;
    let scope = if parent.parent().is_some_and(|p| p.is_root()) {
        Scope::Document
    } else if parent
        .parent_element()
        .is_some_and(|g| g.parent().is_some_and(|p| p.is_root()))
        && parent.tag_name().name().ends_with("List")
    {
        Scope::Collection(parent.tag_name().name().to_owned())
    } else {
        return Err(format!(
            "a signature inside {} is not where CPIX puts signatures (the root, or a collection)",
            parent.tag_name().name()
        ));
    };
    let info = dsig(signature, "SignedInfo").ok_or("a signature has no SignedInfo")?;
    let c14n = algorithm(dsig(info, "CanonicalizationMethod"), "canonicalisation")?;
    if !CANONICALISATIONS.contains(&c14n) {
        return Err(format!("the canonicalisation {c14n} is not supported"));
    }
    let method = algorithm(dsig(info, "SignatureMethod"), "signature")?;
    if !SIGNATURE_METHODS.contains(&method) {
        let weak = if method.ends_with("sha1") {
            " (SHA-1 is weak)"
        } else {
            ""
        };
        return Err(format!("the signature algorithm {method} is not supported{weak}"));
    }
    let references: Vec<_> = info
        .children()
        .filter(|n| n.tag_name().namespace() == Some(DSIG_NS) && n.tag_name().name() == "Reference")
        .collect();
    let [reference] = references.as_slice() else {
        return Err(format!(
            "a signature has {} references; CPIX signs one thing per signature",
            references.len()
        ));
    };
    let uri = reference.attribute("URI").unwrap_or_default();
    let expected = match &scope {
        Scope::Document => String::new(),
        Scope::Collection(name) => format!(
            "#{}",
            parent
                .attribute("id")
                .ok_or_else(|| format!("a signed {name} has no id attribute"))?
        ),
    };
    if uri != expected {
        return Err(format!(
            "a signature refers to {uri:?}, not to {expected:?}, the element it is in"
        ));
    }
    for transform in dsig(*reference, "Transforms")
        .into_iter()
        .flat_map(|t| t.children())
    {
        if !transform.is_element() {
            continue;
        }
        let alg = algorithm(Some(transform), "transform")?;
        if alg != ENVELOPED && !CANONICALISATIONS.contains(&alg) {
            return Err(format!("the transform {alg} is not supported"));
        }
    }
    let digest = algorithm(dsig(*reference, "DigestMethod"), "digest")?;
    if !DIGEST_METHODS.contains(&digest) {
        let weak = if digest.ends_with("sha1") {
            " (SHA-1 is weak)"
        } else {
            ""
        };
        return Err(format!("the digest algorithm {digest} is not supported{weak}"));
    }
    Ok(scope)
}

/// The certificate in a signature's `KeyInfo`, DER.
fn embedded_certificate(signature: Node<'_, '_>) -> Option<Vec<u8>> {
    let text = signature
        .descendants()
        .find(|n| n.tag_name().namespace() == Some(DSIG_NS) && n.tag_name().name() == "X509Certificate")?
        .text()?;
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    crate::ids::decode_b64_any(&compact)
}

/// libxml2 and libxmlsec1 keep global state: one verification at a time.
static XMLSEC: Mutex<()> = Mutex::new(());

/// Verifies every signature in the document. `raw` is the document as it
/// arrived (libxml2 reads its encoding); `doc` is the same document parsed.
/// With `trusted` signer certificates (DER), the whole document must carry a
/// signature by one of them. Without, every signature present must verify
/// with the certificate it carries. Returns the signatures that verified.
pub fn verify(
    doc: &roxmltree::Document<'_>,
    raw: &[u8],
    trusted: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<Vec<Verified>, String> {
    let signatures: Vec<_> = doc
        .descendants()
        .filter(|n| n.tag_name().namespace() == Some(DSIG_NS) && n.tag_name().name() == "Signature")
        .collect();
    let scopes = signatures
        .iter()
        .map(|s| check_shape(*s))
        .collect::<Result<Vec<_>, _>>()?;
    if !trusted.is_empty() && !scopes.contains(&Scope::Document) {
        return Err(
            "the document is not signed, and [keys] cpix_signers says it must be, by one of them".into(),
        );
    }
    if signatures.is_empty() {
        return Ok(Vec::new());
    }
    let mut candidates = Vec::new();
    for (signature, scope) in signatures.iter().zip(&scopes) {
        let embedded = embedded_certificate(*signature);
        let keys: Vec<Vec<u8>> = match (trusted.is_empty(), scope, embedded) {
            (false, Scope::Document, _) => trusted.to_vec(),
            (false, _, embedded) => trusted.iter().cloned().chain(embedded).collect(),
            (true, _, Some(embedded)) => vec![embedded],
            (true, _, None) => {
                return Err(
                    "the document is signed, but the signature carries no certificate and no [keys] cpix_signers are configured, so it cannot be checked".into(),
                );
            }
        };
        for key in &keys {
            check_certificate(key, now).map_err(|e| format!("signer: {e}"))?;
        }
        candidates.push(keys);
    }
    let _one_at_a_time = XMLSEC.lock().unwrap_or_else(|p| p.into_inner());
    let verified = verify_with_xmlsec(raw, &candidates, !trusted.is_empty())?;
    Ok(scopes
        .into_iter()
        .zip(verified)
        .map(|(scope, signer)| Verified { scope, signer })
        .collect())
}

/// libxmlsec1's verdict on each signature (in document order), with each
/// signature's candidate certificates; the certificate that verified it.
fn verify_with_xmlsec(
    raw: &[u8],
    candidates: &[Vec<Vec<u8>>],
    trusted: bool,
) -> Result<Vec<CertificateInfo>, String> {
    use xmlsec::{XmlSecDocumentExt, XmlSecKey, XmlSecKeyFormat, XmlSecSignatureContext};
    let options = libxml::parser::ParserOptions {
        recover: false,
        no_net: true,
        ..Default::default()
    };
    let doc = libxml::parser::Parser::default()
        .parse_string_with_options(raw, options)
        .map_err(|e| format!("libxml2 cannot read the document: {e:?}"))?;
    // CPIX's `id` attributes are IDs, which a "#id" reference needs; two
    // equal ids are refused (a signature could then cover either element).
    if let Err(e) = doc.specify_idattr("//*[@id]", "id", None) {
        let text = e.to_string();
        if text.contains("duplicate") {
            return Err(format!("the document has two elements with one id: {text}"));
        }
    }
    let root = doc.get_root_element().ok_or("the document has no root")?;
    let mut nodes = Vec::new();
    collect_signatures(&root, &mut nodes);
    if nodes.len() != candidates.len() {
        return Err("libxml2 and berth read a different number of signatures".into());
    }
    let mut signers = Vec::new();
    for (n, (node, keys)) in nodes.iter().zip(candidates).enumerate() {
        let mut verified = None;
        for der in keys {
            let key = XmlSecKey::from_memory(der, XmlSecKeyFormat::CertDer, None)
                .map_err(|e| format!("the signer certificate cannot be used: {e}"))?;
            let mut context = XmlSecSignatureContext::new();
            context.insert_key(key);
            if matches!(context.verify_node(node), Ok(true)) {
                verified = Some(der);
                break;
            }
        }
        let der = verified.ok_or_else(|| {
            format!(
                "signature {} does not verify{}: the document was changed after it was signed, or signed by another key",
                n + 1,
                if trusted { " with [keys] cpix_signers" } else { "" }
            )
        })?;
        signers.push(super::delivery::certificate_info(der).map_err(|e| e.to_string())?);
    }
    Ok(signers)
}

fn collect_signatures(node: &libxml::tree::Node, out: &mut Vec<libxml::tree::Node>) {
    let is_signature =
        node.get_name() == "Signature" && node.get_namespace().is_some_and(|ns| ns.get_href() == DSIG_NS);
    if is_signature {
        out.push(node.clone());
    }
    for child in node.get_child_elements() {
        collect_signatures(&child, out);
    }
}
