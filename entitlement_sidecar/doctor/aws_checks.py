"""Doctor checks of the way to AWS: identity, Region, endpoint reachability, clock.

Identity is decided offline where the environment tells (IRSA, the ECS task role, and the kinds
AWS Marketplace refuses: static keys, a profile, EKS Pod Identity); only when nothing else is set
does it ask IMDS, which is what boto3 would fall back to (the node role). Network probes use short
timeouts and never send an AWS request.
"""

from __future__ import annotations

from entitlement_sidecar.aws.environment import (
    Identity,
    detect_identity,
    is_local_endpoint,
    metering_endpoint,
    region_and_source,
)
from entitlement_sidecar.doctor import network
from entitlement_sidecar.doctor.context import Context
from entitlement_sidecar.doctor.findings import Finding, fail, ok, warn
from entitlement_sidecar.errors import ConfigurationError

IRSA_FIX = (
    "annotate the pod's service account with eks.amazonaws.com/role-arn (our charts: "
    "serviceAccount.roleArn; an EKS add-on: create it with a service-account role)"
)
FIXES = {
    "irsa-incomplete": IRSA_FIX,
    "pod-identity": "remove the EKS Pod Identity association (AWS Marketplace refuses it) and "
    + IRSA_FIX,
    "static-keys": "remove AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from the pod and use IRSA "
    "on EKS or the task role on ECS",
    "profile": "remove AWS_PROFILE from the pod and use IRSA on EKS or the task role on ECS",
}
SKEW_FAIL = 300.0  # SigV4 refuses requests whose time is more than 5 minutes off
SKEW_WARN = 30.0


def identity(ctx: Context) -> Finding:
    """The credentials boto3 will sign with, and whether AWS Marketplace accepts them."""
    found = detect_identity(ctx.environ)
    if found.supported:
        return _accepted(ctx, found)
    if is_local_endpoint(ctx.environ) and found.kind in {"static-keys", "profile"}:
        return ok(
            "identity",
            f"{found.kind} against a local endpoint (an emulator accepts them; AWS would not)",
        )
    if found.kind == "node-or-default":
        return _fallback(ctx)
    return fail("identity", found.detail, FIXES.get(found.kind, IRSA_FIX))


def _accepted(ctx: Context, found: Identity) -> Finding:
    if found.kind == "irsa":
        problem = network.readable(ctx.environ["AWS_WEB_IDENTITY_TOKEN_FILE"])
        if problem is not None:
            return fail(
                "identity",
                f"IRSA is configured but its token is unreadable: {problem}",
                "keep the projected service-account token volume mounted in this container",
            )
    return ok("identity", found.detail)


def _fallback(ctx: Context) -> Finding:
    """No credentials in the environment: what boto3 would fall back to (IMDS: the node role)."""
    role = network.imds_role(ctx.environ, min(ctx.timeout, 2.0))
    if role is not None:
        return fail(
            "identity",
            f"no IRSA: boto3 would use the node role {role!r} from IMDS, which AWS Marketplace "
            "refuses (PlatformNotSupportedException)",
            IRSA_FIX,
        )
    return fail("identity", "no AWS credentials at all (no IRSA, no task role)", IRSA_FIX)


def region(ctx: Context) -> Finding:
    """The Region the calls go to, and where it came from."""
    override = ctx.settings.region if ctx.settings is not None else None
    try:
        ctx.region, source = region_and_source(
            override, ctx.environ, override_variable=ctx.variable("region")
        )
    except ConfigurationError as error:
        return fail("region", str(error), "set the chart value region (or AWS_REGION)")
    return ok("region", f"{ctx.region} (from {source})")


def endpoint(ctx: Context) -> Finding:
    """The Metering endpoint resolves and accepts a TCP connection (directly or via a proxy)."""
    if ctx.region is None:
        return fail("endpoint", "not checked: no Region", "fix the region check first")
    url, source = metering_endpoint(ctx.region, ctx.environ)
    return reach(ctx, url, source, _route_fix(ctx))


def reach(ctx: Context, url: str, source: str, fix: str) -> Finding:
    """`url` resolves and accepts a TCP connection; on success it is the clock check's endpoint."""
    where = network.target(url, ctx.environ)
    hop_host, hop_port = where.first_hop
    route = f"through proxy {hop_host}:{hop_port}" if where.proxy else "direct"
    addresses = network.resolve(hop_host, hop_port, ctx.timeout)
    if isinstance(addresses, str):
        return fail("endpoint", f"{url} ({source}), {route}: {addresses}", fix)
    connected = network.connect(addresses[0], hop_port, ctx.timeout)
    if isinstance(connected, str):
        return fail("endpoint", f"{url} ({source}), {route}: {connected}", fix)
    ctx.endpoint = url
    kinds = {network.address_kind(address) for address in addresses}
    path = route
    if not where.proxy and "private" in kinds and where.host.endswith(".amazonaws.com"):
        path = "through a VPC interface endpoint (private address)"
    elif "loopback" in kinds:
        path = "a local endpoint (an emulator or a local proxy)"
    shown = ", ".join(addresses[:3])
    return ok("endpoint", f"{url} ({source}) reachable {path}: {shown}, {connected * 1000:.0f} ms")


def _route_fix(ctx: Context) -> str:
    region = ctx.region or "<region>"
    return (
        f"allow egress to metering.marketplace.{region}.amazonaws.com:443, or create a VPC "
        f"interface endpoint for com.amazonaws.{region}.metering.marketplace, or set the chart "
        "value proxy.https"
    )


def clock(ctx: Context) -> Finding:
    """This machine's clock against the endpoint's `Date` header (SigV4 allows 5 minutes)."""
    if ctx.endpoint is None:
        return warn("clock", "not checked: the endpoint is unreachable", "fix the endpoint first")
    answer = network.server_clock_offset(ctx.endpoint, ctx.environ, ctx.timeout)
    if isinstance(answer, str):
        return warn("clock", f"not checked: {answer}", "fix the endpoint first")
    offset, date = answer
    found = f"{abs(offset):.0f} s {'behind' if offset > 0 else 'ahead of'} the endpoint ({date})"
    fix = "synchronise the node's clock (chrony / Amazon Time Sync Service)"
    if abs(offset) > SKEW_FAIL:
        return fail("clock", f"{found}: AWS refuses signatures more than 5 minutes off", fix)
    if abs(offset) > SKEW_WARN:
        return warn("clock", found, fix)
    return ok("clock", found)
