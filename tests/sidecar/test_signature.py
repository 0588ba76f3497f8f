"""The stdlib PS256 verifier against `cryptography`, and every token an attacker might try."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entitlement_sidecar.sidecar.rsakey import RsaPublicKey, parse_spki_pem
from entitlement_sidecar.sidecar.signature import (
    CLAIM_MISMATCH,
    SIGNATURE_INVALID,
    Expected,
    TokenRejected,
    b64url_decode,
    pss_verify,
    verify,
)

from .conftest import PRODUCT, Signer, b64url, claims

NONCE = "pod-uid-0001:abcdefghijklmnopqrstuvwxyz012345"
EXPECTED = Expected(PRODUCT, 1, nonce=NONCE)


def public(signer: Signer) -> RsaPublicKey:
    return parse_spki_pem(signer.public_pem())


def test_a_token_signed_by_the_configured_key_verifies(signer: Signer) -> None:
    """A PS256 token with matching claims verifies and its claims come back normalised."""
    result = verify(signer.token(claims(NONCE)), public(signer), EXPECTED)
    assert (result.product_code, result.public_key_version, result.nonce) == (PRODUCT, 1, NONCE)


def test_pascal_case_claims_are_accepted(signer: Signer) -> None:
    """The PascalCase spelling AWS's documentation prints is accepted too."""
    pascal = {"ProductCode": PRODUCT, "PublicKeyVersion": 1, "Nonce": NONCE, "iat": 1}
    assert verify(signer.token(pascal), public(signer), EXPECTED).nonce == NONCE


@pytest.mark.parametrize(
    ("camel", "pascal", "accepted"),
    [
        (1, 1, True),
        (1, 1.0, False),
        (1, True, False),
        (True, 1.0, False),
        ("1", 1, False),
        (1, 2, False),
    ],
    ids=["same-int", "int-vs-float", "int-vs-true", "true-vs-float", "string-vs-int", "values"],
)
def test_both_spellings_must_agree_in_value_and_json_type(
    signer: Signer, camel: object, pascal: object, accepted: bool
) -> None:
    """`publicKeyVersion` 1 next to `PublicKeyVersion` 1.0 or true is a mismatch, not a match."""
    token = signer.token({**claims(NONCE), "publicKeyVersion": camel, "PublicKeyVersion": pascal})
    if accepted:
        assert verify(token, public(signer), EXPECTED).public_key_version == 1
    else:
        with pytest.raises(TokenRejected) as caught:
            verify(token, public(signer), EXPECTED)
        assert caught.value.code == CLAIM_MISMATCH


@settings(max_examples=40, deadline=None)
@given(message=st.binary(max_size=512))
def test_our_pss_verify_agrees_with_cryptography(signer: Signer, message: bytes) -> None:
    """Any message signed by `cryptography` (PSS, SHA-256, salt 32) verifies with ours."""
    assert pss_verify(public(signer), message, signer.pss(message))


@settings(max_examples=40, deadline=None)
@given(message=st.binary(min_size=1, max_size=256), data=st.data())
def test_any_flipped_bit_is_rejected(signer: Signer, message: bytes, data: st.DataObject) -> None:
    """Flipping one bit of the message or of the signature makes verification fail."""
    signature = bytearray(signer.pss(message))
    target = data.draw(st.sampled_from(["message", "signature"]))
    if target == "message":
        index = data.draw(st.integers(0, len(message) - 1))
        tampered = bytearray(message)
        tampered[index] ^= 1 << data.draw(st.integers(0, 7))
        assert not pss_verify(public(signer), bytes(tampered), bytes(signature))
    else:
        index = data.draw(st.integers(0, len(signature) - 1))
        signature[index] ^= 1 << data.draw(st.integers(0, 7))
        assert not pss_verify(public(signer), message, bytes(signature))


@pytest.mark.parametrize("salt", [0, 20, 31, 33, 64], ids=lambda s: f"salt{s}")
def test_other_salt_lengths_are_rejected(signer: Signer, salt: int) -> None:
    """PS256 means a 32-byte salt exactly; a valid PSS signature with another salt is refused."""
    assert not pss_verify(public(signer), b"message", signer.pss(b"message", salt=salt))


def test_signature_of_wrong_length_or_too_large_is_rejected(signer: Signer) -> None:
    """A signature not of the modulus length, or >= n, is refused before any math."""
    key = public(signer)
    good = signer.pss(b"m")
    assert not pss_verify(key, b"m", good[1:])
    assert not pss_verify(key, b"m", b"\x00" + good)
    assert not pss_verify(key, b"m", key.n.to_bytes(key.size_bytes, "big"))


def _hs256(pem: bytes, header: dict[str, str], payload: dict[str, object]) -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(payload).encode())
    mac = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(mac)}"


def _unsigned(header: dict[str, object], payload: dict[str, object], sig: str = "") -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}.{sig}"


def _rs256(signer: Signer) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    head = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims(NONCE)).encode())
    sig = signer.key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{b64url(sig)}"


def _tamper_payload(signer: Signer) -> str:
    head, _body, sig = signer.token(claims(NONCE)).split(".")
    forged = b64url(json.dumps(claims(NONCE, product="prod-free")).encode())
    return f"{head}.{forged}.{sig}"


def _with_header(signer: Signer, extra: dict[str, object]) -> str:
    return signer.token(claims(NONCE), header={"alg": "PS256", "typ": "JWT", **extra})


ATTACKS: list[tuple[str, Callable[[Signer, Signer, Signer], str], str]] = [
    ("other-key", lambda s, o, d: o.token(claims(NONCE)), SIGNATURE_INVALID),
    ("demo-key", lambda s, o, d: d.token(claims(NONCE)), SIGNATURE_INVALID),
    ("alg-none", lambda s, o, d: _unsigned({"alg": "none"}, claims(NONCE)), SIGNATURE_INVALID),
    (
        "alg-none-with-sig",
        lambda s, o, d: _unsigned({"alg": "none"}, claims(NONCE), "AAAA"),
        SIGNATURE_INVALID,
    ),
    (
        "alg-missing",
        lambda s, o, d: _unsigned({"typ": "JWT"}, claims(NONCE), "AAAA"),
        SIGNATURE_INVALID,
    ),
    ("alg-lowercase", lambda s, o, d: _with_header(s, {"alg": "ps256"}), SIGNATURE_INVALID),
    (
        "hs256-keyed-with-public-pem",
        lambda s, o, d: _hs256(s.public_pem(), {"alg": "HS256", "typ": "JWT"}, claims(NONCE)),
        SIGNATURE_INVALID,
    ),
    ("rs256", lambda s, o, d: _rs256(s), SIGNATURE_INVALID),
    ("tampered-payload", lambda s, o, d: _tamper_payload(s), SIGNATURE_INVALID),
    (
        "crit-header",
        lambda s, o, d: _with_header(s, {"crit": ["b64"], "b64": False}),
        SIGNATURE_INVALID,
    ),
    ("embedded-jwk", lambda s, o, d: _with_header(s, {"jwk": {"kty": "RSA"}}), SIGNATURE_INVALID),
    (
        "jku-pointer",
        lambda s, o, d: _with_header(s, {"jku": "http://127.0.0.1/k"}),
        SIGNATURE_INVALID,
    ),
    ("x5c-chain", lambda s, o, d: _with_header(s, {"x5c": ["MIIB"]}), SIGNATURE_INVALID),
    ("nonce-mismatch", lambda s, o, d: s.token(claims("pod-uid-0001:other")), CLAIM_MISMATCH),
    (
        "token-from-another-pod",
        lambda s, o, d: s.token(claims("pod-uid-9999:" + "x" * 32)),
        CLAIM_MISMATCH,
    ),
    (
        "product-mismatch",
        lambda s, o, d: s.token(claims(NONCE, product="prod-free")),
        CLAIM_MISMATCH,
    ),
    ("version-mismatch", lambda s, o, d: s.token(claims(NONCE, version=2)), CLAIM_MISMATCH),
    ("non-ascii-nonce", lambda s, o, d: s.token(claims(NONCE[:-1] + "\u00e9")), CLAIM_MISMATCH),
    ("surrogate-nonce", lambda s, o, d: s.token(claims(NONCE[:-1] + "\ud800")), CLAIM_MISMATCH),
    (
        "version-as-string",
        lambda s, o, d: s.token({**claims(NONCE), "publicKeyVersion": "1"}),
        CLAIM_MISMATCH,
    ),
    (
        "version-as-bool",
        lambda s, o, d: s.token({**claims(NONCE), "publicKeyVersion": True}),
        CLAIM_MISMATCH,
    ),
    ("claims-missing", lambda s, o, d: s.token({"iat": 1}), CLAIM_MISMATCH),
    (
        "spellings-disagree",
        lambda s, o, d: s.token({**claims(NONCE), "ProductCode": "prod-free"}),
        CLAIM_MISMATCH,
    ),
    ("truncated", lambda s, o, d: s.token(claims(NONCE))[:-10], SIGNATURE_INVALID),
    (
        "two-parts",
        lambda s, o, d: ".".join(s.token(claims(NONCE)).split(".")[:2]),
        SIGNATURE_INVALID,
    ),
    ("four-parts", lambda s, o, d: s.token(claims(NONCE)) + ".AAAA", SIGNATURE_INVALID),
    ("padded-base64", lambda s, o, d: s.token(claims(NONCE)) + "==", SIGNATURE_INVALID),
    ("non-json-payload", lambda s, o, d: _signed_raw(s, b"not json"), SIGNATURE_INVALID),
    ("non-utf8-payload", lambda s, o, d: _signed_raw(s, b"\xff\xfe{}"), SIGNATURE_INVALID),
    ("payload-json-array", lambda s, o, d: _signed_raw(s, b"[1,2]"), SIGNATURE_INVALID),
    (
        "duplicate-claim",
        lambda s, o, d: _signed_raw(
            s,
            b'{"productCode":"prod-free","productCode":"prod-paid","publicKeyVersion":1,'
            + f'"nonce":"{NONCE}"}}'.encode(),
        ),
        SIGNATURE_INVALID,
    ),
    ("empty", lambda s, o, d: "", SIGNATURE_INVALID),
    ("non-ascii", lambda s, o, d: s.token(claims(NONCE)) + "\u00e9", SIGNATURE_INVALID),
]


def _signed_raw(signer: Signer, payload: bytes) -> str:
    head = b64url(json.dumps({"alg": "PS256"}).encode())
    body = b64url(payload)
    return f"{head}.{body}.{b64url(signer.pss(f'{head}.{body}'.encode()))}"


@pytest.mark.parametrize(
    ("make", "code"), [(m, c) for _, m, c in ATTACKS], ids=[name for name, _, _ in ATTACKS]
)
def test_adversarial_tokens_are_rejected_with_their_reason(
    signer: Signer,
    other_signer: Signer,
    demo_signer: Signer,
    make: Callable[[Signer, Signer, Signer], str],
    code: str,
) -> None:
    """Each crafted token is refused, with SignatureInvalid or ClaimMismatch as appropriate."""
    with pytest.raises(TokenRejected) as caught:
        verify(make(signer, other_signer, demo_signer), public(signer), EXPECTED)
    assert code == caught.value.code


def test_the_demo_key_verifies_nothing_even_when_handed_in(demo_signer: Signer) -> None:
    """Even if the demo public key reaches verify(), a token it signs is refused."""
    with pytest.raises(TokenRejected, match="demo key"):
        verify(demo_signer.token(claims(NONCE)), public(demo_signer), EXPECTED)


def test_nonce_prefix_binds_the_token_to_an_instance(signer: Signer) -> None:
    """With a prefix instead of an exact nonce, only this instance's nonces pass."""
    token = signer.token(claims(NONCE))
    assert verify(token, public(signer), Expected(PRODUCT, 1, nonce_prefix="pod-uid-0001:"))
    with pytest.raises(TokenRejected, match="another instance"):
        verify(token, public(signer), Expected(PRODUCT, 1, nonce_prefix="pod-uid-0002:"))


@pytest.mark.parametrize(
    ("nonce", "prefix"),
    [
        ("a:b:Zm9vYmFy", "a:"),
        ("pod-uid-0001:", "pod-uid-0001:"),
        ("pod-uid-00012:Zm9vYmFy", "pod-uid-0001:"),
    ],
    ids=["longer-instance-sharing-a-prefix", "empty-random-part", "instance-id-extended"],
)
def test_nonce_binding_is_exact(signer: Signer, nonce: str, prefix: str) -> None:
    """A nonce made for instance `a:b` is not bound to instance `a`, nor one with no random part."""
    token = signer.token(claims(nonce))
    with pytest.raises(TokenRejected, match="another instance"):
        verify(token, public(signer), Expected(PRODUCT, 1, nonce_prefix=prefix))


@pytest.mark.parametrize(
    "segment",
    ["", "A", "a+b/", "ab==", "YW=", "YR", "Zm9v!"],
    ids=["empty", "one-char", "std-alphabet", "padding", "bad-pad", "noncanonical", "garbage"],
)
def test_base64url_decoding_is_strict(segment: str) -> None:
    """Padding, the standard alphabet, stray characters and non-canonical tails are refused."""
    with pytest.raises(TokenRejected):
        b64url_decode(segment)


@settings(max_examples=300, deadline=None)
@given(
    token=st.one_of(
        st.text(max_size=300),
        st.lists(
            st.text(alphabet="ABCDEFabcdef0123456789-_", max_size=60), min_size=1, max_size=5
        ).map(".".join),
    )
)
def test_no_input_crashes_the_parser(signer: Signer, token: str) -> None:
    """Arbitrary strings only ever raise TokenRejected, never anything else."""
    with pytest.raises(TokenRejected):
        verify(token, public(signer), EXPECTED)
