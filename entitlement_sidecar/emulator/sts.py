"""STS `AssumeRoleWithWebIdentity` for the Containers Anywhere flow, in STS's query protocol.

STS is not a JSON service: a call is `POST /` with a form body (`Action=...&Version=...`),
unsigned for this action, and the answer is XML in the `https://sts.amazonaws.com/doc/2011-06-15/`
namespace; errors are an `<ErrorResponse>` with `Type`, `Code` and `Message`. The web identity
token must be an access token the emulated License Manager issued (GetAccessToken) for the same
role and not expired; the keys it returns become a caller of the role's account for every later
request (and, with SigV4 verification on, verify with the secret issued here).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from entitlement_sidecar.aws import rules
from entitlement_sidecar.emulator.seats import LicenseBook, iso

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
XML_CONTENT_TYPE = "text/xml"
NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
ACTION = "AssumeRoleWithWebIdentity"
PROVIDER = "openid-license-manager.amazonaws.com"
_SESSION = re.compile(rules.ROLE_SESSION_NAME, re.ASCII)  # Java \w: ASCII only
_ROLE = re.compile(rules.ROLE_ARN)


class StsError(Exception):
    """An STS error answer: `code` (STS's own spelling), HTTP status, sender or receiver fault."""

    def __init__(self, code: str, message: str, status: int = 400, kind: str = "Sender") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.kind = kind

    def body(self) -> bytes:
        return (
            f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{self.kind}</Type>'
            f"<Code>{escape(self.code)}</Code><Message>{escape(self.message)}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        ).encode()


def is_query(content_type: str | None, target: str | None) -> bool:
    """A query-protocol request: a form body and no JSON `X-Amz-Target`."""
    media = (content_type or "").split(";")[0].strip().lower()
    return media == FORM_CONTENT_TYPE and not target


def parse_form(raw: bytes) -> dict[str, str]:
    """The form's parameters (first value of each); StsError when it is not a form."""
    try:
        pairs = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw))
    except (UnicodeDecodeError, ValueError):
        raise StsError("MalformedQueryString", "The request body is not a form") from None
    return {name: values[0] for name, values in pairs.items()}


def action_of(form: Mapping[str, str]) -> str:
    """The `Action` (only AssumeRoleWithWebIdentity is emulated)."""
    action = form.get("Action", "")
    if action != ACTION or form.get("Version") != "2011-06-15":
        raise StsError(
            "InvalidAction", f"Could not find operation {action!r} for version 2011-06-15"
        )
    return action


def _validated(form: Mapping[str, str]) -> tuple[str, str, str, int]:
    problems = []
    role, name, token = (
        form.get("RoleArn", ""),
        form.get("RoleSessionName", ""),
        form.get("WebIdentityToken", ""),
    )
    if not 20 <= len(role) <= 2048:
        problems.append("'roleArn' must have length between 20 and 2048")
    if not _SESSION.fullmatch(name):
        problems.append(f"'roleSessionName' must satisfy {rules.ROLE_SESSION_NAME}")
    if not 4 <= len(token) <= 20000:
        problems.append("'webIdentityToken' must have length between 4 and 20000")
    raw = form.get("DurationSeconds", "3600")
    duration = int(raw) if raw.isdigit() else 0
    if not rules.ROLE_DURATION_MIN <= duration <= rules.ROLE_DURATION_MAX:
        problems.append(
            f"'durationSeconds' must be between {rules.ROLE_DURATION_MIN} and "
            f"{rules.ROLE_DURATION_MAX}"
        )
    if problems:
        count = len(problems)
        raise StsError(
            "ValidationError", f"{count} validation error(s) detected: " + "; ".join(problems)
        )
    return role, name, token, duration


def assume_role_with_web_identity(
    book: LicenseBook, form: Mapping[str, str], now: datetime
) -> bytes:
    """Temporary keys for the role an emulated access token was issued for (hold the lock)."""
    role, name, token, duration = _validated(form)
    issued = book.access_tokens.get(token)
    if issued is None:
        raise StsError("InvalidIdentityToken", "The web identity token is not valid")
    _arn, token_role, expires = issued
    if now >= expires:
        raise StsError(
            "ExpiredTokenException", "Token expired: the access token is over an hour old"
        )
    if role != token_role:
        raise StsError(
            "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", status=403
        )
    role_match = _ROLE.fullmatch(role)
    if role_match is None:
        raise StsError("ValidationError", "'roleArn' is not an IAM role ARN")
    account = role_match.group("account")
    session = book.new_session(account, role, now + timedelta(seconds=duration))
    role_name = role.rsplit("/", 1)[-1]
    return (
        f'<AssumeRoleWithWebIdentityResponse xmlns="{NAMESPACE}">'
        "<AssumeRoleWithWebIdentityResult>"
        f"<SubjectFromWebIdentityToken>{escape(account)}</SubjectFromWebIdentityToken>"
        f"<Audience>{escape(_arn)}</Audience>"
        "<AssumedRoleUser>"
        f"<Arn>arn:aws:sts::{account}:assumed-role/{escape(role_name)}/{escape(name)}</Arn>"
        f"<AssumedRoleId>AROA{uuid.uuid4().hex[:17].upper()}:{escape(name)}</AssumedRoleId>"
        "</AssumedRoleUser>"
        "<Credentials>"
        f"<AccessKeyId>{session.access_key_id}</AccessKeyId>"
        f"<SecretAccessKey>{escape(session.secret_access_key)}</SecretAccessKey>"
        f"<SessionToken>{escape(session.session_token)}</SessionToken>"
        f"<Expiration>{iso(session.expiration)}</Expiration>"
        "</Credentials>"
        f"<Provider>{PROVIDER}</Provider>"
        "</AssumeRoleWithWebIdentityResult>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        "</AssumeRoleWithWebIdentityResponse>"
    ).encode()
