"""The trusted product-code allow-list: one refusal shared by `register` and `check --verify`.

AWS's anti-tamper advice: when a buyer can change the product code (a Helm value, an environment
variable), the seller bakes the list of codes the image may run as into the image, so nobody swaps
in a free product's code for a paid one. Lean: `check` imports it.
"""

from __future__ import annotations

from entitlement_sidecar.sidecar.defaults import ENV_PREFIX

UNTRUSTED_PRODUCT_CODE = "UntrustedProductCode"
VARIABLE = ENV_PREFIX + "TRUSTED_PRODUCT_CODES"


def untrusted(product_code: str, trusted: frozenset[str]) -> str | None:
    """Why `product_code` may not be used with this image, or None when it may."""
    if trusted and product_code not in trusted:
        return f"{product_code!r} is not in {VARIABLE} (the allow-list baked into the image)"
    return None
