"""RSA public keys from SubjectPublicKeyInfo PEM, with the standard library only.

The seller bakes AWS Marketplace's public key into the image as an SPKI PEM (`-----BEGIN PUBLIC
KEY-----`). The register child and `check --verify` must read it without importing `cryptography`
(tens of MiB and a slow import in an exec probe), so this is a deliberately tiny, strict DER reader
that accepts exactly one shape: SEQUENCE { SEQUENCE { rsaEncryption OID, NULL? }, BIT STRING {
SEQUENCE { INTEGER n, INTEGER e } } }. Anything else is refused with `InvalidKey`. The modulus
(2048-8192 bits) and the public exponent (below 2^32) are capped, so one verification costs a few
milliseconds at most: a 16384-bit key with a huge exponent would take seconds per token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from entitlement_sidecar.record import Record

MIN_MODULUS_BITS = 2048
MAX_MODULUS_BITS = 8192
MAX_EXPONENT_BITS = 32  # AWS's keys, like nearly all RSA keys, use 65537
_RSA_ENCRYPTION_OID = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1
_PEM_BEGIN = "-----BEGIN PUBLIC KEY-----"
_PEM_END = "-----END PUBLIC KEY-----"
_PKCS1_BEGIN = "-----BEGIN RSA PUBLIC KEY-----"
_ANY_BEGIN = "-----BEGIN "

# Keys whose private half is public (the jwt.io RS256 demo keys that AWS and many samples print).
# A ring holding one of them would accept tokens anyone can forge, so they are refused outright.
DEMO_KEY_FINGERPRINTS = frozenset(
    {
        "d2f8d7917928bbe7a457bdbaa0f69221a49b0fbc867ea34b700e9e78364d57e8",
        "f56c8b01227f62ddbc16eb29a6ac0b310e276760a5e06302fa881a35146f6bc7",
        "37c2309b6c001277c1b3f534d48489b0d5ff9b1d82f1447b66b6d3a0a59d88b0",
    }
)


class InvalidKey(ValueError):
    """The bytes are not an acceptable RSA public key (one line, safe to print)."""


class RsaPublicKey(Record):
    """An RSA public key plus the SHA-256 of its canonical DER SPKI (its fingerprint)."""

    __slots__ = ("e", "fingerprint", "n")

    def __init__(self, n: int, e: int, fingerprint: str) -> None:
        self.n = n
        self.e = e
        self.fingerprint = fingerprint

    @property
    def size_bytes(self) -> int:
        return (self.n.bit_length() + 7) // 8


def _read_tlv(data: bytes, pos: int, tag: int) -> tuple[int, int]:
    """Read one DER element with the expected tag at `pos`; return (value start, value end)."""
    if pos + 2 > len(data) or data[pos] != tag:
        raise InvalidKey(f"expected DER tag 0x{tag:02x} at offset {pos}")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data) or data[pos] == 0:
            raise InvalidKey("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        if length < 0x80:
            raise InvalidKey("non-minimal DER length")
        pos += count
    end = pos + length
    if end > len(data):
        raise InvalidKey("truncated DER")
    return pos, end


def _read_positive_int(data: bytes, pos: int) -> tuple[int, int]:
    start, end = _read_tlv(data, pos, 0x02)
    body = data[start:end]
    if not body or body[0] & 0x80 or (len(body) > 1 and body[0] == 0 and not body[1] & 0x80):
        raise InvalidKey("RSA integers must be positive and minimally encoded")
    return int.from_bytes(body, "big"), end


def parse_spki_der(der: bytes) -> RsaPublicKey:
    """Parse a DER SubjectPublicKeyInfo holding an RSA key (rsaEncryption) of >= 2048 bits."""
    start, end = _read_tlv(der, 0, 0x30)
    if end != len(der):
        raise InvalidKey("trailing bytes after SubjectPublicKeyInfo")
    alg_start, alg_end = _read_tlv(der, start, 0x30)
    oid_start, oid_end = _read_tlv(der, alg_start, 0x06)
    if der[oid_start:oid_end] != _RSA_ENCRYPTION_OID:
        raise InvalidKey("not an rsaEncryption key")
    if oid_end != alg_end and der[oid_end:alg_end] != b"\x05\x00":
        raise InvalidKey("unexpected algorithm parameters")
    bits_start, bits_end = _read_tlv(der, alg_end, 0x03)
    if bits_end != end or bits_start >= bits_end or der[bits_start] != 0:
        raise InvalidKey("bad BIT STRING")
    key_start, key_end = _read_tlv(der, bits_start + 1, 0x30)
    if key_end != bits_end:
        raise InvalidKey("trailing bytes after RSAPublicKey")
    n, pos = _read_positive_int(der, key_start)
    e, pos = _read_positive_int(der, pos)
    if pos != key_end:
        raise InvalidKey("trailing bytes in RSAPublicKey")
    if not MIN_MODULUS_BITS <= n.bit_length() <= MAX_MODULUS_BITS:
        raise InvalidKey(
            f"RSA modulus has {n.bit_length()} bits; {MIN_MODULUS_BITS} to {MAX_MODULUS_BITS} "
            "are accepted"
        )
    if e < 3 or e % 2 == 0 or e.bit_length() > MAX_EXPONENT_BITS:
        raise InvalidKey(f"bad RSA public exponent (an odd number from 3 to 2^{MAX_EXPONENT_BITS})")
    return RsaPublicKey(n=n, e=e, fingerprint=hashlib.sha256(canonical_spki_der(n, e)).hexdigest())


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes((tag, size)) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + body


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def canonical_spki_der(n: int, e: int) -> bytes:
    """The DER SubjectPublicKeyInfo of (n, e) as OpenSSL writes it (rsaEncryption, NULL params).

    Fingerprints are taken over this form, not over the bytes given: the parser also accepts the
    encoding without the NULL parameters, and a demo key re-encoded that way must still be refused.
    """
    algorithm = _der(0x30, _der(0x06, _RSA_ENCRYPTION_OID) + b"\x05\x00")
    key = _der(0x30, _der_int(n) + _der_int(e))
    return _der(0x30, algorithm + _der(0x03, b"\x00" + key))


def _refuse_other_blocks(text: str) -> None:
    """`InvalidKey` for a private key anywhere in the file, a PKCS#1 key, or several blocks."""
    labels = []
    at = text.find(_ANY_BEGIN)
    while at >= 0:
        end = text.find("-----", at + len(_ANY_BEGIN))
        labels.append(text[at + len(_ANY_BEGIN) : end] if end >= 0 else "?")
        at = text.find(_ANY_BEGIN, at + 1)
    private = [label for label in labels if "PRIVATE" in label]
    if private:
        raise InvalidKey(
            f"holds a private key ('-----BEGIN {private[0]}-----'): a private key must never be "
            "shipped in an image or a ConfigMap; the ring takes only the public key AWS "
            "Marketplace issued (SPKI PEM), and this private key should be treated as leaked"
        )
    if labels == ["RSA PUBLIC KEY"]:
        raise InvalidKey(
            f"holds a PKCS#1 '{_PKCS1_BEGIN}' block; convert it to SPKI with "
            "`openssl rsa -RSAPublicKey_in -in FILE -pubout -out <version>.pem`"
        )
    if len(labels) > 1:
        raise InvalidKey(f"holds {len(labels)} PEM blocks; one public key per file")


def parse_spki_pem(pem: bytes | str) -> RsaPublicKey:
    """Parse the one `-----BEGIN PUBLIC KEY-----` block (SPKI PEM); text around it is ignored."""
    text = pem.decode("ascii", "replace") if isinstance(pem, bytes) else pem
    _refuse_other_blocks(text)
    begin = text.find(_PEM_BEGIN)
    end = text.find(_PEM_END, begin + 1)
    if begin < 0 or end < 0:
        raise InvalidKey("no '-----BEGIN PUBLIC KEY-----' block (SPKI PEM expected)")
    body = "".join(text[begin + len(_PEM_BEGIN) : end].split())
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidKey("PEM body is not valid base64") from exc
    return parse_spki_der(der)


def is_demo_key(key: RsaPublicKey) -> bool:
    """True for a key whose private half is published (jwt.io demo keys)."""
    return key.fingerprint in DEMO_KEY_FINGERPRINTS
