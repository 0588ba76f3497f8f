"""The wire as a raw HTTP client sees it: auth, targets, bodies, limits, introspection routes."""

from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import urlsplit

import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.emulator.server import MAX_BODY
from tests.emulator.helpers import AUTH, GOOD, post, post_headers, send


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"Authorization": None}, 403, "MissingAuthenticationTokenException"),
        (
            {"Authorization": AUTH.replace("aws-marketplace", "execute-api")},
            403,
            "InvalidSignatureException",
        ),
        (
            {"Authorization": AUTH.split(",", maxsplit=1)[0]},
            403,
            "IncompleteSignatureException",
        ),
        ({"Authorization": AUTH.replace("a" * 64, "xyz")}, 403, "IncompleteSignatureException"),
        ({"Authorization": "Bearer abc"}, 403, "IncompleteSignatureException"),
        (
            {"X-Amz-Target": "AWSMPMeteringService.DeleteEverything"},
            400,
            "UnknownOperationException",
        ),
        ({"X-Amz-Target": None}, 400, "UnknownOperationException"),
        ({"Content-Type": "text/plain"}, 400, "SerializationException"),
    ],
    ids=[
        "missing-auth",
        "wrong-service",
        "incomplete-auth",
        "bad-signature-format",
        "not-sigv4",
        "unknown-target",
        "no-target",
        "wrong-content-type",
    ],
)
def test_header_errors(
    emulator: Emulator, headers: dict[str, str | None], status: int, code: str
) -> None:
    """Header problems answer the AWS error code and status a real endpoint gives."""
    got_status, body = post(emulator, headers=headers)
    assert (got_status, body["__type"]) == (status, code)
    assert body["message"]


def test_missing_auth_message(emulator: Emulator) -> None:
    """An unsigned request gets the exact message of a real endpoint."""
    assert (
        post(emulator, headers={"Authorization": None})[1]["message"]
        == "Missing Authentication Token"
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "SerializationException"),
        (b"[1, 2]", "SerializationException"),
        (b'{"ProductCode": 5, "PublicKeyVersion": 1}', "SerializationException"),
        (b'{"ProductCode": "prod-paid", "PublicKeyVersion": "1"}', "SerializationException"),
        (b'{"ProductCode": "prod-paid", "PublicKeyVersion": true}', "SerializationException"),
        (b'{"ProductCode": "prod-paid"}', "ValidationException"),
        (b"", "ValidationException"),
        (b"\xff\xfe", "SerializationException"),
        (b"[" * 100_000, "SerializationException"),
    ],
    ids=[
        "malformed",
        "array",
        "number-for-string",
        "string-for-int",
        "bool-for-int",
        "missing-required",
        "empty-body",
        "not-utf8",
        "nested-too-deeply",
    ],
)
def test_body_errors(emulator: Emulator, body: bytes, code: str) -> None:
    """Bodies that are not the operation's input answer a 400 with a JSON error, no stack trace."""
    status, answer = post(emulator, body)
    assert (status, answer["__type"]) == (400, code)
    assert "Traceback" not in answer["message"]


def test_oversized_body_is_refused(emulator: Emulator) -> None:
    """A body over the 1 MB cap answers 413 with a JSON error and closes the connection."""
    status, answer = post(emulator, b"{" + b" " * (MAX_BODY + 10) + b"}")
    assert (status, answer["__type"]) == (413, "RequestEntityTooLargeException")


def test_silent_client_does_not_hang_other_clients(emulator: Emulator) -> None:
    """A client that announces a body and never sends it does not block other requests."""
    parts = urlsplit(emulator.url)
    with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=5) as stuck:
        stuck.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        assert post(emulator)[0] == 200


def test_introspection_routes(emulator: Emulator) -> None:
    """GET records, POST reset and POST scenario work over plain HTTP without auth."""
    assert post(emulator)[0] == 200
    parts = urlsplit(emulator.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    connection.request("GET", "/_emulator/records")
    records = json.loads(connection.getresponse().read())
    connection.close()
    assert [r["product_code"] for r in records["registrations"]] == ["prod-paid"]
    assert records["requests"] == {"RegisterUsage": 1}
    assert post(emulator, b"", path="/_emulator/reset")[0] == 200
    assert emulator.records()["registrations"] == []
    swap = json.dumps({"products": {"prod-new": {}}}).encode()
    assert post(emulator, swap, path="/_emulator/scenario")[0] == 200
    assert post(emulator)[1]["__type"] == "InvalidProductCodeException"


def test_bad_runtime_scenario_is_refused(emulator: Emulator) -> None:
    """A bad scenario posted at runtime answers 400 naming the key and keeps the old one."""
    status, answer = post(
        emulator, b'{"products": {"p": {"entitled": "maybe"}}}', path="/_emulator/scenario"
    )
    assert (status, answer["__type"]) == (400, "ValidationException")
    assert "products.p.entitled" in answer["message"]
    assert post(emulator)[0] == 200


def test_a_deeply_nested_runtime_scenario_is_refused(emulator: Emulator) -> None:
    """A scenario nested deeper than the JSON parser goes answers 400, not a dropped connection."""
    status, answer = post(emulator, b"[" * 100_000, path="/_emulator/scenario")
    assert (status, answer["__type"]) == (400, "SerializationException")
    assert post(emulator)[0] == 200


SERVICE_NS, VALIDATE_NS = "com.amazon.coral.service", "com.amazon.coral.validate"


@pytest.mark.parametrize(
    ("headers", "body", "code", "namespace"),
    [
        (
            {"Authorization": None},
            GOOD,
            "MissingAuthenticationTokenException",
            "com.amazon.coral.service",
        ),
        ({}, b'{"ProductCode": "prod-paid"}', "ValidationException", VALIDATE_NS),
        ({}, b"{not json", "SerializationException", SERVICE_NS),
        (
            {},
            b'{"ProductCode": "prod-nope", "PublicKeyVersion": 1}',
            "InvalidProductCodeException",
            "com.amazonaws.marketplacemetering",
        ),
    ],
    ids=["auth", "validation", "serialization", "modeled"],
)
def test_errors_carry_x_amzn_errortype(
    emulator: Emulator, headers: dict[str, str | None], body: bytes, code: str, namespace: str
) -> None:
    """Every error names its code in the body's `__type` and in `x-amzn-ErrorType`, the header
    with AWS's coral namespace suffix that clients strip (shared errors: AWS's namespaces)."""
    status, answer_headers, answer = send(emulator, body, post_headers(headers))
    assert (status >= 400, answer["__type"]) == (True, code)
    assert (
        answer_headers["x-amzn-ErrorType"]
        == f"{code}:http://internal.amazon.com/coral/{namespace}/"
    )


def test_key_files_cannot_be_set_over_http(emulator: Emulator) -> None:
    """A scenario posted to the port may not point the emulator at files (container images
    listen on all interfaces): 400 naming the key, and the old scenario stays."""
    body = json.dumps({"key_files": {"1": "/etc/passwd"}}).encode()
    status, answer = post(emulator, body, path="/_emulator/scenario")
    assert (status, answer["__type"]) == (400, "ValidationException")
    assert "key_files" in answer["message"]
    assert post(emulator)[0] == 200
