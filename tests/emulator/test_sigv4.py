"""SigV4 checked like an AWS endpoint when the scenario lists callers; permissive without them.

Requests are signed by botocore's own signer (boto3 clients, or `SigV4Auth` for hand-built
requests), never by the emulator's checker, so a bug on either side shows up as a mismatch.
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.emulator.request import Request
from entitlement_sidecar.emulator.sigv4 import MISMATCH, canonical_request, parse_authorization
from tests.emulator.helpers import GOOD, PAID, aws_error, error_code, send, signed

SECRET = "pod1-secret-key"
CALLERS: dict[str, Any] = {
    "callers": {
        "AKIDPOD1": {"secret": SECRET},
        "AKIDTEMP": {
            "secret": "temp-secret",
            "session_token": "token-123",
            "account": "210987654321",
        },
    },
    "products": {PAID: {"dimensions": ["users"]}},
}


@pytest.fixture
def strict(emulator: Emulator) -> Emulator:
    """The shared emulator with callers and secrets: HMACs are checked."""
    emulator.set_scenario(CALLERS)
    return emulator


def client_with(emu: Emulator, access_key_id: str, secret: str, token: str | None = None) -> Any:
    """A boto3 client holding exactly these credentials (no retries)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "meteringmarketplace",
        region_name="us-east-1",
        endpoint_url=emu.url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=Config(retries={"total_max_attempts": 1}, parameter_validation=False),
    )


def boto3_with(emu: Emulator, access_key_id: str, secret: str, token: str | None = None) -> str:
    """RegisterUsage signed with these credentials: 'ok' or the error code."""
    try:
        client_with(emu, access_key_id, secret, token).register_usage(
            ProductCode=PAID, PublicKeyVersion=1
        )
    except ClientError as exc:
        return error_code(exc)
    return "ok"


@pytest.mark.parametrize(
    ("access_key_id", "secret", "token", "expected"),
    [
        ("AKIDPOD1", SECRET, None, "ok"),
        ("AKIDPOD1", "a-wrong-secret", None, "InvalidSignatureException"),
        ("AKIDNOBODY", SECRET, None, "UnrecognizedClientException"),
        ("AKIDTEMP", "temp-secret", "token-123", "ok"),
        ("AKIDTEMP", "temp-secret", None, "UnrecognizedClientException"),
        ("AKIDTEMP", "temp-secret", "token-456", "UnrecognizedClientException"),
        ("AKIDPOD1", SECRET, "token-123", "UnrecognizedClientException"),
    ],
    ids=[
        "right-secret",
        "wrong-secret",
        "unknown-key",
        "session-token",
        "missing-session-token",
        "wrong-session-token",
        "token-for-long-term-key",
    ],
)
def test_callers_are_checked_like_aws(
    strict: Emulator, access_key_id: str, secret: str, token: str | None, expected: str
) -> None:
    """With callers, only the right secret (and session token) gets through."""
    assert boto3_with(strict, access_key_id, secret, token) == expected


def test_a_wrong_secret_gets_aws_message_and_403(strict: Emulator) -> None:
    """A broken signer sees AWS's words, a 403 and the error type header."""
    body = GOOD
    headers = signed(strict.url, body, access_key_id="AKIDPOD1", secret="wrong")
    status, headers, answer = send(strict, body, headers)
    assert (status, answer) == (403, {"__type": "InvalidSignatureException", "message": MISMATCH})
    assert headers["x-amzn-ErrorType"].split(":")[0] == "InvalidSignatureException"


def test_without_callers_any_secret_is_accepted(emulator: Emulator) -> None:
    """Permissive by default: the access key id names the caller, the HMAC is not checked."""
    assert boto3_with(emulator, "AKIDANY", "whatever-secret") == "ok"


def test_emulator_clients_sign_with_the_scenario_secret(strict: Emulator) -> None:
    """Emulator.client() and env() use the caller's secret and session token from the scenario."""
    client = strict.client(access_key_id="AKIDTEMP")
    assert client.register_usage(ProductCode=PAID, PublicKeyVersion=1)["Signature"]
    env = strict.env(access_key_id="AKIDTEMP")
    assert (env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"]) == ("temp-secret", "token-123")
    assert strict.records()["registrations"][0]["account"] == "210987654321"


@pytest.fixture
def signing_clock(monkeypatch: pytest.MonkeyPatch) -> list[timedelta]:
    """Shift the clock botocore's signer reads; append a timedelta to move it."""
    shift: list[timedelta] = [timedelta(0)]
    real = botocore.auth.get_current_datetime  # type: ignore[attr-defined]
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: real() + shift[-1])
    return shift


@pytest.mark.parametrize(
    ("skew", "expected"),
    [
        (timedelta(minutes=-4), "ok"),
        (timedelta(minutes=4), "ok"),
        (timedelta(minutes=-6), "Signature expired"),
        (timedelta(minutes=6), "Signature not yet current"),
        (timedelta(days=-400), "Signature expired"),
    ],
    ids=["4-min-old", "4-min-ahead", "6-min-old", "6-min-ahead", "a-year-old-replay"],
)
def test_signatures_older_or_newer_than_five_minutes_are_refused(
    strict: Emulator, signing_clock: list[timedelta], skew: timedelta, expected: str
) -> None:
    """A skewed client clock, or a captured request replayed later, is refused with AWS's words."""
    signing_clock.append(skew)
    headers = signed(strict.url, GOOD, access_key_id="AKIDPOD1", secret=SECRET)
    status, _, answer = send(strict, GOOD, headers)
    if expected == "ok":
        assert status == 200, answer
    else:
        assert (status, answer["__type"]) == (403, "InvalidSignatureException")
        assert answer["message"].startswith(expected)


def _good_headers(emu: Emulator, body: bytes = GOOD, **extra: str) -> dict[str, str]:
    return signed(emu.url, body, access_key_id="AKIDPOD1", secret=SECRET, headers=extra or None)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b.replace(b'"PublicKeyVersion": 1', b'"PublicKeyVersion": 2')),
        lambda h, b: ({**h, "X-Amz-Target": "AWSMPMeteringService.ResolveCustomer"}, b),
        lambda h, b: (
            {**h, "Authorization": h["Authorization"].replace("/us-east-1/", "/us-west-2/")},
            b,
        ),
        lambda h, b: ({**h, "X-Amz-Date": "20200101T000000Z"}, b),
        lambda h, b: ({**h, "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}, b),
        lambda h, b: (
            {**h, "X-Amz-Content-SHA256": hashlib.sha256(b + b" ").hexdigest()},
            b + b" ",
        ),
    ],
    ids=[
        "body-changed",
        "target-changed",
        "scope-region-changed",
        "date-changed",
        "unsigned-payload",
        "body-and-declared-hash-changed",
    ],
)
def test_a_request_changed_after_signing_is_refused(strict: Emulator, tamper: Any) -> None:
    """Any signed part changed in transit (body, target, scope, date, payload hash) is refused."""
    headers, body = tamper(_good_headers(strict), GOOD)
    status, _, answer = send(strict, body, headers)
    assert (status, answer["__type"]) == (403, "InvalidSignatureException"), answer


def test_an_identical_replay_inside_the_window_is_accepted(strict: Emulator) -> None:
    """Like AWS, SigV4 has no nonce: the same signed bytes replayed within 5 minutes pass."""
    headers = _good_headers(strict)
    assert [send(strict, GOOD, headers)[0] for _ in range(2)] == [200, 200]


def test_the_date_header_may_carry_the_time(strict: Emulator) -> None:
    """A client that signs with `Date` instead of `X-Amz-Date` is verified too."""
    request = AWSRequest(
        method="POST",
        url=strict.url + "/",
        data=GOOD,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "AWSMPMeteringService.RegisterUsage",
            "Date": "placeholder",
        },
    )
    SigV4Auth(Credentials("AKIDPOD1", SECRET), "aws-marketplace", "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    assert "X-Amz-Date" not in headers
    assert send(strict, GOOD, headers)[0] == 200


@pytest.mark.parametrize(
    ("signature", "expected"),
    [
        ("0" * 63, "IncompleteSignatureException"),
        ("G" * 64, "IncompleteSignatureException"),
        ("A" * 64, "IncompleteSignatureException"),
        ("0" * 64, "InvalidSignatureException"),
        ("0" * 64 + ", Signature=" + "1" * 64, "InvalidSignatureException"),
    ],
    ids=["63-hex", "not-hex", "uppercase-hex", "zeros", "second-signature-ignored"],
)
def test_garbled_signatures(strict: Emulator, signature: str, expected: str) -> None:
    """Signatures of the wrong shape are incomplete; well-formed wrong ones do not match."""
    headers = _good_headers(strict)
    prefix = headers["Authorization"].rsplit("Signature=", 1)[0]
    headers["Authorization"] = prefix + "Signature=" + signature
    status, _, answer = send(strict, GOOD, headers)
    assert (status, answer["__type"]) == (403, expected)


@pytest.mark.parametrize(
    ("drop", "expected"),
    [("X-Amz-Date", "IncompleteSignatureException")],
    ids=["no-date"],
)
def test_a_missing_date_is_incomplete(strict: Emulator, drop: str, expected: str) -> None:
    """Without X-Amz-Date or Date the signature cannot be checked: IncompleteSignature."""
    headers = _good_headers(strict)
    del headers[drop]
    assert send(strict, GOOD, headers)[2]["__type"] == expected


def test_a_huge_authorization_header_is_refused_and_the_server_keeps_serving(
    strict: Emulator,
) -> None:
    """A 60 KB Authorization header answers one short JSON error; the next client is served."""
    headers = _good_headers(strict)
    headers["Authorization"] = headers["Authorization"].replace(
        "SignedHeaders=", "SignedHeaders=" + "x-pad;" * 10_000
    )
    status, _, answer = send(strict, GOOD, headers)
    assert (status, answer["__type"]) == (403, "IncompleteSignatureException")
    assert len(answer["message"]) < 300
    assert send(strict, GOOD, _good_headers(strict))[0] == 200


def test_too_many_headers_are_refused_and_the_server_keeps_serving(strict: Emulator) -> None:
    """More than 100 headers (or one over 64 KB) is refused by the HTTP layer, not a crash."""
    parts = urlsplit(strict.url)
    padding = "".join(f"X-Pad-{i}: {i}\r\n" for i in range(150))
    with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=10) as raw:
        raw.sendall(f"POST / HTTP/1.1\r\nHost: x\r\n{padding}Content-Length: 0\r\n\r\n".encode())
        assert raw.recv(64).split(b" ")[1] == b"431"
    assert send(strict, GOOD, _good_headers(strict))[0] == 200


def test_canonical_request_matches_botocore(emulator: Emulator) -> None:
    """The checker rebuilds byte for byte the canonical request botocore signs, query and
    odd paths included."""
    url = emulator.url + "/a/./b/../c%20d//e/?b=2&a=1&a=0&sp=x%20y"
    request = AWSRequest(
        method="POST",
        url=url,
        data=b'{"x": 1}',
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Custom": "  two   spaces "},
    )
    signer = SigV4Auth(Credentials("AKIDPOD1", SECRET), "aws-marketplace", "us-east-1")
    signer.add_auth(request)
    auth = parse_authorization(request.headers["Authorization"])
    del request.headers["Authorization"]
    parts = urlsplit(url)
    sent = (*request.headers.items(), ("Host", parts.netloc))  # the HTTP client adds Host
    body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
    arrived = Request("POST", parts.path, parts.query, tuple(sent), body)
    assert canonical_request(arrived, auth.signed_headers) == signer.canonical_request(request)


def test_signatures_are_checked_for_every_operation(strict: Emulator) -> None:
    """MeterUsage, BatchMeterUsage and ResolveCustomer are verified the same way."""
    liar = client_with(strict, "AKIDPOD1", "nope")
    calls: list[Callable[[], object]] = [
        lambda: liar.meter_usage(
            ProductCode=PAID, Timestamp=datetime.now(UTC), UsageDimension="users"
        ),
        lambda: liar.batch_meter_usage(ProductCode=PAID, UsageRecords=[]),
        lambda: liar.resolve_customer(RegistrationToken="token-abc"),
    ]
    for call in calls:
        with aws_error("InvalidSignatureException"):
            call()
    assert strict.records()["requests"] == {}


def test_bodies_are_hashed_as_sent(strict: Emulator) -> None:
    """A body with non-ASCII bytes is hashed byte for byte (no re-encoding)."""
    body = json.dumps({"ProductCode": PAID, "PublicKeyVersion": 1, "Nonce": "é€"}).encode()
    status, _, answer = send(strict, body, _good_headers(strict, body))
    assert status == 200, answer
