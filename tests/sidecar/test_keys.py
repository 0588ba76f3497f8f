"""Reading public keys (SPKI PEM) without `cryptography`, and the key ring's refusals."""

from __future__ import annotations

import base64
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
    assert load_key(str(tmp_path), 2) == parse_spki_pem(other_signer.public_pem())


def test_a_missing_key_is_a_configuration_error(tmp_path: Path) -> None:
    """No file for the requested version names ENTITLEMENT_PUBLIC_KEYS."""
    with pytest.raises(ConfigurationError) as caught:
        load_key(str(tmp_path), 3)
    assert caught.value.variable == "ENTITLEMENT_PUBLIC_KEYS"
    assert "3.pem" in str(caught.value)


def test_the_demo_key_in_the_ring_is_a_configuration_error(
    tmp_path: Path, demo_signer: Signer
) -> None:
    """Someone putting the jwt.io demo key in the ring gets a refusal, not a working sidecar."""
    demo_signer.write_ring(tmp_path, 1)
    with pytest.raises(ConfigurationError, match="demo key"):
        load_key(str(tmp_path), 1)


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
        load_key(str(tmp_path), 1)
