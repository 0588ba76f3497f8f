"""The emulator's signing keys and the PS256 compact JWS that RegisterUsage returns.

One RSA key per public key version (generated at start, or read from `key_files`), plus one extra
"unlisted" key whose public half is never published: products marked `sign_with_unlisted_key`
get tokens a correct verifier must reject (the forged-token demo). Public halves are written as
`<version>.pem` (SPKI PEM) so a sidecar can use the directory as its key ring.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

HEADER = {"alg": "PS256", "typ": "JWT"}
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
UNLISTED = 0  # key slot of the unlisted key (real versions are >= 1)


def b64url(data: bytes) -> str:
    """Base64url without padding, as JWS uses."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    """The SPKI PEM of a private key's public half."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    """An RSA private key from a PEM file (ValueError when it is not one)."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return key


def generate_key() -> rsa.RSAPrivateKey:
    """A fresh RSA-2048 private key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sign_jws(key: rsa.RSAPrivateKey, claims: Mapping[str, object]) -> str:
    """A compact JWS `header.payload.signature`, PS256 with `key`."""
    signing_input = f"{b64url(_json(HEADER))}.{b64url(_json(dict(claims)))}"
    signature = key.sign(signing_input.encode(), PSS, hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


class KeyRing:
    """RSA keys by version; keys survive scenario swaps and resets, new versions are generated."""

    def __init__(self) -> None:
        self._keys: dict[int, rsa.RSAPrivateKey] = {}
        self._published: set[int] = set()

    def ensure(self, versions: Iterable[int], files: Mapping[int, Path]) -> None:
        """Make sure every version has a key; files win over generation."""
        for version, path in files.items():
            self._keys[version] = load_private_key(path)
        for version in versions:
            if version not in self._keys:
                self._keys[version] = generate_key()

    def write_public(self, directory: Path, versions: Iterable[int]) -> None:
        """Publish `<version>.pem` for exactly these versions (never the unlisted key)."""
        directory.mkdir(parents=True, exist_ok=True)
        wanted = set(versions)
        for stale in self._published - wanted:
            (directory / f"{stale}.pem").unlink(missing_ok=True)
        self._published = wanted
        for version in wanted:
            target = directory / f"{version}.pem"
            temporary = directory / f".{version}.pem.tmp"
            temporary.write_bytes(public_pem(self._keys[version]))
            os.replace(temporary, target)

    def sign(self, version: int, claims: Mapping[str, object]) -> str:
        """A compact JWS `header.payload.signature` signed PS256 with the version's key."""
        if version == UNLISTED and UNLISTED not in self._keys:  # made on first use only
            self._keys.setdefault(UNLISTED, generate_key())
        return sign_jws(self._keys[version], claims)


def claims(
    case: str, product_code: str, version: int, nonce: str | None, iat: int
) -> dict[str, object]:
    """RegisterUsage token claims in camelCase (what the service sends) or PascalCase (its docs)."""
    names = ("productCode", "publicKeyVersion", "nonce")
    if case == "pascal":
        names = ("ProductCode", "PublicKeyVersion", "Nonce")
    body: dict[str, object] = {names[0]: product_code, names[1]: version}
    if nonce is not None:
        body[names[2]] = nonce
    body["iat"] = iat
    return body
