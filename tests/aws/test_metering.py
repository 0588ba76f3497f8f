"""The boto3 boundary: validation before sending, and every failure mapped to our error tree.

These tests talk real HTTP to a scripted stdlib server (one canned answer per test) so that the
mapping from what botocore raises to Transient/Permanent is checked against botocore itself. The
full Metering semantics are tested against the emulator in tests/emulator and tests/sidecar.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from entitlement_sidecar.aws import metering
from entitlement_sidecar.aws.metering import Allocation, MeterRequest, format_quantity
from entitlement_sidecar.errors import (
    ConfigurationError,
    PermanentError,
    TransientError,
    classify,
)


class Canned:
    """What the scripted server answers: status, content type and body."""

    status = 200
    content_type = "application/x-amz-json-1.1"
    body = b"{}"
    requests: list[dict[str, object]] = []  # noqa: RUF012 - reset per test by the fixture


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        payload = json.loads(self.rfile.read(length) or b"{}")
        Canned.requests.append({"target": self.headers.get("X-Amz-Target"), "body": payload})
        self.send_response(Canned.status)
        self.send_header("Content-Type", Canned.content_type)
        self.send_header("Content-Length", str(len(Canned.body)))
        self.end_headers()
        self.wfile.write(Canned.body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    Canned.status, Canned.content_type, Canned.body, Canned.requests = (
        200,
        "application/x-amz-json-1.1",
        b"{}",
        [],
    )
    for key, value in {
        "AWS_ENDPOINT_URL_MARKETPLACE_METERING": url,
        "AWS_ACCESS_KEY_ID": "AKIDTEST",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    yield url
    server.shutdown()
    server.server_close()


def answer(status: int, body: object, content_type: str = "application/x-amz-json-1.1") -> None:
    Canned.status = status
    Canned.content_type = content_type
    Canned.body = body if isinstance(body, bytes) else json.dumps(body).encode()


def test_register_usage_returns_signature_and_rotation(endpoint: str) -> None:
    """A successful answer yields the token and an aware rotation timestamp."""
    answer(200, {"Signature": "a.b.c", "PublicKeyRotationTimestamp": 1_700_000_000})
    client = metering.make_client("us-east-1")
    registration = metering.register_usage(client, "prod-paid", 1, "pod:abc")
    assert registration.signature == "a.b.c"
    assert registration.rotation_at == datetime.fromtimestamp(1_700_000_000, UTC)
    assert Canned.requests[0]["target"] == "AWSMPMeteringService.RegisterUsage"
    assert Canned.requests[0]["body"] == {
        "ProductCode": "prod-paid",
        "PublicKeyVersion": 1,
        "Nonce": "pod:abc",
    }


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (
            400,
            {"__type": "ThrottlingException", "message": "slow"},
            TransientError,
            "ThrottlingException",
        ),
        (
            500,
            {"__type": "InternalServiceErrorException"},
            TransientError,
            "InternalServiceErrorException",
        ),
        (
            400,
            {"__type": "CustomerNotEntitledException"},
            PermanentError,
            "CustomerNotEntitledException",
        ),
        (400, {"__type": "InvalidRegionException"}, PermanentError, "InvalidRegionException"),
        (403, {"__type": "AccessDeniedException"}, PermanentError, "AccessDeniedException"),
        (503, b"<html>Service Unavailable</html>", TransientError, "HTTP503"),
        (502, b"bad gateway", TransientError, "HTTP502"),
        (403, b"<html>Forbidden by proxy</html>", PermanentError, "HTTP403"),
    ],
    ids=[
        "throttle",
        "internal",
        "not-entitled",
        "region",
        "access-denied",
        "503",
        "502",
        "proxy-403",
    ],
)
def test_failures_are_classified_by_code(
    endpoint: str, status: int, body: object, error: type[Exception], code: str
) -> None:
    """Each AWS answer arrives as the right class of our error, with its code."""
    answer(status, body, "text/html" if isinstance(body, bytes) else "application/x-amz-json-1.1")
    client = metering.make_client("us-east-1")
    with pytest.raises(error) as info:
        metering.register_usage(client, "prod-paid", 1, "n")
    assert info.value.code == code  # type: ignore[attr-defined]


def register_once() -> None:
    """One RegisterUsage with short timeouts, using whatever the environment says."""
    client = metering.make_client("us-east-1", connect_timeout=1, read_timeout=1)
    metering.register_usage(client, "prod-paid", 1, "n")


def test_connection_refused_is_transient(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """Nobody listening is a network error worth retrying."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_MARKETPLACE_METERING", f"http://127.0.0.1:{port}")
    with pytest.raises(TransientError) as info:
        register_once()
    assert info.value.code == "NetworkError"


def test_missing_credentials_are_permanent(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """No credentials at all will not heal by retrying."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(PermanentError) as info:
        register_once()
    assert info.value.code == "NoCredentialsError"


def test_an_unreadable_web_identity_token_is_permanent(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, tmp_path: Path
) -> None:
    """IRSA pointing at a token file that is gone fails closed as ours, not as a bare OSError."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/metering")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(tmp_path / "gone"))
    with pytest.raises(PermanentError) as info:
        register_once()
    assert info.value.code == "CredentialsUnreadable"
    assert Canned.requests == []


@pytest.mark.parametrize(
    "code",
    ["", "prod with spaces", "x" * 256, "prod<script>", "prod-paid\n"],
    ids=["empty", "spaces", "too-long", "bad-chars", "trailing-newline"],
)
def test_bad_product_codes_never_reach_the_wire(endpoint: str, code: str) -> None:
    """Product codes botocore would let through are refused before sending."""
    client = metering.make_client("us-east-1")
    with pytest.raises(ConfigurationError):
        metering.register_usage(client, code, 1, "n")
    assert Canned.requests == []


def test_oversized_nonce_never_reaches_the_wire(endpoint: str) -> None:
    """A 256-character nonce is refused before sending."""
    client = metering.make_client("us-east-1")
    with pytest.raises(ConfigurationError):
        metering.register_usage(client, "prod", 1, "n" * 256)
    assert Canned.requests == []


def test_meter_usage_sends_decimal_quantities_and_allocations(endpoint: str) -> None:
    """The request carries UsageQuantityAsDecimal, allocations and the client token."""
    answer(200, {"MeteringRecordId": "rec-1"})
    request = MeterRequest(
        product_code="prod-paid",
        timestamp=datetime(2026, 11, 28, 3, tzinfo=UTC),
        dimension="users",
        quantity=Decimal("7.5"),
        client_token="tok-1",
        allocations=(
            Allocation(Decimal("5"), (("namespace", "a"),)),
            Allocation(Decimal("2.50"), ()),
        ),
    )
    assert metering.meter_usage(metering.make_client("us-east-1"), request) == "rec-1"
    body = Canned.requests[0]["body"]
    assert body == {
        "ProductCode": "prod-paid",
        "Timestamp": 1_795_834_800,
        "UsageDimension": "users",
        "UsageQuantityAsDecimal": "7.5",
        "ClientToken": "tok-1",
        "DryRun": False,
        "UsageAllocations": [
            {"AllocatedUsageQuantityAsDecimal": "5", "Tags": [{"Key": "namespace", "Value": "a"}]},
            {"AllocatedUsageQuantityAsDecimal": "2.5"},
        ],
    }


DRY_RUN = MeterRequest("prod-paid", datetime.now(UTC), "users", Decimal(1), "tok", dry_run=True)


def test_dry_run_operation_answer_counts_as_success(endpoint: str) -> None:
    """AWS's documented DryRunOperation error is the success answer of a DryRun."""
    answer(400, {"__type": "DryRunOperation", "message": "would have succeeded"})
    assert metering.meter_usage(metering.make_client("us-east-1"), DRY_RUN) == ""


def test_unauthorized_dry_run_is_permanent(endpoint: str) -> None:
    """UnauthorizedException on a DryRun is a permanent configuration problem."""
    answer(400, {"__type": "UnauthorizedException"})
    with pytest.raises(PermanentError):
        metering.meter_usage(metering.make_client("us-east-1"), DRY_RUN)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("0"), "0"),
        (Decimal("17.00"), "17"),
        (Decimal("2.5"), "2.5"),
        (Decimal("1E+3"), "1000"),
        (Decimal("0.000001"), "0.000001"),
        (Decimal("9999999999.999999"), "9999999999.999999"),
    ],
    ids=["zero", "trailing-zeros", "fraction", "exponent", "micro", "max"],
)
def test_quantities_format_as_aws_decimal_strings(value: Decimal, text: str) -> None:
    """Quantities are sent without exponents or trailing zeros."""
    assert text == format_quantity(value)


@pytest.mark.parametrize(
    "value",
    [Decimal("-1"), Decimal("0.0000001"), Decimal("10000000000"), Decimal("NaN"), Decimal("Inf")],
    ids=["negative", "seven-decimals", "eleven-digits", "nan", "inf"],
)
def test_quantities_aws_would_reject_are_refused(value: Decimal) -> None:
    """A quantity outside AWS's pattern is a ValueError before sending."""
    with pytest.raises(ValueError, match="quantity"):
        format_quantity(value)


def test_naive_timestamps_are_refused() -> None:
    """A timestamp without a timezone cannot be bucketed safely and is refused."""
    request = MeterRequest("prod", datetime(2026, 1, 1), "users", Decimal(1), "tok")
    with pytest.raises(ValueError, match="timezone"):
        request.to_params()


@pytest.mark.parametrize(
    ("code", "status", "transient"),
    [
        ("ThrottlingException", 400, True),
        ("InternalServiceErrorException", 500, True),
        ("HTTP503", 503, True),
        ("HTTP429", 429, True),
        ("DuplicateRequestException", 400, False),
        ("InternalServiceErrorException", None, True),
        ("AccessDeniedException", 403, False),
        ("BadGateway", 502, True),
        ("TooManyRequestsException", 429, True),
    ],
    ids=[
        "throttle",
        "internal",
        "503",
        "429",
        "duplicate",
        "no-status",
        "denied",
        "502-named",
        "429-named",
    ],
)
def test_classify_table(code: str, status: int | None, transient: bool) -> None:
    """Only throttling, server faults and network failures are retried."""
    assert transient == classify(code, status).transient
