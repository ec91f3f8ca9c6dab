#!/usr/bin/python3
"""The device side of FairPlay Streaming, for berth's tests: an SPC maker and
a CKC opener, written from the published layout (Apple's FPS Server SDK
documentation, and WebKit's BSD-licensed test key server under
LayoutTests/http/tests/media/fairplay/resources/keyserver/), with Python's
`cryptography`. None of berth's code is used, so a misunderstanding berth
and this script shared would have to be made twice.

    fairplay_client.py credentials --bits 1024|2048 [--key KEY.pem]
                                   --out-cert CERT.der --out-key KEY.pem [--days N]
    fairplay_client.py spc --cert CERT.der --ask HEX --asset ID --out SPC
                           --session SESSION.json [options, see --help]
    fairplay_client.py ckc --ckc CKC --session SESSION.json   (prints JSON)
"""

import argparse
import datetime
import hashlib
import json
import os
import struct
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID

TAG = {
    "sk_r1": 0x3D1A10B8BFFAC2EC,
    "sk_r1_integrity": 0xB349D4809E910687,
    "anti_replay_seed": 0x89C90F12204106B2,
    "r2": 0x71B5595AC1521133,
    "return_request": 0x19F9D4E5AB7609CB,
    "asset_id": 0x1BF7F53F5D5D5A1F,
    "transaction_id": 0x47AA7AD3440577DE,
    "protocol_versions_supported": 0x67B8FB79ECCE1A13,
    "protocol_version_used": 0x5D81BCBCC7F61703,
    "streaming_indicator": 0xABB0256A31843974,
    "capabilities": 0x9C02AF3253C07FB2,
    "encrypted_ck": 0x58B38165AF0E3D5A,
    "r1": 0xEA74C4645D5EFEE9,
    "content_key_duration": 0x47ACF6A418CD091A,
    "hdcp": 0x2E52F1530D8DDB4A,
}
STREAMING = {"airplay": 0xABB0256A31843974, "av-adapter": 0x5F9C8132B59F2FDE, "device": 0x1111111111111111}
HDCP = {0xEF72894CA7895B78: "NONE", 0x40791AC78BD5C571: "TYPE0", 0x285A0863BBA8E1D3: "TYPE1"}
KEY_TYPE = {
    0x1A4BDE7E: "lease",
    0x3DFE45A0: "rental",
    0x27B59BDE: "lease_and_rental",
    0x3DF2D9FB: "persistence",
    0x18F06048: "persistence_and_rental",
}


def aes_ecb(key, data, decrypt=False):
    c = Cipher(algorithms.AES(key), modes.ECB())
    op = c.decryptor() if decrypt else c.encryptor()
    return op.update(data) + op.finalize()


def aes_cbc(key, iv, data, decrypt=False):
    c = Cipher(algorithms.AES(key), modes.CBC(iv))
    op = c.decryptor() if decrypt else c.encryptor()
    return op.update(data) + op.finalize()


def d_hash(r2):
    """Apple's D function's hash of R2 (as WebKit's DFunction.py computes it)."""
    assert 0 < len(r2) < 56
    pad = bytearray(64)
    pad[: len(r2)] = r2
    pad[len(r2)] = 0x80
    words = [int.from_bytes(pad[4 * i : 4 * i + 4], "big") for i in range(14)]
    m = [sum(words[0:7]) % 2**32, sum(words[7:14]) % 2**32]
    for i in range(2):
        for _ in range(16):
            m[i] = m[i] >> 1 if m[i] & 1 else ((3 * m[i] + 1) % 2**32) % 813416437
    pad[56:60] = m[0].to_bytes(4, "little")
    pad[60:64] = m[1].to_bytes(4, "little")
    return hashlib.sha1(bytes(pad)).digest()[:16]


def tllv(tag, value, block_len=None):
    pad = (16 - len(value) % 16) % 16
    block_len = len(value) + pad if block_len is None else block_len
    return struct.pack(">QII", tag, block_len, len(value)) + value + os.urandom(pad)


def read_tllvs(payload):
    out = []
    at = 0
    while at < len(payload):
        tag, block_len, value_len = struct.unpack_from(">QII", payload, at)
        assert value_len <= block_len and at + 16 + block_len <= len(payload), "a TLLV runs past the payload"
        assert (16 + block_len) % 16 == 0, "a TLLV is not padded to whole blocks"
        out.append((tag, payload[at + 16 : at + 16 + value_len]))
        at += 16 + block_len
    return out


def credentials(args):
    if args.key:
        with open(args.key, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=args.bits)
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "berth test FPS certificate"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Content Provider"),
    ])
    now = datetime.datetime.now(datetime.timezone.utc)
    start = now + datetime.timedelta(days=args.start_days) if args.start_days else now - datetime.timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + datetime.timedelta(days=args.days))
        .sign(key, hashes.SHA256())
    )
    with open(args.out_cert, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.DER))
    with open(args.out_key, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))


def spc(args):
    with open(args.cert, "rb") as f:
        cert_der = f.read()
    public = x509.load_der_x509_certificate(cert_der).public_key()
    ask = bytes.fromhex(args.ask)
    bits = public.key_size
    version = args.version if args.version is not None else (1 if bits == 1024 else 2)
    digest = hashes.SHA1() if bits == 1024 else hashes.SHA256()

    sk, hu, r1, integrity = os.urandom(16), os.urandom(20), os.urandom(44), os.urandom(16)
    r2, seed, transaction = os.urandom(21), os.urandom(16), bytes.fromhex(args.transaction_id)
    dask = aes_ecb(ask, d_hash(r2))
    sk_r1_iv = os.urandom(16)
    sk_r1 = sk_r1_iv + aes_cbc(dask, sk_r1_iv, sk + hu + r1 + integrity)

    stated_integrity = bytes(b ^ 0xFF for b in integrity) if args.bad_integrity else integrity
    blocks = [
        tllv(TAG["sk_r1"], sk_r1),
        tllv(TAG["sk_r1_integrity"], stated_integrity),
        tllv(TAG["anti_replay_seed"], seed),
        tllv(TAG["r2"], r2),
        tllv(TAG["asset_id"], args.asset.encode()),
        tllv(TAG["transaction_id"], transaction),
        tllv(TAG["protocol_versions_supported"], struct.pack(">I", 1)),
        tllv(TAG["protocol_version_used"], struct.pack(">I", args.protocol_used)),
        tllv(TAG["capabilities"], int(args.caps, 16).to_bytes(16, "big")),
    ]
    if args.streaming:
        blocks.append(tllv(TAG["streaming_indicator"], STREAMING[args.streaming].to_bytes(8, "big")))
    returned = [TAG["transaction_id"], TAG["protocol_versions_supported"]]
    if args.unknown_tllv:
        blocks.append(tllv(0x0123456789ABCDEF, b"a block berth does not know"))
        returned.append(0x0123456789ABCDEF)
    if args.ask_back:
        returned.append(int(args.ask_back, 16))
    blocks.append(tllv(TAG["return_request"], b"".join(struct.pack(">Q", t) for t in returned)))
    asked = {f"{t:016x}": v.hex() for t, v in read_tllvs(b"".join(blocks)) if t in returned}
    if args.bad_length:
        blocks.append(tllv(TAG["transaction_id"] ^ 1, b"x" * 8, block_len=1 << 30))
    payload = b"".join(blocks)

    spck, iv = (bytes.fromhex(args.spck), bytes(16)) if args.spck else (os.urandom(16), os.urandom(16))
    if args.payload_out:  # for the fuzzer: the clear payload, and the key it goes under
        with open(args.payload_out, "wb") as f:
            f.write(payload)
    wrapped = public.encrypt(spck, padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None))
    cert_hash = hashlib.sha1(cert_der).digest()
    if args.wrong_hash:
        cert_hash = hashlib.sha1(cert_der + b"another").digest()
    if args.wrapped_out:
        with open(args.wrapped_out, "wb") as f:
            f.write(wrapped)
    body = struct.pack(">II", version, 0) + iv + wrapped + cert_hash
    body += struct.pack(">I", len(payload)) + aes_cbc(spck, iv, payload)
    with open(args.out, "wb") as f:
        f.write(body)
    with open(args.session, "w") as f:
        json.dump({
            "sk": sk.hex(), "r1": r1.hex(), "anti_replay_seed": seed.hex(),
            "returned": asked,
        }, f)


def ckc(args):
    with open(args.session) as f:
        session = json.load(f)
    with open(args.ckc, "rb") as f:
        data = f.read()
    version, reserved = struct.unpack_from(">II", data, 0)
    iv = data[8:24]
    (length,) = struct.unpack_from(">I", data, 24)
    encrypted = data[28:]
    assert reserved == 0 and length == len(encrypted) and length % 16 == 0, "a damaged CKC container"
    r1 = bytes.fromhex(session["r1"])
    ar_key = aes_ecb(hashlib.sha1(r1).digest()[:16], bytes.fromhex(session["anti_replay_seed"]))
    blocks = dict(read_tllvs(aes_cbc(ar_key, iv, encrypted, decrypt=True)))
    ck = blocks.pop(TAG["encrypted_ck"])
    out = {
        "version": version,
        "iv": ck[:16].hex(),
        "key": aes_ecb(bytes.fromhex(session["sk"]), ck[16:32], decrypt=True).hex(),
        "r1_matches": blocks.pop(TAG["r1"]) == r1,
        "duration": None,
        "hdcp": None,
    }
    if TAG["content_key_duration"] in blocks:
        lease, rental, kind, reserved = struct.unpack(">IIII", blocks.pop(TAG["content_key_duration"]))
        assert reserved == 0x86D34A3A, "the duration block's last word"
        out["duration"] = {"lease": lease, "rental": rental, "type": KEY_TYPE.get(kind, hex(kind))}
    if TAG["hdcp"] in blocks:
        (value,) = struct.unpack(">Q", blocks.pop(TAG["hdcp"]))
        out["hdcp"] = HDCP.get(value, hex(value))
    out["returned"] = {f"{t:016x}": v.hex() for t, v in blocks.items()}
    out["returned_as_asked"] = out["returned"] == session["returned"]
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("credentials")
    c.add_argument("--bits", type=int, default=1024)
    c.add_argument("--key")
    c.add_argument("--out-cert", required=True)
    c.add_argument("--out-key", required=True)
    c.add_argument("--days", type=int, default=3650)
    c.add_argument("--start-days", type=int, default=0)
    s = sub.add_parser("spc")
    s.add_argument("--cert", required=True)
    s.add_argument("--ask", required=True)
    s.add_argument("--asset", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--session", required=True)
    s.add_argument("--version", type=int)
    s.add_argument("--caps", default="0", help="capability flags, hex (1: HDCP, 2: offline key)")
    s.add_argument("--streaming", choices=sorted(STREAMING))
    s.add_argument("--transaction-id", default="0102030405060708")
    s.add_argument("--protocol-used", type=int, default=1)
    s.add_argument("--bad-integrity", action="store_true")
    s.add_argument("--wrong-hash", action="store_true")
    s.add_argument("--unknown-tllv", action="store_true")
    s.add_argument("--ask-back", help="a tag (hex) the return request asks for, present or not")
    s.add_argument("--bad-length", action="store_true", help="a TLLV whose block length runs past the payload")
    s.add_argument("--spck", help="the session key (hex) instead of a random one, and a zero IV")
    s.add_argument("--payload-out", help="also write the payload in the clear here")
    s.add_argument("--wrapped-out", help="also write the wrapped session key here")
    k = sub.add_parser("ckc")
    k.add_argument("--ckc", required=True)
    k.add_argument("--session", required=True)
    args = p.parse_args()
    {"credentials": credentials, "spc": spc, "ckc": ckc}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
