#!/usr/bin/python3
"""Makes DASH-IF CPIX documents the way a key provider does, with Python's
`cryptography` (not berth's code): content keys encrypted for one or more
recipients' certificates, and (with --sign) signed by the xmlsec1 command line.
Also makes test certificates (`cert` subcommand). The berth tests run it.

  make_cpix.py doc OUT --recipient CERT.pem [...] --key KID_UUID:KEY_HEX [...]
      [--content-id ID] [--prefix cpix] [--utf16] [--wrong-mac KID]
      [--periods] [--document-key-algorithm URI] [--no-keys] [--clear]
      [--sign KEY.pem,CERT.pem] [--sign-lists KEY.pem,CERT.pem]
      [--lists ID,ID...]
  make_cpix.py cert KEY_OUT CERT_OUT --cn NAME [--bits 3072] [--days 30]
      [--expired] [--future] [--sha1] [--ec]

Signatures are laid out as the CPIX schema and its reference implementation
lay them out: every ds:Signature is a child of the root CPIX element, after
the lists. --sign-lists signs lists by their ids (all of them, or --lists),
one signature each; --sign then signs the whole document, list signatures
included.
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import os
import subprocess
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID

AES256_CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
RSA_OAEP = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
HMAC_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512"


def b64(data):
    return base64.b64encode(data).decode()


def signature_template(uri, key_path):
    with open(key_path, "rb") as f:
        ec = b"EC PRIVATE KEY" in f.read()
    method = "ecdsa-sha256" if ec else "rsa-sha256"
    # The enveloped-signature transform only where the signature is inside
    # what it signs (the whole document).
    enveloped = '<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>' if uri == "" else ""
    return (
        '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>'
        '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
        f'<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#{method}"/>'
        f'<ds:Reference URI="{uri}"><ds:Transforms>'
        f'{enveloped}'
        '<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>'
        '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>'
        "<ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/>"
        "<ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>"
    )


LISTS = ["DeliveryDataList", "ContentKeyList", "ContentKeyPeriodList", "ContentKeyUsageRuleList"]


def xmlsec_sign(path, key_and_cert, node_xpath):
    ids = [arg for name in LISTS for arg in ("--id-attr:id", f"urn:dashif:org:cpix:{name}")]
    subprocess.run(
        ["xmlsec1", "--sign", "--privkey-pem", key_and_cert, *ids, "--node-xpath", node_xpath,
         "--output", path, path],
        check=True, capture_output=True,
    )


def document(args):
    p = args.prefix
    recipients = []
    for path in args.recipient:
        with open(path, "rb") as f:
            recipients.append(x509.load_pem_x509_certificate(f.read()))
    document_key, mac_key = os.urandom(32), os.urandom(64)
    oaep = asym_padding.OAEP(mgf=asym_padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    delivery = []
    for cert in recipients:
        der = cert.public_bytes(serialization.Encoding.DER)
        key = cert.public_key()
        delivery.append(
            f'<{p}:DeliveryData><{p}:DeliveryKey><ds:X509Data><ds:X509Certificate>{b64(der)}'
            f'</ds:X509Certificate></ds:X509Data></{p}:DeliveryKey>'
            f'<{p}:DocumentKey Algorithm="{args.document_key_algorithm}"><{p}:Data><pskc:Secret><pskc:EncryptedValue>'
            f'<enc:EncryptionMethod Algorithm="{RSA_OAEP}"/><enc:CipherData><enc:CipherValue>'
            f'{b64(key.encrypt(document_key, oaep))}</enc:CipherValue></enc:CipherData>'
            f'</pskc:EncryptedValue></pskc:Secret></{p}:Data></{p}:DocumentKey>'
            f'<{p}:MACMethod Algorithm="{HMAC_SHA512}"><{p}:Key>'
            f'<enc:EncryptionMethod Algorithm="{RSA_OAEP}"/><enc:CipherData><enc:CipherValue>'
            f'{b64(key.encrypt(mac_key, oaep))}</enc:CipherValue></enc:CipherData>'
            f'</{p}:Key></{p}:MACMethod></{p}:DeliveryData>\n'
        )
    keys = []
    for spec in [] if args.no_keys else args.key:
        kid, value = spec.split(":")
        value = bytes.fromhex(value)
        if args.clear:
            secret = f"<pskc:PlainValue>{b64(value)}</pskc:PlainValue>"
        else:
            iv = os.urandom(16)
            padder = padding.PKCS7(128).padder()
            padded = padder.update(value) + padder.finalize()
            encryptor = Cipher(algorithms.AES(document_key), modes.CBC(iv)).encryptor()
            cipher_value = iv + encryptor.update(padded) + encryptor.finalize()
            mac = hmac.new(mac_key, cipher_value, hashlib.sha512).digest()
            if kid == args.wrong_mac:
                mac = bytes([mac[0] ^ 1]) + mac[1:]
            secret = (
                f'<pskc:EncryptedValue><enc:EncryptionMethod Algorithm="{AES256_CBC}"/>'
                f"<enc:CipherData><enc:CipherValue>{b64(cipher_value)}</enc:CipherValue></enc:CipherData>"
                f"</pskc:EncryptedValue><pskc:ValueMAC>{b64(mac)}</pskc:ValueMAC>"
            )
        keys.append(
            f'  <{p}:ContentKey kid="{kid}" commonEncryptionScheme="cenc">\n'
            f"    <!-- {kid} -->\n    <{p}:Data><pskc:Secret>{secret}</pskc:Secret></{p}:Data>\n"
            f"  </{p}:ContentKey>\n"
        )
    periods = ""
    if args.periods:
        periods = (
            f'<{p}:ContentKeyPeriodList id="periods">'
            + "".join(f'<{p}:ContentKeyPeriod id="period{i}" index="{i}"/>' for i in range(len(keys)))
            + f'</{p}:ContentKeyPeriodList>\n<{p}:ContentKeyUsageRuleList id="usage-rules">'
            + "".join(
                f'<{p}:ContentKeyUsageRule kid="{spec.split(":")[0]}"><{p}:KeyPeriodFilter periodId="period{i}"/></{p}:ContentKeyUsageRule>'
                for i, spec in enumerate(args.key)
            )
            + f"</{p}:ContentKeyUsageRuleList>\n"
        )
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<{p}:CPIX xmlns:{p}="urn:dashif:org:cpix" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc" '
        f'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" xmlns:enc="http://www.w3.org/2001/04/xmlenc#" '
        f'contentId="{args.content_id}">\n'
        + ("" if args.clear else f'<{p}:DeliveryDataList id="delivery">\n{"".join(delivery)}</{p}:DeliveryDataList>\n')
        + (f'<{p}:ContentKeyList id="keys">\n{"".join(keys)}</{p}:ContentKeyList>\n' if keys else "")
        + periods
        + f"</{p}:CPIX>\n"
    )
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    signatures = 0
    if args.sign_lists:
        present = [i for i in ("delivery", "keys", "periods", "usage-rules") if f'id="{i}"' in text]
        for list_id in args.lists.split(",") if args.lists else present:
            signatures += 1
            add_signature(args.out, f"#{list_id}", args.sign_lists, signatures, p)
    if args.sign:
        signatures += 1
        add_signature(args.out, "", args.sign, signatures, p)
    if args.utf16:
        with open(args.out, encoding="utf-8") as f:
            text = f.read()
        # Transcoding after signing leaves the signature valid: it covers the
        # canonical form, which is UTF-8 whatever the file's encoding.
        with open(args.out, "wb") as f:
            f.write(text.replace('encoding="UTF-8"', 'encoding="UTF-16"', 1).encode("utf-16"))


def add_signature(path, uri, key_and_cert, n, p):
    """Appends the n-th root-level signature, over `uri`, and has xmlsec1 sign it."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = text.replace(f"</{p}:CPIX>", signature_template(uri, key_and_cert.split(",")[0]) + f"</{p}:CPIX>")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    xmlsec_sign(path, key_and_cert, f"/*/*[local-name()='Signature'][{n}]")


def certificate(args):
    if args.ec:
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=args.bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, args.cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = (now - datetime.timedelta(days=60), now - datetime.timedelta(days=30)) if args.expired \
        else (now + datetime.timedelta(days=2), now + datetime.timedelta(days=30)) if args.future \
        else (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=args.days))
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end))
    cert = builder.sign(key, hashes.SHA1() if args.sha1 else hashes.SHA256())
    with open(args.key_out, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    with open(args.cert_out, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    doc = sub.add_parser("doc")
    doc.add_argument("out")
    doc.add_argument("--recipient", action="append", default=[])
    doc.add_argument("--key", action="append", default=[])
    doc.add_argument("--content-id", default="movie-1")
    doc.add_argument("--prefix", default="cpix")
    doc.add_argument("--utf16", action="store_true")
    doc.add_argument("--wrong-mac")
    doc.add_argument("--periods", action="store_true")
    doc.add_argument("--document-key-algorithm", default=AES256_CBC)
    doc.add_argument("--no-keys", action="store_true")
    doc.add_argument("--clear", action="store_true")
    doc.add_argument("--sign")
    doc.add_argument("--sign-lists")
    doc.add_argument("--lists")
    cert = sub.add_parser("cert")
    cert.add_argument("key_out")
    cert.add_argument("cert_out")
    cert.add_argument("--cn", required=True)
    cert.add_argument("--bits", type=int, default=3072)
    cert.add_argument("--days", type=int, default=30)
    cert.add_argument("--expired", action="store_true")
    cert.add_argument("--sha1", action="store_true")
    cert.add_argument("--ec", action="store_true")
    cert.add_argument("--future", action="store_true")
    args = parser.parse_args()
    document(args) if args.command == "doc" else certificate(args)


if __name__ == "__main__":
    sys.exit(main())
