"""What every License Manager child needs before its first call: identity, Region, credentials.

The composition root of the gate, heartbeat and check-in children. The Region is
`ENTITLEMENT_LICENSE_REGION`, else the usual region settings, else (Containers Anywhere only)
`us-east-1` as AWS's Anywhere guide suggests; a Region a `RedirectException` named earlier (kept
in the status) wins. Credentials: the Containers Anywhere provider when the buyer's Secret is
mounted, otherwise botocore's chain (IRSA on EKS, the task role on ECS), named in the log. The
optional SignedToken key is loaded here, so a bad one stops the child before any AWS call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from entitlement_sidecar.aws import environment
from entitlement_sidecar.errors import ConfigurationError
from entitlement_sidecar.sidecar import instance
from entitlement_sidecar.sidecar.caller import check_readable, resolve_instance
from entitlement_sidecar.sidecar.keyring import load_key_file
from entitlement_sidecar.sidecar.license.wants import Wants
from entitlement_sidecar.sidecar.outcome import Clock
from entitlement_sidecar.sidecar.rsakey import RsaPublicKey
from entitlement_sidecar.sidecar.settings import SidecarSettings, env_name

if TYPE_CHECKING:
    import boto3

log = logging.getLogger("entitlement_sidecar.sidecar.license")

ANYWHERE_DEFAULT_REGION = "us-east-1"  # AWS's Containers Anywhere guide: the chart's default
ANYWHERE_CREDENTIALS = "anywhere-token"


@dataclass
class Context:
    """One child's collaborators, built once from settings."""

    settings: SidecarSettings
    me: instance.Instance
    region: str
    credentials: str
    clock: Clock
    session: boto3.session.Session | None = None
    token_key: RsaPublicKey | None = None
    _clients: dict[str, Any] = field(default_factory=dict)

    @property
    def sku(self) -> str:
        assert self.settings.product_sku is not None
        return self.settings.product_sku

    @property
    def wants(self) -> Wants:
        return self.settings.wants

    @property
    def status_dir(self) -> str:
        return str(self.settings.status_dir)

    def client(self, region: str | None = None) -> Any:
        """A License Manager client for `region` (default: the license's), made once."""
        where = region or self.region
        if where not in self._clients:
            from entitlement_sidecar.aws.license_manager import make_client

            self._clients[where] = make_client(where, session=self.session)
        return self._clients[where]


def resolve_region(settings: SidecarSettings, environ: Mapping[str, str], ecs: str | None) -> str:
    """The License Manager Region (see the module docstring)."""
    override = settings.license_region or settings.region
    variable = env_name("license_region" if settings.license_region else "region")
    try:
        return environment.resolve_region(override, environ, ecs, override_variable=variable)
    except ConfigurationError:
        if not settings.anywhere:
            raise
        return ANYWHERE_DEFAULT_REGION


def prepare(
    settings: SidecarSettings,
    environ: Mapping[str, str],
    clock: Clock,
    *,
    region: str | None = None,
) -> Context:
    """Identity, Region, credentials and SignedToken key; `ConfigurationError` when unusable."""
    me = resolve_instance(settings, environ, clock)
    where = region or resolve_region(settings, environ, me.region)
    key = None
    if settings.license_token_key is not None:
        path = str(settings.license_token_key)
        key = load_key_file(path, env_name("license_token_key"), "the SignedToken")
        if settings.image_policy is not None:
            settings.image_policy.pinned_token(key.fingerprint, path)
    if settings.license_anywhere_dir is not None:
        session = _anywhere(settings, me, where)
        return Context(settings, me, where, ANYWHERE_CREDENTIALS, clock, session, key)
    identity = environment.detect_identity(environ)
    if identity.kind == "irsa":
        check_readable(environ["AWS_WEB_IDENTITY_TOKEN_FILE"], "AWS_WEB_IDENTITY_TOKEN_FILE")
    if identity.kind in {"irsa", "ecs-task-role"}:
        log.info("AWS identity: %s", identity.detail, extra={"identity": identity.kind})
    else:
        log.warning(
            "AWS identity is %s: AWS documents IRSA (EKS) and the task role (ECS) for License "
            "Manager; whether it accepts EKS Pod Identity is not documented",
            identity.kind,
            extra={"identity": identity.kind},
        )
    return Context(settings, me, where, identity.kind, clock, None, key)


def _anywhere(settings: SidecarSettings, me: instance.Instance, region: str) -> Any:
    """A boto3 session on the buyer's license token (Containers Anywhere)."""
    from entitlement_sidecar.aws import anywhere

    variable = env_name("license_anywhere_dir")
    secret = anywhere.SecretFiles(str(settings.license_anywhere_dir), variable)
    secret.check()
    provider = anywhere.LicenseTokenProvider(secret, region, anywhere.session_name(me.id))
    log.info(
        "AWS identity: Containers Anywhere license token (role %s)",
        secret.role_arn(),
        extra={"identity": ANYWHERE_CREDENTIALS},
    )
    return anywhere.session(provider)
