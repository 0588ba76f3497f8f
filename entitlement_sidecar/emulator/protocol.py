"""AWS JSON 1.1 on the wire: request bodies in, error answers out, for any JSON service we serve.

An `ApiError` becomes what a real JSON endpoint sends: the status (400, 500 for server faults,
403 for authentication), a body `{"__type": CODE, "message": ...}` and the `x-amzn-ErrorType`
header `CODE:http://internal.amazon.com/coral/NAMESPACE/` (clients read the code from either,
and must strip the suffix). Generic errors name AWS's shared namespaces, modeled errors the
service's own. Pure; the HTTP handler is the only place that touches sockets.
"""

from __future__ import annotations

import json

from entitlement_sidecar.emulator.request import JSON_CONTENT_TYPE, Outcome
from entitlement_sidecar.emulator.sigv4 import ERROR_CODES, AuthFailure

CONTENT_TYPE = JSON_CONTENT_TYPE
ACCEPTED_CONTENT_TYPES = frozenset({CONTENT_TYPE, "application/x-amz-json-1.0"})
CORAL = "http://internal.amazon.com/coral/{namespace}/"

# Status codes other than the usual 400 (the model marks InternalServiceErrorException a fault).
_STATUS = {
    "InternalServiceErrorException": 500,
    "ServerInternalException": 500,  # License Manager's fault
    "RequestEntityTooLargeException": 413,
    **dict(ERROR_CODES["json"].values()),
}
# Errors every AWS JSON service shares, and the namespace their x-amzn-ErrorType names.
_GENERIC = {
    "ValidationException": "com.amazon.coral.validate",
    "SerializationException": "com.amazon.coral.service",
    "UnknownOperationException": "com.amazon.coral.service",
    "RequestEntityTooLargeException": "com.amazon.coral.service",
    **{code: "com.amazon.coral.service" for code, _ in ERROR_CODES["json"].values()},
}


class ApiError(Exception):
    """An error answer: `code` goes to `__type` and `x-amzn-ErrorType`, `message` to `message`."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        *,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else _STATUS.get(code, 400)
        self.extra = extra or {}  # the error shape's other members (RedirectException: Location)

    @classmethod
    def from_auth(cls, failure: AuthFailure) -> ApiError:
        """The JSON protocol's name for a SigV4 failure."""
        code, status = ERROR_CODES["json"][failure.kind]
        return cls(code, failure.message, status)

    def body(self) -> bytes:
        """The JSON 1.1 error body a real endpoint sends."""
        return json.dumps({"__type": self.code, "message": self.message, **self.extra}).encode()

    def error_type(self, namespace: str) -> str:
        """The `x-amzn-ErrorType` header value: the code, then the coral namespace URL."""
        return f"{self.code}:{CORAL.format(namespace=_GENERIC.get(self.code, namespace))}"

    def outcome(self, namespace: str = "com.amazon.coral.service") -> Outcome:
        """The whole answer: status, JSON body and the x-amzn-ErrorType header."""
        headers = (("x-amzn-ErrorType", self.error_type(namespace)),)
        return Outcome(self.status, self.body(), CONTENT_TYPE, headers)


def validation_error(message: str) -> ApiError:
    """The generic (unmodeled) error for a request that breaks a constraint."""
    return ApiError("ValidationException", message)


def serialization_error(message: str) -> ApiError:
    """The generic (unmodeled) error for a body that cannot be read as the operation's input."""
    return ApiError("SerializationException", message)


def parse_body(content_type: str | None, raw: bytes) -> dict[str, object]:
    """The request's JSON object, or the SerializationException a JSON 1.1 service answers."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type not in ACCEPTED_CONTENT_TYPES:
        raise serialization_error(
            f"Unsupported Content-Type {(content_type or '')[:100]!r}: expected {CONTENT_TYPE}"
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
