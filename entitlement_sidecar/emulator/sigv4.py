"""SigV4 as a receiving AWS endpoint checks it: the header's shape always, the HMAC given a secret.

`parse_authorization` reads `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
SignedHeaders=..., Signature=...` and refuses malformed headers the way AWS does. `verify`
rebuilds the canonical request from the bytes that arrived (method, normalised path, sorted
query, the signed headers trimmed and joined, SHA-256 of the body), derives the signing key from
the caller's secret and compares signatures in constant time; it also refuses a request signed
more than five minutes before or after the receiving clock, a credential scope dated another day
than the request, and an `x-amz-content-sha256` that is not the body's hash (no unsigned bodies).

Failures are `AuthFailure(kind, message)`; each wire protocol names the kinds its own way
(`ERROR_CODES`): JSON services answer `InvalidSignatureException`, query services such as STS
answer `SignatureDoesNotMatch`. Pure: no sockets, no scenario, no clock of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import quote, unquote

from entitlement_sidecar.aws import rules
from entitlement_sidecar.emulator.request import Request

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=5)  # AWS refuses signatures older or newer than this
AMZ_DATE = "%Y%m%dT%H%M%SZ"
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)
UNKNOWN_KEY = "The security token included in the request is invalid."

Kind = Literal["missing", "incomplete", "signature", "unknown_key"]

# How each AWS wire protocol names a failure kind: (error code, HTTP status).
ERROR_CODES: dict[str, dict[Kind, tuple[str, int]]] = {
    "json": {
        "missing": ("MissingAuthenticationTokenException", 403),
        "incomplete": ("IncompleteSignatureException", 403),
        "signature": ("InvalidSignatureException", 403),
        "unknown_key": ("UnrecognizedClientException", 403),
    },
    "query": {
        "missing": ("MissingAuthenticationToken", 403),
        "incomplete": ("IncompleteSignature", 400),
        "signature": ("SignatureDoesNotMatch", 403),
        "unknown_key": ("InvalidClientTokenId", 403),
    },
}

_CREDENTIAL_RE = re.compile(
    rf"(?P<akid>{rules.ACCESS_KEY_ID})/(?P<date>[0-9]{{8}})/(?P<region>[a-z0-9-]{{1,64}})"
    r"/(?P<service>[A-Za-z0-9-]{1,64})/aws4_request"
)
_SIGNED_HEADERS_RE = re.compile(r"[a-z0-9-]{1,64}(;[a-z0-9-]{1,64}){0,63}")
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
_AMZ_DATE_RE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_SHOWN = 200  # characters of a hostile header echoed back in an error message


class AuthFailure(Exception):
    """A request the endpoint refuses before reading it; `kind` picks the protocol's error code."""

    def __init__(self, kind: Kind, message: str) -> None:
        super().__init__(message)
        self.kind: Kind = kind
        self.message = message


@dataclass(frozen=True)
class Authorization:
    """A well-formed SigV4 Authorization header: who signed, for which scope, over what."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        """`DATE/REGION/SERVICE/aws4_request`."""
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def parse_authorization(header: str | None) -> Authorization:
    """The header's parts, or the AuthFailure a real endpoint answers for its shape."""
    if not header:
        raise AuthFailure("missing", "Missing Authentication Token")
    shown = header[:_SHOWN]
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise AuthFailure(
            "incomplete",
            f"Unsupported authorization algorithm {algorithm[:40]!r}: expected {ALGORITHM}",
        )
    parts: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, value = item.strip().partition("=")
        if sep and name not in parts:
            parts[name] = value.strip()
    missing = [p for p in ("Credential", "SignedHeaders", "Signature") if p not in parts]
    if missing:
        raise AuthFailure(
            "incomplete",
            f"Authorization header requires '{missing[0]}' parameter. Authorization={shown}",
        )
    match = _CREDENTIAL_RE.fullmatch(parts["Credential"])
    if match is None:
        raise AuthFailure(
            "incomplete", "Credential must have the form AKID/YYYYMMDD/REGION/SERVICE/aws4_request"
        )
    signed = parts["SignedHeaders"]
    if not _SIGNED_HEADERS_RE.fullmatch(signed) or "host" not in signed.split(";"):
        raise AuthFailure(
            "incomplete",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        )
    if not _SIGNATURE_RE.fullmatch(parts["Signature"]):
        raise AuthFailure("incomplete", "Signature must be 64 lowercase hex characters")
    return Authorization(
        access_key_id=match["akid"],
        date=match["date"],
        region=match["region"],
        service=match["service"],
        signed_headers=tuple(signed.split(";")),
        signature=parts["Signature"],
    )


def signed_at(request: Request, auth: Authorization) -> datetime:
    """When the request was signed (`X-Amz-Date`, else `Date`), checked against the scope date."""
    stamp = request.header("x-amz-date")
    if stamp is not None:
        if not _AMZ_DATE_RE.fullmatch(stamp.strip()):
            raise AuthFailure(
                "incomplete", f"Invalid X-Amz-Date {stamp[:40]!r}: expected {AMZ_DATE}"
            )
        moment = datetime.strptime(stamp.strip(), AMZ_DATE).replace(tzinfo=UTC)
    else:
        moment = _http_date(request.header("date"))
    day = moment.strftime("%Y%m%d")
    if auth.date != day:
        raise AuthFailure(
            "signature",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
            f"HTTP: '{auth.date}' != '{day}', from '{moment.strftime(AMZ_DATE)}'.",
        )
    return moment


def _http_date(text: str | None) -> datetime:
    try:
        return parsedate_to_datetime(text or "").astimezone(UTC)
    except (TypeError, ValueError, IndexError):
        raise AuthFailure(
            "incomplete",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ) from None


def check_fresh(moment: datetime, now: datetime) -> None:
    """Refuse a signature made more than MAX_SKEW before or after `now` (replays, bad clocks)."""
    earliest, latest = now - MAX_SKEW, now + MAX_SKEW
    if moment < earliest:
        raise AuthFailure(
            "signature",
            f"Signature expired: {moment.strftime(AMZ_DATE)} is now earlier than "
            f"{earliest.strftime(AMZ_DATE)} ({now.strftime(AMZ_DATE)} - 5 min.)",
        )
    if moment > latest:
        raise AuthFailure(
            "signature",
            f"Signature not yet current: {moment.strftime(AMZ_DATE)} is still later than "
            f"{latest.strftime(AMZ_DATE)} ({now.strftime(AMZ_DATE)} + 5 min.)",
        )


def canonical_uri(path: str) -> str:
    """The path with dot segments and empty segments removed, percent-encoded once more."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    normalised = "/" + "/".join(segments)
    if path.endswith("/") and segments:
        normalised += "/"
    return quote(normalised, safe="/~")


def canonical_query(query: str) -> str:
    """Query parameters decoded, re-encoded the SigV4 way and sorted by name, then value."""
    pairs = []
    for item in query.split("&") if query else []:
        name, _, value = item.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def canonical_request(request: Request, signed_headers: tuple[str, ...]) -> str:
    """The canonical request SigV4 signs, rebuilt from what arrived."""
    lines = [
        f"{name}:{','.join(' '.join(v.split()) for v in request.header_values(name))}"
        for name in signed_headers
    ]
    return "\n".join(
        [
            request.method.upper(),
            canonical_uri(request.path),
            canonical_query(request.query),
            "\n".join(lines) + "\n",
            ";".join(signed_headers),
            hashlib.sha256(request.body).hexdigest(),
        ]
    )


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signature(secret: str, auth: Authorization, stamp: str, canonical: str) -> str:
    """The hex signature of `canonical` under the signing key derived from `secret`."""
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    string_to_sign = "\n".join([ALGORITHM, stamp, auth.scope, digest])
    key = _hmac(f"AWS4{secret}".encode(), auth.date)
    for part in (auth.region, auth.service, "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def verify(request: Request, auth: Authorization, secret: str, now: datetime) -> None:
    """Raise AuthFailure unless `request` is signed with `secret`, recently, over this body."""
    moment = signed_at(request, auth)
    check_fresh(moment, now)
    declared = request.header("x-amz-content-sha256")
    if declared is not None and declared.strip() != hashlib.sha256(request.body).hexdigest():
        raise AuthFailure("signature", "x-amz-content-sha256 is not the SHA-256 of the body")
    expected = signature(
        secret, auth, moment.strftime(AMZ_DATE), canonical_request(request, auth.signed_headers)
    )
    if not hmac.compare_digest(expected, auth.signature):
        raise AuthFailure("signature", MISMATCH)
