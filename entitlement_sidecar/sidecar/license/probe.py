"""`check` in License Manager mode: may this pod serve, and does it hold an entitlement?

The exec probe and ECS health check answer what `/readyz` answers (`readiness.py`): entitled, or
after a loss as the seller's policy says, for this instance and the configured SKU. `--verify`
adds the image's SKU allow-list, the instance as the platform reports it (ECS: task metadata) and,
when the image carries `ENTITLEMENT_LICENSE_TOKEN_KEY`, the SignedToken in `token.jwt` (PS256 with
that key, for this license, the one `status.json` describes; it attests the last successful
check, whose freshness the heartbeat keeps, so its own `expiration` is not judged here).
`--entitlement NAME` requires NAME in `entitlements.json` (so an app gates a feature). Lean:
json, os, hashlib; no typing at runtime.
"""

from __future__ import annotations

import hashlib
import time

from entitlement_sidecar.sidecar import envlite, status
from entitlement_sidecar.sidecar.commands.check import NotEntitled, check_instance
from entitlement_sidecar.sidecar.defaults import ENV_PREFIX, MODE_LICENSE_MANAGER
from entitlement_sidecar.sidecar.license.readiness import license_of, serving

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from entitlement_sidecar.sidecar.policy import Policy


def license_check(
    doc: Mapping[str, Any] | None,
    status_dir: str,
    environ: Mapping[str, str],
    *,
    verify: bool,
    names: Sequence[str],
    image_policy: Policy | None = None,
) -> str:
    """The success line; `NotEntitled` with one line otherwise."""
    if doc is None:
        raise NotEntitled("status.json is missing, unreadable or not a version-1 document")
    if doc.get("mode") != MODE_LICENSE_MANAGER:
        raise NotEntitled("status.json was not written in License Manager mode")
    check_instance(doc, environ)
    block = license_of(doc)
    if block.get("sku") != envlite.product_sku(environ):
        raise NotEntitled("status.json is about another product SKU")
    ok, why = serving(doc, time.time())
    if not ok:
        raise NotEntitled(why)
    if verify:
        _verify(doc, block, status_dir, environ, image_policy)
    held = _held(names, block, status_dir)
    said = "entitled" if doc.get("entitled") is True else f"serving: {why}"
    return said + (f" ({held})" if held else "") + (" (verified)" if verify else "")


def _held(names: Sequence[str], block: Mapping[str, Any], status_dir: str) -> str:
    if not names:
        return ""
    granted = status.read_entitlements(status_dir) or {}
    recorded = block.get("entitlements")
    recorded = recorded if isinstance(recorded, dict) else {}
    for name in names:
        value = granted.get(name)
        if value is None or value is False or value == 0 or isinstance(value, str):
            raise NotEntitled(f"entitlement {name!r} is not held")
        if recorded.get(name) != value:
            raise NotEntitled("entitlements.json does not match status.json")
    return ", ".join(f"{name}={granted[name]}" for name in names)


def _verify(
    doc: Mapping[str, Any],
    block: Mapping[str, Any],
    status_dir: str,
    environ: Mapping[str, str],
    image_policy: Policy | None,
) -> None:
    from entitlement_sidecar.errors import TransientError
    from entitlement_sidecar.sidecar import instance

    sku = envlite.product_sku(environ) or ""
    trusted = envlite.trusted_product_skus(environ)
    if trusted and sku not in trusted:
        raise NotEntitled(
            f"UntrustedProductSku: {sku!r} is not in {ENV_PREFIX}TRUSTED_PRODUCT_SKUS"
        )
    try:
        me = instance.resolve(environ)
    except TransientError as error:
        raise NotEntitled(f"cannot tell which instance this is: {error}") from None
    if doc.get("instance") != me.id:
        raise NotEntitled("status.json was issued to another instance")
    key_path = envlite.license_token_key(environ)
    if key_path is not None:
        _verify_signed_token(block, status_dir, key_path, doc.get("token_sha256"), image_policy)


def _verify_signed_token(
    block: Mapping[str, Any],
    status_dir: str,
    key_path: str,
    digest: object,
    image_policy: Policy | None,
) -> None:
    from entitlement_sidecar.sidecar.keyring import load_key_file
    from entitlement_sidecar.sidecar.signature import TokenRejected, verified_payload

    key = load_key_file(key_path, ENV_PREFIX + "LICENSE_TOKEN_KEY", "the SignedToken")
    if image_policy is not None:
        image_policy.pinned_token(key.fingerprint, key_path)
    token = status.read_token(status_dir)
    if token is None:
        raise NotEntitled("token.jwt (the SignedToken) is missing or unreadable")
    if hashlib.sha256(token.encode("ascii")).hexdigest() != digest:
        raise NotEntitled("status.json does not describe token.jwt")
    try:
        payload = verified_payload(token, key)
    except TokenRejected as rejected:
        raise NotEntitled(f"SignedToken rejected: {rejected}") from None
    if payload.get("licenseArn") != block.get("arn"):
        raise NotEntitled("the SignedToken is for another license")
