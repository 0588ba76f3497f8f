"""Doctor checks of what the image and the pod spec set up: settings, status volume, keys, trust.

Offline: they read settings, files and directories only. The settings check uses the very models
`run` and the operator load, so its message is the one they would exit with.
"""

from __future__ import annotations

from entitlement_sidecar.doctor.context import OPERATOR, Context
from entitlement_sidecar.doctor.findings import Finding, fail, ok, warn
from entitlement_sidecar.doctor.network import writable_directory
from entitlement_sidecar.errors import ConfigurationError

# Where a buyer or vendor sets what a variable reads, in our charts (the fix names it).
CHART_VALUES = {
    "ENTITLEMENT_PRODUCT_CODE": "the chart value productCode",
    "ENTITLEMENT_REGION": "the chart value region",
    "ENTITLEMENT_PRODUCT_SKU": "the chart value license.productSku",
    "ENTITLEMENT_LICENSE_REGION": "the chart value license.region",
    "ENTITLEMENT_OPERATOR_PRODUCT_CODE": "the chart value productCode",
    "ENTITLEMENT_OPERATOR_DIMENSIONS": "the chart value operator.dimensions",
    "ENTITLEMENT_OPERATOR_REGION": "the chart value region",
}


def settings(ctx: Context) -> Finding:
    """The settings load exactly as `run` (or the operator) loads them."""
    try:
        if ctx.component == OPERATOR:
            from entitlement_sidecar.operator.settings import OperatorSettings

            ctx.settings = OperatorSettings.load()
        else:
            from entitlement_sidecar.sidecar.settings import SidecarSettings

            ctx.settings = SidecarSettings.load()
    except ConfigurationError as error:
        where = CHART_VALUES.get(error.variable, error.variable or "the setting named")
        return fail("settings", str(error), f"set a valid value in {where}")
    sku = getattr(ctx.settings, "product_sku", None)
    if sku:
        return ok("settings", f"valid (License Manager mode, product SKU {sku})")
    return ok("settings", f"valid (product {ctx.settings.product_code})")


def status_dir(ctx: Context) -> Finding:
    """The status volume exists and this user can write to it."""
    directory = str(ctx.settings.status_dir)
    problem = writable_directory(directory)
    if problem is not None:
        return fail(
            "status-dir",
            f"not writable: {problem}",
            "mount a writable volume at ENTITLEMENT_STATUS_DIR (the chart's emptyDir "
            "entitlement-status) and give UID 65532 write access (pod securityContext.fsGroup)",
        )
    return ok("status-dir", f"{directory} is writable")


def key_ring(ctx: Context) -> Finding:
    """The image's key ring holds a usable key for the requested version."""
    from entitlement_sidecar.sidecar.keyring import load_key

    version = ctx.settings.public_key_version
    directory = str(ctx.settings.public_keys)
    try:
        key = load_key(directory, version, ctx.settings.image_policy)
    except ConfigurationError as error:
        return fail(
            "key-ring",
            str(error),
            f"bake the SPKI PEM that AWS Marketplace issued for public key version {version} "
            f"into the image as {directory}/{version}.pem",
        )
    found = f"version {version}: RSA-{key.n.bit_length()}, sha256:{key.fingerprint[:16]}"
    if not ctx.settings.verify_signature:
        return warn(
            "key-ring",
            f"{found}, but signature verification is switched off",
            "remove ENTITLEMENT_VERIFY_SIGNATURE=false: without it any token is accepted",
        )
    return ok("key-ring", found)


def trusted_codes(ctx: Context) -> Finding:
    """The image's allow-list of product codes contains the configured one."""
    from entitlement_sidecar.sidecar.trust import VARIABLE, untrusted

    code = ctx.settings.product_code
    trusted = ctx.settings.trusted_product_codes
    if not trusted:
        return warn(
            "trusted-codes",
            "no allow-list: whoever edits the pod spec can set any product code",
            f"bake {VARIABLE} (your paid product codes) into the seller image",
        )
    why = untrusted(code, trusted)
    if why is not None:
        return fail(
            "trusted-codes",
            why,
            "set productCode to one of the image's trusted product codes",
        )
    return ok("trusted-codes", f"{code} is in the image's allow-list")
