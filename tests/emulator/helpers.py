"""Helpers shared by the emulator tests: clients that skip botocore's checks, JWS parts, codes."""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.emulator.server import DUMMY_SECRET
from entitlement_sidecar.emulator.signing import PSS

if TYPE_CHECKING:
    from mypy_boto3_meteringmarketplace import MarketplaceMeteringClient

PAID = "prod-paid"
FIXED_NOW = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)


def loose_client(
    emu: Emulator, access_key_id: str = "AKIDPOD1", region: str = "us-east-1", **config: Any
) -> MarketplaceMeteringClient:
    """A boto3 client without client-side parameter validation, so bad input reaches the wire."""
    merged: dict[str, Any] = {"retries": {"total_max_attempts": 1}, "parameter_validation": False}
    merged.update(config)
    return boto3.session.Session().client(
        "meteringmarketplace",
        region_name=region,
        endpoint_url=emu.url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=DUMMY_SECRET,
        config=Config(**merged),
    )


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError."""
    response: dict[str, Any] = getattr(exc, "response", {})
    return str(response.get("Error", {}).get("Code", ""))


def jws_part(token: str, index: int) -> dict[str, Any]:
    """Decode the JSON header (0) or payload (1) of a compact JWS."""
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def recent(minutes: float = 1) -> datetime:
    """A timestamp a little in the past (inside every acceptance window)."""
    return datetime.now(UTC) - timedelta(minutes=minutes)


@contextmanager
def aws_error(code: str) -> Iterator[None]:
    """Expect a botocore ClientError carrying the AWS error `code`."""
    with pytest.raises(ClientError) as caught:
        yield
    assert error_code(caught.value) == code


def verify(token: str, pem: bytes) -> None:
    """Raise InvalidSignature unless `token` is PS256-signed by the key in `pem`."""
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, rsa.RSAPublicKey)
    signing_input, _, signature = token.rpartition(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    key.verify(raw, signing_input.encode(), PSS, hashes.SHA256())


# A raw request as a hand-rolled client sends it (the emulator checks its shape, not its HMAC).
AUTH = (
    "AWS4-HMAC-SHA256 Credential=AKIDRAW/20260310/us-east-1/aws-marketplace/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "a" * 64
)
HEADERS = {
    "Content-Type": "application/x-amz-json-1.1",
    "X-Amz-Target": "AWSMPMeteringService.RegisterUsage",
    "Authorization": AUTH,
}
GOOD = json.dumps({"ProductCode": "prod-paid", "PublicKeyVersion": 1}).encode()


def post_headers(headers: dict[str, str | None] | None = None) -> dict[str, str]:
    """The raw request's default headers overridden by `headers` (None removes one)."""
    merged = {**HEADERS, **(headers or {})}
    return {k: v for k, v in merged.items() if v is not None}


def post(
    emu: Emulator, body: bytes = GOOD, path: str = "/", headers: dict[str, str | None] | None = None
) -> tuple[int, dict[str, Any]]:
    """POST raw bytes with the default headers overridden by `headers` (None removes one)."""
    status, _, answer = send(emu, body, post_headers(headers), path)
    return status, answer


def signed(
    url: str,
    body: bytes,
    target: str = "AWSMPMeteringService.RegisterUsage",
    *,
    access_key_id: str = "AKIDRAW",
    secret: str = DUMMY_SECRET,
    service: str = "aws-marketplace",
    region: str = "us-east-1",
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """Headers signed by botocore's own SigV4 signer (independent of the emulator's checker)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": target,
            **(headers or {}),
        },
    )
    SigV4Auth(Credentials(access_key_id, secret), service, region).add_auth(request)
    return dict(request.headers.items())


def send(
    emu: Emulator, body: bytes, headers: dict[str, str], path: str = "/"
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """POST exactly these bytes and headers; (status, response headers, JSON body)."""
    parts = urlsplit(emu.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    answer = json.loads(raw) if raw.startswith(b"{") else {"raw": raw.decode()}
    return response.status, dict(response.getheaders()), answer
