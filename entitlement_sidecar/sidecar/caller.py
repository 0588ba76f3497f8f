"""Who is calling AWS and where: this instance's identity, region, endpoint and credentials.

The short-lived children that call AWS with this pod's or task's own identity need the same
answers before their first call: registration (RegisterUsage), the usage sender (MeterUsage) and,
for the instance and the IRSA check only, the License Manager children (`license/context.py`).
The instance comes from `POD_UID`, the ECS task metadata (retried briefly: the agent may still be
starting) or `ENTITLEMENT_INSTANCE_ID`; the region from the settings, the standard variables or the
task ARN; an endpoint override must be a URL (else a configuration error naming the variable); the
credentials check warns when AWS Marketplace would refuse them (not for a loopback endpoint: the
local emulator) and fails early, naming the variable, when the IRSA token file cannot be read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from entitlement_sidecar.aws import environment
from entitlement_sidecar.errors import BudgetExhausted, ConfigurationError
from entitlement_sidecar.retry import Backoff, call_with_retry
from entitlement_sidecar.sidecar import instance
from entitlement_sidecar.sidecar.outcome import Clock
from entitlement_sidecar.sidecar.settings import SidecarSettings, env_name

log = logging.getLogger(__name__)

# A pod without IRSA (the chart rendered no role annotation): say what it runs as instead.
NO_IRSA_KINDS = frozenset({"node-or-default", "pod-identity", "irsa-incomplete"})
NO_IRSA_ON_EKS = (
    "no IRSA role: this pod's ServiceAccount has no eks.amazonaws.com/role-arn annotation, so the "
    "sidecar runs as the node's IAM role or (for example as an EKS add-on) with EKS Pod Identity, "
    "and AWS Marketplace refuses both"
)


def identify(
    settings: SidecarSettings, environ: Mapping[str, str], clock: Clock
) -> tuple[instance.Instance, str]:
    """(this instance, the region) after checking the AWS identity; `ConfigurationError` if none."""
    me = resolve_instance(settings, environ, clock)
    region = environment.resolve_region(
        settings.region, environ, me.region, override_variable=env_name("region")
    )
    endpoint = environment.endpoint_override(environ)
    identity = environment.detect_identity(environ)
    if identity.kind == "irsa":
        check_readable(environ["AWS_WEB_IDENTITY_TOKEN_FILE"], "AWS_WEB_IDENTITY_TOKEN_FILE")
    if identity.supported or (endpoint is not None and endpoint.local):
        log.info("AWS identity: %s", identity.detail, extra={"identity": identity.kind})
    else:
        detail = identity.detail
        if me.kind == "pod" and identity.kind in NO_IRSA_KINDS:
            detail = f"{NO_IRSA_ON_EKS}: {detail}"
        log.warning(
            "AWS identity not accepted by AWS Marketplace (%s); expect "
            "PlatformNotSupportedException",
            detail,
            extra={"identity": identity.kind},
        )
    return me, region


def resolve_instance(
    settings: SidecarSettings, environ: Mapping[str, str], clock: Clock
) -> instance.Instance:
    """This pod or task (`ENTITLEMENT_INSTANCE_ID` only without a platform identity)."""
    env = dict(environ)
    if settings.instance_id:
        env[instance.INSTANCE_ID_ENV] = settings.instance_id
    try:
        return call_with_retry(
            lambda: instance.resolve(env),
            budget=min(settings.startup_timeout, 60.0),
            backoff=Backoff(0.2, 2.0, 5.0),
            sleep=clock.sleep,
            monotonic=clock.monotonic,
        )
    except BudgetExhausted as exhausted:
        raise ConfigurationError(
            f"{instance.ECS_METADATA_ENV}: task metadata unavailable ({exhausted.last.message})",
            variable=instance.ECS_METADATA_ENV,
        ) from None


def check_readable(path: str, variable: str) -> None:
    """`ConfigurationError` naming `variable` unless `path` is a readable file (botocore would
    otherwise fail inside the first AWS call with a bare OSError)."""
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ConfigurationError(
            f"{variable}={path} is not readable ({exc.strerror or exc}): is the service "
            "account token projected into this container?",
            variable=variable,
        ) from None
