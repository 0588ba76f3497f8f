"""RegisterUsage: a real PS256 token, key versions, entitlement and request validation."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature

from entitlement_sidecar.emulator import Emulator
from tests.emulator.helpers import PAID, error_code, jws_part, loose_client, verify


def test_token_is_ps256_signed_by_the_published_key(emulator: Emulator) -> None:
    """The Signature is a compact JWS with the PS256 header that verifies with `<version>.pem`."""
    reply = emulator.client().register_usage(ProductCode=PAID, PublicKeyVersion=1, Nonce="n-1")
    token = reply["Signature"]
    assert jws_part(token, 0) == {"alg": "PS256", "typ": "JWT"}
    verify(token, (emulator.public_key_dir / "1.pem").read_bytes())
    assert "PublicKeyRotationTimestamp" not in reply


def test_claims_are_camel_case_and_match_the_request(emulator: Emulator) -> None:
    """Claims carry productCode, publicKeyVersion (a number), nonce and iat."""
    token = emulator.client().register_usage(ProductCode=PAID, PublicKeyVersion=1, Nonce="n-2")
    claims = jws_part(token["Signature"], 1)
    assert set(claims) == {"productCode", "publicKeyVersion", "nonce", "iat"}
    assert (claims["productCode"], claims["publicKeyVersion"], claims["nonce"]) == (PAID, 1, "n-2")
    assert isinstance(claims["iat"], int)


def test_pascal_case_switch(emulator: Emulator) -> None:
    """`claims_case: pascal` emits ProductCode, PublicKeyVersion and Nonce instead."""
    emulator.set_scenario({"claims_case": "pascal", "products": {PAID: {}}})
    token = emulator.client().register_usage(ProductCode=PAID, PublicKeyVersion=1, Nonce="n-3")
    claims = jws_part(token["Signature"], 1)
    assert set(claims) == {"ProductCode", "PublicKeyVersion", "Nonce", "iat"}


def test_each_key_version_signs_with_its_own_key(emulator: Emulator) -> None:
    """Version 2 tokens verify with 2.pem only; an expired version carries a rotation time."""
    emulator.set_scenario(
        {"key_versions": [1, 2], "expired_key_versions": [2], "products": {PAID: {}}}
    )
    reply = emulator.client().register_usage(ProductCode=PAID, PublicKeyVersion=2, Nonce="n")
    verify(reply["Signature"], (emulator.public_key_dir / "2.pem").read_bytes())
    with pytest.raises(InvalidSignature):
        verify(reply["Signature"], (emulator.public_key_dir / "1.pem").read_bytes())
    assert reply["PublicKeyRotationTimestamp"].year >= 2020
    assert emulator.records()["registrations"][0]["key_expired"] is True


def test_unlisted_key_tokens_do_not_verify(emulator: Emulator) -> None:
    """`sign_with_unlisted_key` signs with a key whose public half is not in the key dir."""
    emulator.set_scenario({"products": {"prod-forged": {"sign_with_unlisted_key": True}}})
    reply = emulator.client().register_usage(ProductCode="prod-forged", PublicKeyVersion=1)
    assert jws_part(reply["Signature"], 0) == {"alg": "PS256", "typ": "JWT"}
    assert sorted(p.name for p in emulator.public_key_dir.glob("*.pem")) == ["1.pem"]
    with pytest.raises(InvalidSignature):
        verify(reply["Signature"], (emulator.public_key_dir / "1.pem").read_bytes())


ONPREM = {"products": {"prod-onprem": {"error": "PlatformNotSupportedException"}}}


@pytest.mark.parametrize(
    ("scenario", "request_", "expected"),
    [
        (None, ("prod-unknown", 1, "us-east-1"), "InvalidProductCodeException"),
        (None, (PAID, 7, "us-east-1"), "InvalidPublicKeyVersionException"),
        (None, ("prod-lapsed", 1, "us-east-1"), "CustomerNotEntitledException"),
        (None, (PAID, 1, "eu-west-1"), "InvalidRegionException"),
        (ONPREM, ("prod-onprem", 1, "us-east-1"), "PlatformNotSupportedException"),
    ],
    ids=["unknown-product", "unknown-key-version", "not-entitled", "other-region", "product-error"],
)
def test_scenario_errors(
    emulator: Emulator,
    scenario: dict[str, object] | None,
    request_: tuple[str, int, str],
    expected: str,
) -> None:
    """Each scenario condition answers its modeled exception class."""
    product, version, region = request_
    if scenario is not None:
        emulator.set_scenario(scenario)
    client = emulator.client(region=region)
    with pytest.raises(getattr(client.exceptions, expected)):
        client.register_usage(ProductCode=product, PublicKeyVersion=version)
    assert emulator.records()["registrations"] == []


def test_only_the_first_call_of_a_pod_can_be_denied(emulator: Emulator) -> None:
    """Once a pod registered, it keeps succeeding after the buyer unsubscribes; new pods fail."""
    pod = emulator.client(access_key_id="AKIDPODA")
    pod.register_usage(ProductCode=PAID, PublicKeyVersion=1)
    emulator.set_scenario({"products": {PAID: {"entitled": False}}})
    assert pod.register_usage(ProductCode=PAID, PublicKeyVersion=1)["Signature"]
    other = emulator.client(access_key_id="AKIDPODB")
    with pytest.raises(other.exceptions.CustomerNotEntitledException):
        other.register_usage(ProductCode=PAID, PublicKeyVersion=1)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"ProductCode": "prod paid", "PublicKeyVersion": 1}, "regular expression"),
        ({"ProductCode": "p" * 256, "PublicKeyVersion": 1}, "less than or equal to 255"),
        ({"ProductCode": PAID, "PublicKeyVersion": 0}, "greater than or equal to 1"),
        ({"ProductCode": PAID, "PublicKeyVersion": 1, "Nonce": "n" * 256}, "nonce"),
        ({"PublicKeyVersion": 1}, "must not be null"),
    ],
    ids=["code-pattern", "code-length", "version-zero", "nonce-length", "missing-code"],
)
def test_request_validation(emulator: Emulator, params: dict[str, object], fragment: str) -> None:
    """Inputs botocore lets through are refused with ValidationException naming the rule."""
    client = loose_client(emulator)
    with pytest.raises(client.exceptions.ClientError) as caught:
        client.register_usage(**params)  # type: ignore[arg-type]
    assert error_code(caught.value) == "ValidationException"
    assert fragment in str(caught.value)
