"""What the AWS environment around us is: which region, endpoint and identity boto3 will use.

Two AWS facts make this its own concern. botocore reads `AWS_DEFAULT_REGION` but not `AWS_REGION`,
so we resolve the region ourselves and pass it explicitly. And the Metering API accepts only IRSA
on EKS and the task role on ECS, while botocore silently falls back to whatever else it finds
(static keys, a profile, EKS Pod Identity, the node role): we look at the environment the way
botocore's credential chain does and say plainly which identity will be used and whether AWS
supports it. An endpoint override (`AWS_ENDPOINT_URL_MARKETPLACE_METERING`, `AWS_ENDPOINT_URL`:
VPC endpoints, the local emulator) is checked here too, so a malformed one is a configuration
error naming the variable instead of a botocore traceback. Pure functions of an environment
mapping; no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from entitlement_sidecar.aws import rules
from entitlement_sidecar.errors import ConfigurationError

REGION_PATTERN = re.compile(rules.REGION)

# Endpoint overrides botocore honours for the Metering client, the specific one first.
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_MARKETPLACE_METERING", "AWS_ENDPOINT_URL")

# EKS Pod Identity's agent listens here; the Metering API does not accept its credentials.
POD_IDENTITY_HOSTS = frozenset({"169.254.170.23", "fd00:ec2::23", "[fd00:ec2::23]"})
# ...and the pod's token for it is projected here (the agent's address can be overridden).
POD_IDENTITY_TOKEN_DIR = "/var/run/secrets/pods.eks.amazonaws.com/"  # noqa: S105 - a path
# botocore's variables for a service's endpoint (Metering's service id is "Marketplace Metering").
METERING_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_MARKETPLACE_METERING", "AWS_ENDPOINT_URL")


def resolve_region(
    override: str | None,
    environ: Mapping[str, str],
    ecs_region: str | None = None,
    *,
    override_variable: str = "ENTITLEMENT_REGION",
) -> str:
    """The region: `override`, else `AWS_REGION`, else `AWS_DEFAULT_REGION`, else ECS metadata."""
    return region_and_source(override, environ, ecs_region, override_variable=override_variable)[0]


def region_and_source(
    override: str | None,
    environ: Mapping[str, str],
    ecs_region: str | None = None,
    *,
    override_variable: str = "ENTITLEMENT_REGION",
) -> tuple[str, str]:
    """(region, where it came from), in `resolve_region`'s order; `ConfigurationError` if none."""
    candidates = (
        (override_variable, override),
        ("AWS_REGION", environ.get("AWS_REGION")),
        ("AWS_DEFAULT_REGION", environ.get("AWS_DEFAULT_REGION")),
        ("ECS task metadata", ecs_region),
    )
    for source, value in candidates:
        if value is None or not value.strip():
            continue
        region = value.strip()
        if not REGION_PATTERN.fullmatch(region):
            raise ConfigurationError(
                f"{source}={region!r} is not an AWS region name (like us-east-1)",
                variable=source,
            )
        return region, source
    raise ConfigurationError(
        f"no AWS region: set {override_variable}, AWS_REGION or AWS_DEFAULT_REGION",
        variable=override_variable,
    )


@dataclass(frozen=True)
class Identity:
    """The credentials botocore will pick up, and whether the Metering API accepts them."""

    kind: str
    supported: bool
    detail: str


def detect_identity(environ: Mapping[str, str]) -> Identity:  # noqa: PLR0911 - one per link
    """Follow botocore's credential-chain order over `environ` and name the identity it will use."""
    if environ.get("AWS_ACCESS_KEY_ID"):
        return Identity(
            "static-keys",
            False,
            "AWS_ACCESS_KEY_ID is set: long-term or injected keys are used; AWS Marketplace "
            "accepts only IRSA on EKS and the task role on ECS",
        )
    if environ.get("AWS_PROFILE"):
        return Identity(
            "profile",
            False,
            f"AWS_PROFILE={environ['AWS_PROFILE']} is set: a shared-config profile is used, "
            "which AWS Marketplace does not accept on EKS/ECS",
        )
    if environ.get("AWS_ROLE_ARN") and environ.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        return Identity("irsa", True, f"IRSA role {environ['AWS_ROLE_ARN']}")
    if environ.get("AWS_ROLE_ARN") or environ.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        return Identity(
            "irsa-incomplete",
            False,
            "only one of AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE is set: IRSA is not "
            "configured (is the service account annotated with eks.amazonaws.com/role-arn?)",
        )
    full_uri = environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
    token_file = environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "")
    if full_uri and (
        urlsplit(full_uri).hostname in POD_IDENTITY_HOSTS
        or token_file.startswith(POD_IDENTITY_TOKEN_DIR)
        # Inside a Kubernetes pod, a container credentials endpoint can only be Pod Identity's.
        or environ.get("KUBERNETES_SERVICE_HOST")
    ):
        return Identity(
            "pod-identity",
            False,
            "EKS Pod Identity credentials: AWS Marketplace requires IRSA on EKS",
        )
    if environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") or full_uri:
        return Identity("ecs-task-role", True, "ECS task role (container credentials endpoint)")
    return Identity(
        "node-or-default",
        False,
        "no IRSA and no ECS task role: boto3 would fall back to the node's instance role, "
        "which AWS Marketplace rejects",
    )


def metering_endpoint(region: str, environ: Mapping[str, str]) -> tuple[str, str]:
    """(the Metering endpoint URL boto3 will call, where it came from)."""
    default = f"https://metering.marketplace.{region}.amazonaws.com"
    return _endpoint(METERING_ENDPOINT_VARIABLES, default, environ)


def _endpoint(
    variables: tuple[str, ...], default: str, environ: Mapping[str, str]
) -> tuple[str, str]:
    """(the first of `variables` that is set, its name), else (`default`, why)."""
    for variable in variables:
        value = environ.get(variable, "").strip()
        if value:
            return value, variable
    return default, "the default for the Region"


# ...and for the License Manager client (service id "License Manager").
LICENSE_MANAGER_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_LICENSE_MANAGER", "AWS_ENDPOINT_URL")


def license_manager_endpoint(region: str, environ: Mapping[str, str]) -> tuple[str, str]:
    """(the License Manager endpoint URL boto3 will call, where it came from)."""
    default = f"https://license-manager.{region}.amazonaws.com"
    return _endpoint(LICENSE_MANAGER_ENDPOINT_VARIABLES, default, environ)


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def is_local_endpoint(
    environ: Mapping[str, str], variables: tuple[str, ...] = METERING_ENDPOINT_VARIABLES
) -> bool:
    """True when the Metering (or other `variables`') endpoint points at this machine (the local
    emulator). There, any credentials are accepted: the identity warnings that matter against AWS
    are noise.
    """
    for variable in variables:
        value = environ.get(variable, "").strip()
        if value:
            host = urlsplit(value).hostname or ""
            return host in LOOPBACK_HOSTS or host.startswith("127.")
    return False


@dataclass(frozen=True)
class Endpoint:
    """An endpoint override: the variable that set it, the URL, its host[:port], and whether it
    is a loopback address (the local emulator, where AWS's identity rules do not apply)."""

    variable: str
    url: str
    host: str
    local: bool


def endpoint_override(environ: Mapping[str, str]) -> Endpoint | None:
    """The endpoint botocore will use instead of AWS's (None: AWS's own); malformed: an error."""
    for variable in ENDPOINT_VARIABLES:
        url = (environ.get(variable) or "").strip()
        if not url:
            continue
        try:
            parts = urlsplit(url)
            _port = parts.port  # raises ValueError for a port that is not a number in range
        except ValueError as exc:
            raise ConfigurationError(f"{variable}={url!r}: {exc}", variable=variable) from None
        if parts.scheme not in {"http", "https"} or not parts.hostname or " " in url:
            raise ConfigurationError(
                f"{variable}={url!r} is not an endpoint URL (like https://host[:port])",
                variable=variable,
            )
        return Endpoint(variable, url, parts.netloc, _loopback(parts.hostname))
    return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))
