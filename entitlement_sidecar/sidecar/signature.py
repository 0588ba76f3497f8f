"""Verify a RegisterUsage signature: a compact JWS, PS256 only, claims bound to our request.

Pure and standard-library only (`hashlib`, `hmac`, `base64`, `json`), so the register child and
the `check --verify` probe verify without importing `cryptography`. Security code: small on purpose.

- The header must say `"alg": "PS256"` exactly (`none`, HS*, RS*, ES*... are rejected), carry no
  `crit`, and no key material or key pointer (`jwk`, `jku`, `x5u`, `x5c`): the key is chosen only by
  the requested public key version, by the caller.
- RSASSA-PSS per RFC 8017 8.1.2 / 9.1.2: SHA-256, MGF1-SHA-256, salt length exactly 32.
- base64url is decoded strictly (alphabet, no padding, canonical trailing bits).
- Claims `productCode`, `publicKeyVersion`, `nonce` (camelCase or PascalCase) must equal what we
  asked for; a token carrying both spellings must give them the same value AND JSON type
  (`1`, `1.0` and `true` are three different claims, though Python calls them equal).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from entitlement_sidecar.record import Record
from entitlement_sidecar.sidecar.nonce import has_prefix
from entitlement_sidecar.sidecar.rsakey import RsaPublicKey, is_demo_key

TYPE_CHECKING = False  # keep `typing` out of the `check --verify` probe; mypy reads this block
if TYPE_CHECKING:
    from typing import Any

SIGNATURE_INVALID = "SignatureInvalid"
CLAIM_MISMATCH = "ClaimMismatch"

_HASH_LEN = 32
_SALT_LEN = 32
_MAX_TOKEN_CHARS = 65536  # a License Manager SignedToken is at least 4096 (the model)
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_FORBIDDEN_HEADERS = ("crit", "jwk", "jku", "x5u", "x5c")


class TokenRejected(Exception):
    """The token is not acceptable. `.code` is `SignatureInvalid` or `ClaimMismatch`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Expected(Record):
    """What the token must say. `nonce` is exact; `nonce_prefix` binds it to an instance only."""

    __slots__ = ("nonce", "nonce_prefix", "product_code", "public_key_version")

    def __init__(
        self,
        product_code: str,
        public_key_version: int,
        nonce: str | None = None,
        nonce_prefix: str | None = None,
    ) -> None:
        self.product_code = product_code
        self.public_key_version = public_key_version
        self.nonce = nonce
        self.nonce_prefix = nonce_prefix


class Claims(Record):
    """The three claims we check, normalised to one spelling, plus the whole payload."""

    __slots__ = ("nonce", "payload", "product_code", "public_key_version")

    def __init__(
        self, product_code: str, public_key_version: int, nonce: str, payload: dict[str, Any]
    ) -> None:
        self.product_code = product_code
        self.public_key_version = public_key_version
        self.nonce = nonce
        self.payload = payload


def b64url_decode(part: str) -> bytes:
    """Strict base64url without padding; rejects stray characters and non-canonical encodings."""
    if not part or len(part) % 4 == 1 or not _B64URL.issuperset(part):
        raise TokenRejected(SIGNATURE_INVALID, "malformed base64url segment")
    padded = part + "=" * (-len(part) % 4)
    try:
        raw = base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TokenRejected(SIGNATURE_INVALID, "malformed base64url segment") from exc
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != part:
        raise TokenRejected(SIGNATURE_INVALID, "non-canonical base64url segment")
    return raw


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise TokenRejected(SIGNATURE_INVALID, f"duplicate JSON member {key!r}")
        result[key] = value
    return result


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise TokenRejected(SIGNATURE_INVALID, f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise TokenRejected(SIGNATURE_INVALID, f"{what} is not a JSON object")
    return value


def _mgf1_sha256(seed: bytes, length: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return bytes(out[:length])


def pss_verify(key: RsaPublicKey, message: bytes, signature: bytes) -> bool:  # noqa: PLR0911
    """RSASSA-PSS-VERIFY (RFC 8017 8.1.2) with SHA-256, MGF1-SHA-256 and a 32-byte salt."""
    if len(signature) != key.size_bytes:
        return False
    s = int.from_bytes(signature, "big")
    if s >= key.n:
        return False
    em_bits = key.n.bit_length() - 1
    em_len = (em_bits + 7) // 8
    m = pow(s, key.e, key.n)
    if m.bit_length() > em_len * 8:
        return False
    em = m.to_bytes(em_len, "big")
    if em_len < _HASH_LEN + _SALT_LEN + 2 or em[-1] != 0xBC:
        return False
    db_len = em_len - _HASH_LEN - 1
    masked_db, digest = em[:db_len], em[db_len:-1]
    unused_bits = 8 * em_len - em_bits
    top_mask = (0xFF >> unused_bits) & 0xFF
    if masked_db[0] & ~top_mask & 0xFF:
        return False
    db = bytearray(a ^ b for a, b in zip(masked_db, _mgf1_sha256(digest, db_len), strict=True))
    db[0] &= top_mask
    pad_len = db_len - _SALT_LEN - 1
    if any(db[:pad_len]) or db[pad_len] != 0x01:
        return False
    salt = bytes(db[pad_len + 1 :])
    m_prime = b"\x00" * 8 + hashlib.sha256(message).digest() + salt
    return hmac.compare_digest(digest, hashlib.sha256(m_prime).digest())


def _claim(payload: dict[str, Any], camel: str) -> object:
    pascal = camel[0].upper() + camel[1:]
    values = [payload[name] for name in (camel, pascal) if name in payload]
    if not values:
        raise TokenRejected(CLAIM_MISMATCH, f"claim {camel!r} is missing")
    if len(values) == 2 and not same_json(values[0], values[1]):
        raise TokenRejected(CLAIM_MISMATCH, f"claims {camel!r} and {pascal!r} disagree")
    return values[0]


def same_json(a: object, b: object) -> bool:
    """Equal as JSON values: same type at every level, so `1`, `1.0` and `true` all differ."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return a == b


def _utf8(text: str) -> bytes:
    # compare_digest refuses non-ASCII str (TypeError); a signed claim may hold any character.
    return text.encode("utf-8", "surrogatepass")


def check_claims(payload: dict[str, Any], expected: Expected) -> Claims:
    """Compare productCode / publicKeyVersion / nonce (either spelling) with the request."""
    product_code = _claim(payload, "productCode")
    version = _claim(payload, "publicKeyVersion")
    nonce = _claim(payload, "nonce")
    if not isinstance(product_code, str) or product_code != expected.product_code:
        raise TokenRejected(CLAIM_MISMATCH, "productCode does not match the configured product")
    if isinstance(version, bool) or not isinstance(version, int):
        raise TokenRejected(CLAIM_MISMATCH, "publicKeyVersion is not an integer")
    if version != expected.public_key_version:
        raise TokenRejected(CLAIM_MISMATCH, "publicKeyVersion does not match the request")
    if not isinstance(nonce, str):
        raise TokenRejected(CLAIM_MISMATCH, "nonce is not a string")
    if expected.nonce is not None and not hmac.compare_digest(_utf8(nonce), _utf8(expected.nonce)):
        raise TokenRejected(CLAIM_MISMATCH, "nonce does not match the request")
    if expected.nonce_prefix is not None and not has_prefix(nonce, expected.nonce_prefix):
        raise TokenRejected(CLAIM_MISMATCH, "nonce is bound to another instance")
    return Claims(product_code, version, nonce, payload)


def verify(token: str, key: RsaPublicKey, expected: Expected) -> Claims:
    """Verify `token` with `key` and the expected claims; raise `TokenRejected` otherwise."""
    return check_claims(verified_payload(token, key), expected)


def verified_payload(token: str, key: RsaPublicKey) -> dict[str, Any]:
    """The payload of `token` once its PS256 signature verifies with `key`; `TokenRejected`."""
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS or not token.isascii():
        raise TokenRejected(SIGNATURE_INVALID, "token is not a compact JWS")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRejected(SIGNATURE_INVALID, "token is not a compact JWS (three parts)")
    header = _json_object(b64url_decode(parts[0]), "header")
    if header.get("alg") != "PS256":
        shown = repr(header.get("alg"))[:40]  # attacker-controlled: keep the status line short
        raise TokenRejected(SIGNATURE_INVALID, f"algorithm {shown} is not PS256")
    for name in _FORBIDDEN_HEADERS:
        if name in header:
            raise TokenRejected(SIGNATURE_INVALID, f"header {name!r} is not accepted")
    if is_demo_key(key):
        raise TokenRejected(SIGNATURE_INVALID, "the public demo key cannot verify anything")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    if not pss_verify(key, signing_input, b64url_decode(parts[2])):
        raise TokenRejected(SIGNATURE_INVALID, "signature does not verify with the configured key")
    return _json_object(b64url_decode(parts[1]), "payload")
