"""AWS JSON 1.1 wire details of the Metering service: targets, error codes, SigV4 header checks.

Everything here is pure: it turns request headers into a caller identity or an `ApiError`, and an
`ApiError` into the status code and `__type` body a real endpoint answers with. The HTTP handler
(`server.py`) is the only place that touches sockets.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

TARGET_PREFIX = "AWSMPMeteringService."
SIGNING_NAME = "aws-marketplace"
CONTENT_TYPE = "application/x-amz-json-1.1"
ACCEPTED_CONTENT_TYPES = frozenset({CONTENT_TYPE, "application/x-amz-json-1.0"})
OPERATIONS = ("RegisterUsage", "MeterUsage", "BatchMeterUsage", "ResolveCustomer")

# Every error code the botocore model declares for this service (tests compare this with the model).
MODELED_ERRORS = frozenset(
    {
        "CustomerNotEntitledException",
        "DisabledApiException",
        "DuplicateRequestException",
        "ExpiredTokenException",
        "IdempotencyConflictException",
        "InternalServiceErrorException",
        "InvalidCustomerIdentifierException",
        "InvalidEndpointRegionException",
        "InvalidLicenseException",
        "InvalidProductCodeException",
        "InvalidPublicKeyVersionException",
        "InvalidRegionException",
        "InvalidTagException",
        "InvalidTokenException",
        "InvalidUsageAllocationsException",
        "InvalidUsageDimensionException",
        "PlatformNotSupportedException",
        "ThrottlingException",
        "TimestampOutOfBoundsException",
    }
)

# Status codes other than the usual 400 (the model marks InternalServiceErrorException a fault).
_STATUS = {
    "InternalServiceErrorException": 500,
    "MissingAuthenticationTokenException": 403,
    "InvalidSignatureException": 403,
    "IncompleteSignatureException": 403,
    "RequestEntityTooLargeException": 413,
}

_CREDENTIAL_RE = re.compile(
    r"^(?P<akid>[A-Za-z0-9]{1,128})/(?P<date>\d{8})/(?P<region>[a-z0-9-]{1,64})"
    r"/(?P<service>[A-Za-z0-9-]{1,64})/aws4_request$"
)
_SIGNED_HEADERS_RE = re.compile(r"^[a-z0-9-]+(;[a-z0-9-]+)*$")
_SIGNATURE_RE = re.compile(r"^[0-9a-f]{64}$")


class ApiError(Exception):
    """An error answer: `code` goes into `__type`, `message` into `message`."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else _STATUS.get(code, 400)

    def body(self) -> bytes:
        """The JSON 1.1 error body a real endpoint sends."""
        return json.dumps({"__type": self.code, "message": self.message}).encode()


def validation_error(message: str) -> ApiError:
    """The generic (unmodeled) error for a request that breaks a constraint."""
    return ApiError("ValidationException", message)


def serialization_error(message: str) -> ApiError:
    """The generic (unmodeled) error for a body that cannot be read as the operation's input."""
    return ApiError("SerializationException", message)


@dataclass(frozen=True)
class Caller:
    """Who sent a request, as far as an unverifiable SigV4 header tells: key id and scope."""

    access_key_id: str
    region: str
    service: str


def parse_authorization(header: str | None) -> Caller:
    """Check the structure of a SigV4 `Authorization` header (not its HMAC: we lack the secret)."""
    if not header:
        raise ApiError("MissingAuthenticationTokenException", "Missing Authentication Token")
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != "AWS4-HMAC-SHA256":
        raise ApiError(
            "IncompleteSignatureException",
            f"Unsupported authorization algorithm {algorithm!r}: expected AWS4-HMAC-SHA256",
        )
    parts: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, value = item.strip().partition("=")
        if sep:
            parts[name] = value
    missing = [p for p in ("Credential", "SignedHeaders", "Signature") if p not in parts]
    if missing:
        raise ApiError(
            "IncompleteSignatureException",
            f"Authorization header requires '{missing[0]}' parameter. Authorization={header}",
        )
    match = _CREDENTIAL_RE.match(parts["Credential"])
    if match is None:
        raise ApiError(
            "IncompleteSignatureException",
            "Credential must have the form AKID/YYYYMMDD/REGION/SERVICE/aws4_request",
        )
    signed = parts["SignedHeaders"]
    if not _SIGNED_HEADERS_RE.fullmatch(signed) or "host" not in signed.split(";"):
        raise ApiError("IncompleteSignatureException", "SignedHeaders must list 'host'")
    if not _SIGNATURE_RE.fullmatch(parts["Signature"]):
        raise ApiError("IncompleteSignatureException", "Signature must be 64 hex characters")
    if match["service"] != SIGNING_NAME:
        raise ApiError(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{SIGNING_NAME}'.",
        )
    return Caller(match["akid"], match["region"], match["service"])


def parse_target(header: str | None) -> str:
    """The operation name from `X-Amz-Target`, or UnknownOperationException."""
    if header and header.startswith(TARGET_PREFIX):
        operation = header[len(TARGET_PREFIX) :]
        if operation in OPERATIONS:
            return operation
    raise ApiError("UnknownOperationException", f"Unknown operation {header!r}")


def parse_body(content_type: str | None, raw: bytes) -> dict[str, object]:
    """The request's JSON object, or the SerializationException a JSON 1.1 service answers."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type not in ACCEPTED_CONTENT_TYPES:
        raise serialization_error(
            f"Unsupported Content-Type {content_type!r}: expected {CONTENT_TYPE}"
        )
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise serialization_error(f"Malformed JSON body: {exc}") from None
    except RecursionError:
        raise serialization_error("Malformed JSON body: nested too deeply") from None
    if not isinstance(value, dict):
        raise serialization_error("The request body must be a JSON object")
    return value
