//! XML signatures on CPIX documents, verified by libxmlsec1 (through the
//! `xmlsec` binding, on libxml2): berth canonicalises nothing itself.
//!
//! Before libxmlsec1 sees a signature, berth holds it to what CPIX signs and
//! nothing more. As the CPIX schema lays them out, every `ds:Signature` is a
//! child of the root: over the whole document (a reference to `""`), or over
//! one of the root's lists (`DeliveryDataList`, `ContentKeyList`, ...) by its
//! id (`#<id>`); each with one reference; only the enveloped-signature and
//! canonicalisation transforms (no XPath, no XSLT, nothing that fetches);
//! SHA-2 digests and RSA or ECDSA with SHA-2. Everything else is refused, by
//! name, so libxmlsec1 never resolves a URI or runs a transform berth did not
//! expect.
//!
//! One document: libxml2 is given the very text berth's reader parsed (UTF-8,
//! its declared encoding checked and taken out by the caller), and before any
//! signature counts, the two trees are compared element by element (names,
//! namespaces, attributes, text). The signatures libxml2 verifies are thus the
//! ones berth's reader sees, in the same order, over the elements it reads.

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
    /// One list, a child of the root, by its `id`.
    Collection { element: String, id: String },
}

/// Why a document's signatures are not accepted: each refusal refuses the
/// whole document, so callers report it and never branch on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SignatureRefused(pub String);

impl From<String> for SignatureRefused {
    fn from(why: String) -> SignatureRefused {
        SignatureRefused(why)
    }
}

impl From<&str> for SignatureRefused {
    fn from(why: &str) -> SignatureRefused {
        SignatureRefused(why.to_owned())
    }
}

/// A signature that verified, and the certificate whose key it verified with.
#[derive(Debug, Clone)]
pub struct Verified {
    pub scope: Scope,
    pub signer: CertificateInfo,
    /// The signer is one of the trusted signers (`[keys] cpix_signers`).
    pub trusted: bool,
}

type Node<'a, 'input> = roxmltree::Node<'a, 'input>;

fn dsig<'a, 'input>(node: Node<'a, 'input>, name: &str) -> Option<Node<'a, 'input>> {
    node.children()
        .find(|n| n.tag_name().namespace() == Some(DSIG_NS) && n.tag_name().name() == name)
}

fn algorithm<'a>(node: Option<Node<'a, '_>>, what: &str) -> Result<&'a str, SignatureRefused> {
    node.and_then(|n| n.attribute("Algorithm"))
        .ok_or_else(|| format!("a signature has no {what} algorithm").into())
}

/// Checks one `ds:Signature` against what CPIX signs; returns its scope.
fn check_shape(signature: Node<'_, '_>) -> Result<Scope, SignatureRefused> {
    let parent = signature.parent_element().ok_or("a signature without a parent")?;
    if !parent.parent().is_some_and(|p| p.is_root()) {
        return Err(format!(
            "a signature inside {} is not where CPIX puts signatures (children of the root CPIX element, referring to what they sign)",
            parent.tag_name().name()
        ).into());
    }
    let info = dsig(signature, "SignedInfo").ok_or("a signature has no SignedInfo")?;
    let c14n = algorithm(dsig(info, "CanonicalizationMethod"), "canonicalisation")?;
    if !CANONICALISATIONS.contains(&c14n) {
        return Err(format!("the canonicalisation {c14n} is not supported").into());
    }
    let method = algorithm(dsig(info, "SignatureMethod"), "signature")?;
    if !SIGNATURE_METHODS.contains(&method) {
        let weak = if method.ends_with("sha1") {
            " (SHA-1 is weak)"
        } else {
            ""
        };
        return Err(format!("the signature algorithm {method} is not supported{weak}").into());
    }
    let references: Vec<_> = info
        .children()
        .filter(|n| n.tag_name().namespace() == Some(DSIG_NS) && n.tag_name().name() == "Reference")
        .collect();
    let [reference] = references.as_slice() else {
        return Err(format!(
            "a signature has {} references; CPIX signs one thing per signature",
            references.len()
        )
        .into());
    };
    let uri = reference
        .attribute("URI")
        .ok_or("a signature's reference has no URI (CPIX signs \"\" or \"#<list id>\")")?;
    let scope = match uri.strip_prefix('#') {
        None if uri.is_empty() => Scope::Document,
        None => return Err(format!("a signature refers to {uri:?}, outside the document").into()),
        Some(id) => {
            let target = parent
                .children()
                .find(|n| n.is_element() && n.attribute("id") == Some(id))
                .filter(|n| n.tag_name().namespace() == parent.tag_name().namespace())
                .filter(|n| n.tag_name().name().ends_with("List"))
                .ok_or_else(|| {
                    format!(
                        "a signature refers to {uri:?}, which is not a list of the CPIX element (CPIX signs the document or its lists)"
                    )
                })?;
            Scope::Collection {
                element: target.tag_name().name().to_owned(),
                id: id.to_owned(),
            }
        }
    };
    for transform in dsig(*reference, "Transforms")
        .into_iter()
        .flat_map(|t| t.children())
    {
        if !transform.is_element() {
            continue;
        }
        let alg = algorithm(Some(transform), "transform")?;
        if alg != ENVELOPED && !CANONICALISATIONS.contains(&alg) {
            return Err(format!("the transform {alg} is not supported").into());
        }
    }
    let digest = algorithm(dsig(*reference, "DigestMethod"), "digest")?;
    if !DIGEST_METHODS.contains(&digest) {
        let weak = if digest.ends_with("sha1") {
            " (SHA-1 is weak)"
        } else {
            ""
        };
        return Err(format!("the digest algorithm {digest} is not supported{weak}").into());
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

/// Every attribute named `id` (in any namespace) is unique and has no white
/// space: a `#id` reference then names one element, the same for berth's
/// reader and for libxml2.
fn check_ids(doc: &roxmltree::Document<'_>) -> Result<bool, SignatureRefused> {
    let mut seen = std::collections::HashSet::new();
    for attribute in doc
        .descendants()
        .flat_map(|n| n.attributes())
        .filter(|a| a.name() == "id")
    {
        let id = attribute.value();
        if id.is_empty() || id.chars().any(char::is_whitespace) {
            return Err(format!(
                "the id {:?} is empty or holds white space, which readers may trim differently",
                id.chars().take(40).collect::<String>()
            )
            .into());
        }
        if !seen.insert(id) {
            return Err(format!(
                "two elements have the id {:?} (a signature could then cover either)",
                id.chars().take(40).collect::<String>()
            )
            .into());
        }
    }
    Ok(!seen.is_empty())
}

/// Verifies every signature in the document. `text` is exactly the text `doc`
/// was parsed from (UTF-8, no encoding declared); libxml2 parses it again and
/// must see the same tree. Each signature is verified with the trusted signer
/// certificates (DER) and the certificate it carries, and every one must
/// verify; which of them came from a trusted signer is for the caller to
/// weigh. Returns the signatures, in document order.
pub fn verify(
    doc: &roxmltree::Document<'_>,
    text: &str,
    trusted: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<Vec<Verified>, SignatureRefused> {
    let has_ids = check_ids(doc)?;
    let signatures: Vec<_> = doc
        .descendants()
        .filter(|n| n.tag_name().namespace() == Some(DSIG_NS) && n.tag_name().name() == "Signature")
        .collect();
    let scopes = signatures
        .iter()
        .map(|s| check_shape(*s))
        .collect::<Result<Vec<_>, _>>()?;
    if signatures.is_empty() {
        return Ok(Vec::new());
    }
    let mut candidates = Vec::new();
    for signature in &signatures {
        let keys: Vec<Vec<u8>> = trusted
            .iter()
            .cloned()
            .chain(embedded_certificate(*signature))
            .collect();
        if keys.is_empty() {
            return Err(
                "the document is signed, but the signature carries no certificate and no [keys] cpix_signers are configured, so it cannot be checked".into(),
            );
        }
        for key in &keys {
            check_certificate(key, now).map_err(|e| format!("signer: {e}"))?;
        }
        candidates.push(keys);
    }
    let _one_at_a_time = XMLSEC.lock().unwrap_or_else(|p| p.into_inner());
    let signers = verify_with_xmlsec(doc, text, has_ids, &candidates)?;
    scopes
        .into_iter()
        .zip(signers)
        .map(|(scope, der)| {
            Ok(Verified {
                scope,
                trusted: trusted.contains(der),
                signer: super::delivery::certificate_info(der).map_err(|e| e.to_string())?,
            })
        })
        .collect()
}

/// libxmlsec1's verdict on each signature (in document order), with each
/// signature's candidate certificates; the certificate that verified it.
fn verify_with_xmlsec<'c>(
    ours: &roxmltree::Document<'_>,
    text: &str,
    has_ids: bool,
    candidates: &'c [Vec<Vec<u8>>],
) -> Result<Vec<&'c Vec<u8>>, SignatureRefused> {
    use xmlsec::{XmlSecDocumentExt, XmlSecKey, XmlSecKeyFormat, XmlSecSignatureContext};
    let options = libxml::parser::ParserOptions {
        recover: false,
        no_net: true,
        no_def_dtd: true,
        // The text is UTF-8 whatever a declaration said (the caller took it out).
        encoding: Some("UTF-8"),
        ignore_enc: true,
        ..Default::default()
    };
    let doc = libxml::parser::Parser::default()
        .parse_string_with_options(text, options)
        .map_err(|e| format!("libxml2 cannot read the document: {e:?}"))?;
    let root = doc.get_root_element().ok_or("the document has no root")?;
    if !same_element(ours.root_element(), &root) {
        return Err("libxml2 and berth read the document differently; nothing is trusted".into());
    }
    // CPIX's `id` attributes are IDs, which a "#id" reference needs. berth has
    // checked they are unique; libxml2 must find them so too.
    if has_ids && let Err(e) = doc.specify_idattr("//*[@id]", "id", None) {
        return Err(format!("the document's ids cannot be used: {e}").into());
    }
    let mut nodes = Vec::new();
    collect_signatures(&root, &mut nodes);
    // The trees are the same, so this holds; it is checked all the same, as
    // signatures and their candidates are paired by position.
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
        signers.push(verified.ok_or_else(|| {
            format!(
                "signature {} does not verify: the document was changed after it was signed, or signed by another key",
                n + 1
            )
        })?);
    }
    Ok(signers)
}

/// Whether berth's reader and libxml2 hold the same element: namespace, name,
/// attributes (namespace, name, value), the text directly in it (text and
/// CDATA, comments left out) and, in order, the same child elements.
fn same_element(ours: Node<'_, '_>, theirs: &libxml::tree::Node) -> bool {
    use libxml::tree::NodeType;
    let namespace = theirs.get_namespace().map(|ns| ns.get_href());
    if ours.tag_name().name() != theirs.get_name() || ours.tag_name().namespace() != namespace.as_deref() {
        return false;
    }
    let mut our_attributes: Vec<(Option<&str>, &str, &str)> = ours
        .attributes()
        .map(|a| (a.namespace(), a.name(), a.value()))
        .collect();
    let their_properties = theirs.get_properties_ns();
    let mut their_attributes: Vec<(Option<String>, &str, &str)> = their_properties
        .iter()
        .map(|((name, ns), value)| (ns.as_ref().map(|n| n.get_href()), name.as_str(), value.as_str()))
        .collect();
    our_attributes.sort_unstable();
    their_attributes.sort_unstable();
    if our_attributes.len() != their_attributes.len()
        || our_attributes
            .iter()
            .zip(&their_attributes)
            .any(|(a, b)| a.0 != b.0.as_deref() || a.1 != b.1 || a.2 != b.2)
    {
        return false;
    }
    let our_text: String = ours
        .children()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    let their_children = theirs.get_child_nodes();
    let their_text: String = their_children
        .iter()
        .filter(|n| {
            matches!(
                n.get_type(),
                Some(NodeType::TextNode | NodeType::CDataSectionNode)
            )
        })
        .map(libxml::tree::Node::get_content)
        .collect();
    if our_text != their_text {
        return false;
    }
    let our_elements: Vec<_> = ours.children().filter(|n| n.is_element()).collect();
    let their_elements = theirs.get_child_elements();
    our_elements.len() == their_elements.len()
        && our_elements
            .into_iter()
            .zip(&their_elements)
            .all(|(a, b)| same_element(a, b))
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
