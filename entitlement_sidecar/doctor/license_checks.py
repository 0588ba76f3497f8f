"""Doctor checks for License Manager mode (contract pricing, `ENTITLEMENT_PRODUCT_SKU`).

They replace the RegisterUsage checks (key ring, product codes, RegisterUsage permission) when the
sidecar checks a License Manager license out. CheckoutLicense has no dry run and every call of it
takes a seat or draws units down, so the doctor never calls it: it reads the buyer's licenses for
the SKU (ListReceivedLicenses, which consumes nothing) with the sidecar's own credentials, and says
what the start gate would find: no license, one not issued by AWS Marketplace, expired, not yet
active, or one that lacks what the image checks out. `status.json` says what the last real
checkout answered.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from entitlement_sidecar.aws.environment import (
    LICENSE_MANAGER_ENDPOINT_VARIABLES,
    detect_identity,
    is_local_endpoint,
    license_manager_endpoint,
)
from entitlement_sidecar.doctor import aws_checks
from entitlement_sidecar.doctor.context import Context
from entitlement_sidecar.doctor.findings import Finding, fail, ok, warn
from entitlement_sidecar.doctor.permission_checks import DENIED_CODES
from entitlement_sidecar.errors import ConfigurationError, PermanentError, TransientError

LICENSE_FIX = (
    "grant license-manager:CheckoutLicense, CheckInLicense, ExtendLicenseConsumption, GetLicense "
    "and ListReceivedLicenses to the sidecar's IAM role "
    "(manifests/iam/policy-sidecar-license-manager.json)"
)
REASON_FIXES = {
    "LicenseNotFound": "the buyer accepts the contract offer in AWS Marketplace (its license is "
    "created in the buyer's home Region: set the chart value license.region to it)",
    "UntrustedIssuer": "only licenses AWS Marketplace issues entitle; the buyer subscribes "
    "through AWS Marketplace",
    "LicenseExpired": "the buyer renews the contract",
    "LicenseNotActive": "wait for the agreement's start date, or ask the buyer to check the "
    "agreement in AWS Marketplace",
    "EntitlementNotInLicense": "the buyer upgrades the contract, or the seller bakes the "
    "entitlements the product's dimensions actually grant",
}
DOCUMENTED = {"irsa", "ecs-task-role"}


def product_sku(ctx: Context) -> Finding:
    """The SKU is the image's (baked), or at least in the image's allow-list."""
    settings = ctx.settings
    sku = settings.product_sku
    policy = settings.image_policy
    if policy is not None and policy.fixed.get("ENTITLEMENT_PRODUCT_SKU"):
        return ok("product-sku", f"{sku} is baked into the image (the pod spec cannot change it)")
    trusted = settings.trusted_product_skus
    if trusted and sku not in trusted:
        return fail(
            "product-sku",
            f"{sku!r} is not in ENTITLEMENT_TRUSTED_PRODUCT_SKUS: the start gate refuses it",
            "set license.productSku to the product ID the image was built for",
        )
    if trusted:
        return ok("product-sku", f"{sku} is in the image's allow-list")
    return warn(
        "product-sku",
        f"{sku} is not baked into the image: whoever edits the pod spec can set another",
        "bake it: entitlement-sidecar policy bake --set ENTITLEMENT_PRODUCT_SKU=<product ID>",
    )


def identity(ctx: Context) -> Finding:
    """The credentials the License Manager calls will be signed with."""
    settings = ctx.settings
    if settings is not None and settings.anywhere:
        from entitlement_sidecar.aws.anywhere import SecretFiles

        secret = SecretFiles(
            str(settings.license_anywhere_dir), ctx.variable("license_anywhere_dir")
        )
        try:
            secret.check()
        except ConfigurationError as error:
            return fail(
                "identity",
                str(error),
                "create the buyer's Secret (keys license_token, iam_role) and name it in the "
                "chart value license.anywhere.secretName",
            )
        return ok("identity", f"Containers Anywhere license token, role {secret.role_arn()}")
    found = detect_identity(ctx.environ)
    if found.kind in DOCUMENTED:
        return aws_checks.identity(ctx)
    if is_local_endpoint(ctx.environ, LICENSE_MANAGER_ENDPOINT_VARIABLES):
        return ok("identity", f"{found.kind} against a local endpoint (an emulator)")
    return warn(
        "identity",
        f"{found.detail}: License Manager accepts any identity of the buyer's account that holds "
        "its permissions, but AWS documents IRSA on EKS and the task role on ECS (EKS Pod "
        "Identity: not documented)",
        aws_checks.IRSA_FIX,
    )


def region(ctx: Context) -> Finding:
    """The License Manager Region (the buyer's license lives in one)."""
    from entitlement_sidecar.sidecar.license.context import resolve_region

    try:
        ctx.region = resolve_region(ctx.settings, ctx.environ, None)
    except ConfigurationError as error:
        return fail("region", str(error), "set the chart value license.region (or region)")
    return ok("region", f"{ctx.region} (License Manager)")


def endpoint(ctx: Context) -> Finding:
    """The License Manager endpoint resolves and accepts a TCP connection."""
    if ctx.region is None:
        return fail("endpoint", "not checked: no Region", "fix the region check first")
    url, source = license_manager_endpoint(ctx.region, ctx.environ)
    fix = (
        f"allow egress to license-manager.{ctx.region}.amazonaws.com:443 (and sts for Containers "
        f"Anywhere), or create a VPC interface endpoint for com.amazonaws.{ctx.region}."
        "license-manager, or set the chart value proxy.httpsProxy"
    )
    return aws_checks.reach(ctx, url, source, fix)


def license_(ctx: Context) -> Finding:
    """What the start gate would find among the buyer's licenses for the SKU (nothing consumed)."""
    from entitlement_sidecar.aws.license_manager import License, received_licenses
    from entitlement_sidecar.sidecar.license.diagnosis import current_license, shortfall

    settings = ctx.settings
    if ctx.region is None:
        return fail("license", "not checked: no Region", "fix the region check first")
    try:
        licenses = received_licenses(_client(ctx), settings.product_sku)
    except (ConfigurationError, TransientError, PermanentError) as error:
        return _unread(error)
    found: License | tuple[str, str] = current_license(
        settings.product_sku, licenses, datetime.now(UTC)
    )
    if isinstance(found, License):
        found = shortfall(found, settings.wants) or found
    if isinstance(found, tuple):
        reason, message = found
        return fail("license", f"{reason}: {message}", REASON_FIXES.get(reason, LICENSE_FIX))
    until = found.end.strftime("%Y-%m-%d") if found.end else "no end date"
    grants = ", ".join(
        f"{item.name}={item.max_count}" if item.max_count is not None else item.name
        for item in found.entitlements
    )
    summary = (
        f"{found.arn} from AWS Marketplace, {found.status} until {until}, grants {grants or '?'} "
        f"(read with ListReceivedLicenses; CheckoutLicense has no dry run: {_last_checkout(ctx)})"
    )
    return _seats(ctx, found.arn, summary)


def _seats(ctx: Context, arn: str, summary: str) -> Finding:
    """Free units of every counted entitlement the image checks out (GetLicenseUsage)."""
    from entitlement_sidecar.aws.license_manager import usage

    counted = dict(ctx.settings.wants.counted)
    if not counted:
        return ok("license", summary)
    try:
        in_use = usage(_client(ctx), arn)
    except (TransientError, PermanentError) as error:
        return warn(
            "license",
            f"{summary}; free seats not read: GetLicenseUsage {getattr(error, 'code', error)}",
            "grant license-manager:GetLicenseUsage to the pod's role for this check (optional)",
        )
    lines, short = [], []
    for name, units in sorted(counted.items()):
        used, most = in_use.get(name, (0, None))
        free = None if most is None else most - used
        lines.append(f"{name}: {used} of {most if most is not None else '?'} in use")
        if free is not None and free < units:
            short.append(name)
    seats = "; ".join(lines)
    if short:
        return warn(
            "license",
            f"{summary}; {seats}: no free unit of {', '.join(short)} for a new pod now",
            "a new pod waits until a seat is returned (pods stopping check theirs in); buy more "
            "units or scale down",
        )
    return ok("license", f"{summary}; {seats}")


def _unread(error: Exception) -> Finding:
    """The licenses could not be read: why, and what to do."""
    if isinstance(error, ConfigurationError):
        return fail("license", str(error), "fix the identity check first")
    if isinstance(error, TransientError):
        return warn("license", f"ListReceivedLicenses not answered: {error}", "run again later")
    code = getattr(error, "code", "")
    if code in DENIED_CODES:
        return fail("license", f"ListReceivedLicenses refused: {code}", LICENSE_FIX)
    return fail("license", f"ListReceivedLicenses: {code}: {error}", LICENSE_FIX)


def _client(ctx: Context) -> Any:
    from entitlement_sidecar.aws.license_manager import make_client

    settings = ctx.settings
    session = None
    if settings.anywhere:
        from entitlement_sidecar.aws import anywhere

        secret = anywhere.SecretFiles(
            str(settings.license_anywhere_dir), ctx.variable("license_anywhere_dir")
        )
        provider = anywhere.LicenseTokenProvider(
            secret, str(ctx.region), anywhere.session_name("doctor")
        )
        session = anywhere.session(provider)
    return make_client(str(ctx.region), session=session, connect_timeout=3.0, read_timeout=5.0)


def _last_checkout(ctx: Context) -> str:
    """What status.json says the last real checkout answered."""
    from entitlement_sidecar.sidecar import status

    doc = status.read(str(ctx.settings.status_dir)) or {}
    block = doc.get("license") if doc.get("mode") == "license-manager" else None
    if not isinstance(block, dict) or not block.get("result"):
        return "status.json records no checkout yet"
    return f"the last one ended {block.get('result')} ({doc.get('reason') or doc.get('state')})"
