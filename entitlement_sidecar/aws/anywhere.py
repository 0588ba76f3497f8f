"""Containers Anywhere credentials: the buyer's License Manager token in, temporary AWS keys out.

Outside EKS and ECS (EKS Anywhere, ECS Anywhere, on premises) there is no IRSA and no task role.
The buyer creates a license token and an IAM role trusting `openid-license-manager.amazonaws.com`
and stores both in a Secret (keys `license_token`, `iam_role`) that the chart mounts. The flow AWS
describes (and publishes Java and Go providers for; botocore has none): `GetAccessToken` with the
license token on an unsigned License Manager client, then STS `AssumeRoleWithWebIdentity` (an
unsigned call) with the access token as the web identity. `LicenseTokenProvider` is a botocore
credential provider doing exactly that, deferred (nothing is fetched until the first signed call)
and refreshed by botocore before the keys expire. Secrets are read from the mounted files on every
refresh (a rotated Secret is picked up) and never logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable
from typing import Any

import boto3
import botocore.session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.credentials import CredentialProvider, DeferredRefreshableCredentials

from entitlement_sidecar import __version__
from entitlement_sidecar.aws import license_manager, rules
from entitlement_sidecar.aws.calls import call
from entitlement_sidecar.errors import ConfigurationError, PermanentError

log = logging.getLogger(__name__)

TOKEN_KEY = "license_token"  # noqa: S105 - the Secret's key name, not a secret
ROLE_KEY = "iam_role"
METHOD = "license-manager-token"
MAX_SECRET_BYTES = 16384
_ROLE = re.compile(rules.ROLE_ARN)
_SESSION_UNSAFE = re.compile(f"[^{rules.ROLE_SESSION_CHARS}]", re.ASCII)


def session_name(instance_id: str) -> str:
    """A RoleSessionName for this instance: readable where possible, always within AWS's rule."""
    readable = _SESSION_UNSAFE.sub("-", instance_id)[:40] or "x"
    digest = hashlib.sha256(instance_id.encode()).hexdigest()[:12]
    name = f"entitlement-{readable}-{digest}"[:64]
    assert re.fullmatch(rules.ROLE_SESSION_NAME, name, re.ASCII)
    return name


class SecretFiles:
    """The buyer's Secret as mounted files: `<dir>/license_token` and `<dir>/iam_role`."""

    def __init__(self, directory: str, variable: str = "") -> None:
        self.directory = directory
        self.variable = variable

    def _read(self, key: str) -> str:
        path = os.path.join(self.directory, key)
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_SECRET_BYTES + 1)
        except OSError as exc:
            raise ConfigurationError(
                f"{self.variable}: cannot read {path} ({exc.strerror or exc}): is the buyer's "
                f"Secret (keys {TOKEN_KEY}, {ROLE_KEY}) mounted there?",
                variable=self.variable,
            ) from None
        text = raw.decode("utf-8", "replace").strip()
        if not text or len(raw) > MAX_SECRET_BYTES:
            raise ConfigurationError(
                f"{self.variable}: {path} is empty or too large", variable=self.variable
            )
        return text

    def token(self) -> str:
        return self._read(TOKEN_KEY)

    def role_arn(self) -> str:
        role = self._read(ROLE_KEY)
        if not _ROLE.fullmatch(role):
            raise ConfigurationError(
                f"{self.variable}: {ROLE_KEY} is not an IAM role ARN "
                "(arn:aws:iam::<account>:role/<name>)",
                variable=self.variable,
            )
        return role

    def check(self) -> None:
        """Both files readable and well-formed (a configuration error before any AWS call)."""
        self.token()
        self.role_arn()


class LicenseTokenProvider(CredentialProvider):
    """botocore credential provider: GetAccessToken, then AssumeRoleWithWebIdentity, refreshed."""

    METHOD = METHOD
    CANONICAL_NAME = "LicenseManagerToken"

    def __init__(
        self,
        secret: SecretFiles,
        region: str,
        role_session_name: str,
        *,
        duration_seconds: int = rules.ACCESS_TOKEN_SECONDS,
        on_refresh: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        if not rules.ROLE_DURATION_MIN <= duration_seconds <= rules.ROLE_DURATION_MAX:
            raise ValueError(f"duration_seconds {duration_seconds} is outside the model's range")
        self.secret = secret
        self.region = region
        self.role_session_name = role_session_name
        self.duration_seconds = duration_seconds
        self.on_refresh = on_refresh
        self.refreshes = 0

    def load(self) -> DeferredRefreshableCredentials:
        """Credentials fetched on first use and refreshed by botocore before they expire."""
        return DeferredRefreshableCredentials(refresh_using=self.fetch, method=METHOD)

    def fetch(self) -> dict[str, str]:
        """One round: access token from the license token, then role keys from STS."""
        token, role = self.secret.token(), self.secret.role_arn()
        anonymous = license_manager.make_client(self.region, anonymous=True)
        access = license_manager.get_access_token(anonymous, token)
        answer = call(
            lambda: _sts(self.region).assume_role_with_web_identity(
                RoleArn=role,
                RoleSessionName=self.role_session_name,
                WebIdentityToken=access,
                DurationSeconds=self.duration_seconds,
            )
        )
        credentials = answer.get("Credentials")
        if not isinstance(credentials, dict) or not credentials.get("AccessKeyId"):
            raise PermanentError("EmptyCredentials", "AssumeRoleWithWebIdentity returned no keys")
        self.refreshes += 1
        expiry = credentials["Expiration"]
        log.info(
            "Containers Anywhere credentials for %s until %s",
            role,
            expiry,
            extra={"role_arn": role, "credentials_expire_at": str(expiry)},
        )
        if self.on_refresh is not None:
            self.on_refresh(str(expiry))
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": expiry.isoformat() if hasattr(expiry, "isoformat") else str(expiry),
        }


def _sts(region: str) -> Any:
    """An unsigned STS client (AssumeRoleWithWebIdentity takes no credentials)."""
    config = Config(
        region_name=region,
        signature_version=UNSIGNED,
        connect_timeout=5.0,
        read_timeout=10.0,
        retries={"total_max_attempts": 1, "mode": "standard"},
        user_agent_extra=f"entitlement-sidecar/{__version__}",
    )
    return boto3.session.Session().client("sts", region_name=region, config=config)


def session(provider: LicenseTokenProvider) -> boto3.session.Session:
    """A boto3 session whose credentials come from `provider` before anything else in the chain."""
    core = botocore.session.Session()
    core.get_component("credential_provider").insert_before("env", provider)
    return boto3.session.Session(botocore_session=core)
