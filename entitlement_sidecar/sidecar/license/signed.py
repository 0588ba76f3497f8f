"""Check a CheckoutLicense `SignedToken` against the key the seller baked into the image.

Only when the seller configures `ENTITLEMENT_LICENSE_TOKEN_KEY`: AWS does not document which key
signs the tokens of licenses AWS Marketplace issues, so without one the trust anchor is the pinned
issuer fingerprint sent over TLS. With one, the token must be a PS256 compact JWS that verifies
with that key (RSASSA-PSS SHA-256, as License Manager's signing guide says), and its payload (the
JSON the guide shows: `entitlementsAllowed`, `licenseArn`, `expiration`, ...) must describe this
checkout: same license, same consumption token when named, every granted entitlement listed, not
expired. Pure and standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from entitlement_sidecar.aws.license_manager import Checkout, parse_time
from entitlement_sidecar.sidecar.rsakey import RsaPublicKey
from entitlement_sidecar.sidecar.signature import (
    CLAIM_MISMATCH,
    SIGNATURE_INVALID,
    TokenRejected,
    verified_payload,
)


def check_signed_token(
    checkout: Checkout, key: RsaPublicKey, granted: Iterable[str], now: datetime
) -> None:
    """Raise `TokenRejected` unless `checkout.signed_token` proves what we are about to grant."""
    if not checkout.signed_token:
        raise TokenRejected(
            SIGNATURE_INVALID, "CheckoutLicense sent no SignedToken, and the image requires one"
        )
    payload = verified_payload(checkout.signed_token, key)
    arn = payload.get("licenseArn")
    if not isinstance(arn, str) or arn != checkout.license_arn:
        raise TokenRejected(CLAIM_MISMATCH, "licenseArn does not match the checkout")
    token = payload.get("licenseConsumptionToken")
    if token is not None and token != checkout.consumption_token:
        raise TokenRejected(CLAIM_MISMATCH, "licenseConsumptionToken does not match the checkout")
    allowed = payload.get("entitlementsAllowed")
    if not isinstance(allowed, list):
        raise TokenRejected(CLAIM_MISMATCH, "entitlementsAllowed is missing")
    names = {item.get("name") for item in allowed if isinstance(item, dict)}
    missing = sorted(set(granted) - names)
    if missing:
        raise TokenRejected(CLAIM_MISMATCH, f"the token does not grant {', '.join(missing)[:100]}")
    if "expiration" in payload:
        expiration = parse_time(payload["expiration"])
        if expiration is None or expiration <= now:
            raise TokenRejected(CLAIM_MISMATCH, "the token has expired")
