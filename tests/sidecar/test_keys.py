"""Reading public keys (SPKI PEM) without `cryptography`, and the key ring's refusals."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from entitlement_sidecar.errors import ConfigurationError
from entitlement_sidecar.sidecar.keyring import load_key
from entitlement_sidecar.sidecar.rsakey import DEMO_KEY_FINGERPRINTS, InvalidKey, parse_spki_pem

from .conftest import Signer


def _spki(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_modulus_and_exponent_match_cryptography(signer: Signer) -> None:
    """n and e read by our DER parser equal what `cryptography` reads."""
    numbers = signer.key.public_key().public_numbers()
    key = parse_spki_pem(signer.public_pem())
    assert (numbers.n, numbers.e) == (key.n, key.e)


def test_the_jwtio_demo_key_is_in_the_refused_fingerprints(demo_signer: Signer) -> None:
    """The SPKI SHA-256 of the jwt.io demo key is one of the refused fingerprints."""
    assert parse_spki_pem(demo_signer.public_pem()).fingerprint in DEMO_KEY_FINGERPRINTS


def test_the_facts_sheet_fingerprint_is_refused() -> None:
    """The fingerprint named in the AWS facts sheet is refused as well."""
    fingerprint = "d2f8d7917928bbe7a457bdbaa0f69221a49b0fbc867ea34b700e9e78364d57e8"
    assert fingerprint in DEMO_KEY_FINGERPRINTS


def test_small_rsa_keys_are_refused() -> None:
    """RSA moduli under 2048 bits are refused."""
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505
    with pytest.raises(InvalidKey, match="2048"):
        parse_spki_pem(_spki(small))


def test_non_rsa_keys_are_refused() -> None:
    """An EC key is not an rsaEncryption key."""
    with pytest.raises(InvalidKey, match="rsaEncryption"):
        parse_spki_pem(_spki(ec.generate_private_key(ec.SECP256R1()).public_key()))


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----\n",
        b"-----BEGIN PUBLIC KEY-----\n"
        + base64.b64encode(b"\x30\x03\x02\x01\x01")
        + b"\n-----END PUBLIC KEY-----\n",
        b"-----BEGIN RSA PUBLIC KEY-----\nMAA=\n-----END RSA PUBLIC KEY-----\n",
    ],
    ids=["empty", "bad-base64", "not-spki", "pkcs1-not-spki"],
)
def test_malformed_pem_is_refused(pem: bytes) -> None:
    """Anything that is not an SPKI PEM holding an RSA key raises InvalidKey."""
    with pytest.raises(InvalidKey):
        parse_spki_pem(pem)


def test_trailing_der_bytes_are_refused(signer: Signer) -> None:
    """Extra bytes after the SubjectPublicKeyInfo are refused (one canonical encoding only)."""
    der = signer.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem = (
        b"-----BEGIN PUBLIC KEY-----\n"
        + base64.b64encode(der + b"\x00")
        + b"\n-----END PUBLIC KEY-----"
    )
    with pytest.raises(InvalidKey):
        parse_spki_pem(pem)


def test_the_ring_picks_the_key_by_version(
    tmp_path: Path, signer: Signer, other_signer: Signer
) -> None:
    """`<version>.pem` is the key for that version, and only that one."""
    signer.write_ring(tmp_path, 1)
    other_signer.write_ring(tmp_path, 2)
    assert load_key(str(tmp_path), 2, None) == parse_spki_pem(other_signer.public_pem())


def test_a_missing_key_is_a_configuration_error(tmp_path: Path) -> None:
    """No file for the requested version names ENTITLEMENT_PUBLIC_KEYS."""
    with pytest.raises(ConfigurationError) as caught:
        load_key(str(tmp_path), 3, None)
    assert caught.value.variable == "ENTITLEMENT_PUBLIC_KEYS"
    assert "3.pem" in str(caught.value)


def test_the_demo_key_in_the_ring_is_a_configuration_error(
    tmp_path: Path, demo_signer: Signer
) -> None:
    """Someone putting the jwt.io demo key in the ring gets a refusal, not a working sidecar."""
    demo_signer.write_ring(tmp_path, 1)
    with pytest.raises(ConfigurationError, match="demo key"):
        load_key(str(tmp_path), 1, None)


def _without_null_parameters(der: bytes) -> bytes:
    """The same RSA key as DER SPKI with the (optional) NULL algorithm parameters left out."""
    oid = bytes.fromhex("06092a864886f70d010101")
    assert der[:2] == b"\x30\x82"
    assert (b"\x30\x0d" + oid + b"\x05\x00") in der
    inner = der[4:].replace(b"\x30\x0d" + oid + b"\x05\x00", b"\x30\x0b" + oid, 1)
    return b"\x30\x82" + len(inner).to_bytes(2, "big") + inner


def test_the_demo_key_without_null_parameters_is_still_refused(
    tmp_path: Path, demo_signer: Signer
) -> None:
    """Re-encoding the demo key without the NULL parameters does not change its fingerprint."""
    der = demo_signer.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem = (
        b"-----BEGIN PUBLIC KEY-----\n"
        + base64.b64encode(_without_null_parameters(der))
        + b"\n-----END PUBLIC KEY-----\n"
    )
    variant = parse_spki_pem(pem)
    assert (variant.n, variant.fingerprint) == (
        parse_spki_pem(demo_signer.public_pem()).n,
        parse_spki_pem(demo_signer.public_pem()).fingerprint,
    )
    (tmp_path / "1.pem").write_bytes(pem)
    with pytest.raises(ConfigurationError, match="demo key"):
        load_key(str(tmp_path), 1, None)


def test_a_fifo_in_the_ring_is_refused_without_hanging(tmp_path: Path) -> None:
    """A FIFO planted as `<version>.pem` is refused at once instead of blocking the reader."""
    os.mkfifo(tmp_path / "1.pem")
    with pytest.raises(ConfigurationError, match="not a regular file"):
        load_key(str(tmp_path), 1, None)


def test_a_directory_in_the_ring_is_refused(tmp_path: Path) -> None:
    """A directory named like a key is no key."""
    (tmp_path / "1.pem").mkdir()
    with pytest.raises(ConfigurationError, match=r"1\.pem"):
        load_key(str(tmp_path), 1, None)


def _rsa_spki(n: int, e: int) -> bytes:
    der = (
        rsa.RSAPublicNumbers(e, n)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return der


# A 16384-bit modulus (any odd number of that size parses: only its length matters here).
BIG_MODULUS = (1 << 16383) | 0xF00D


@pytest.mark.parametrize(
    ("n", "e", "message"),
    [
        (BIG_MODULUS, 65537, "16384 bits"),
        ((1 << 8192) | 1, 65537, "8193 bits"),
        (parse_spki_pem(Signer().public_pem()).n, (1 << 100) + 1, "exponent"),
        (parse_spki_pem(Signer().public_pem()).n, 2**32 + 1, "exponent"),
    ],
    ids=["16384-bit-modulus", "8193-bit-modulus", "100-bit-exponent", "exponent-2^32+1"],
)
def test_keys_whose_verification_is_unbounded_are_refused(n: int, e: int, message: str) -> None:
    """Moduli over 8192 bits and exponents of 2^32 or more are refused (seconds per verify)."""
    with pytest.raises(InvalidKey, match=message):
        parse_spki_pem(_rsa_spki(n, e))


def test_the_largest_accepted_key_still_parses() -> None:
    """An 8192-bit modulus with exponent 2^32-1 is within the caps."""
    key = parse_spki_pem(_rsa_spki((1 << 8191) | 0xF00D, 2**32 - 1))
    assert (key.n.bit_length(), key.e) == (8192, 2**32 - 1)


def _private_pem(signer: Signer, fmt: serialization.PrivateFormat) -> bytes:
    return signer.key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


@pytest.mark.parametrize(
    ("layout", "label"),
    [
        ("private-only", "RSA PRIVATE KEY"),
        ("private-then-public", "RSA PRIVATE KEY"),
        ("public-then-pkcs8-private", "PRIVATE KEY"),
    ],
    ids=["pkcs1-private", "private-before-public", "pkcs8-private-after-public"],
)
def test_a_private_key_in_the_ring_is_refused_as_a_leak(
    tmp_path: Path, signer: Signer, layout: str, label: str
) -> None:
    """A file holding a private key block is refused, even next to a valid public key block."""
    pkcs1 = _private_pem(signer, serialization.PrivateFormat.TraditionalOpenSSL)
    pkcs8 = _private_pem(signer, serialization.PrivateFormat.PKCS8)
    content = {
        "private-only": pkcs1,
        "private-then-public": pkcs1 + signer.public_pem(),
        "public-then-pkcs8-private": signer.public_pem() + pkcs8,
    }[layout]
    (tmp_path / "1.pem").write_bytes(content)
    with pytest.raises(ConfigurationError) as caught:
        load_key(str(tmp_path), 1, None)
    assert f"'-----BEGIN {label}-----'" in str(caught.value)
    assert "private key must never be shipped" in str(caught.value)


def test_a_pkcs1_public_key_gets_a_conversion_hint(signer: Signer) -> None:
    """An `RSA PUBLIC KEY` (PKCS#1) block is refused with the openssl command converting it."""
    pkcs1 = signer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    assert pkcs1.startswith(b"-----BEGIN RSA PUBLIC KEY-----")
    with pytest.raises(InvalidKey, match="openssl rsa -RSAPublicKey_in"):
        parse_spki_pem(pkcs1)


def test_two_public_keys_in_one_file_are_refused(signer: Signer, other_signer: Signer) -> None:
    """One key per file: two blocks would make the choice of key ambiguous."""
    with pytest.raises(InvalidKey, match="2 PEM blocks"):
        parse_spki_pem(signer.public_pem() + other_signer.public_pem())
