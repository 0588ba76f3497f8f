"""The boundary to AWS Marketplace Metering: the only module that talks to boto3/botocore for it.

It builds the client (region passed explicitly, botocore's own retries off because we retry with
our own budget; made by botocore directly, as boto3 would only add its resource layer and
s3transfer to the start of every pod), validates what botocore would let through (it checks
minimums only), and turns every failure into `TransientError` or `PermanentError` by AWS error
code, so nothing above this module ever sees a `ClientError`. Endpoints come from the standard
`AWS_ENDPOINT_URL_*` variables, which is how an unchanged client reaches the local emulator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, cast

import botocore.session

from entitlement_sidecar.aws import rules
from entitlement_sidecar.aws.calls import call, fail_fast_config
from entitlement_sidecar.errors import ConfigurationError, MarketplaceError, classify

if TYPE_CHECKING:
    from mypy_boto3_meteringmarketplace import MarketplaceMeteringClient
else:
    MarketplaceMeteringClient = Any


PRODUCT_CODE_PATTERN = re.compile(rules.PRODUCT_CODE)
QUANTITY_PATTERN = re.compile(rules.QUANTITY_DECIMAL)


def make_client(
    region: str, *, connect_timeout: float = 5.0, read_timeout: float = 10.0
) -> MarketplaceMeteringClient:
    """A Metering client for `region` that fails fast and leaves retrying to us."""
    config = fail_fast_config(region, connect_timeout, read_timeout)
    try:
        client = botocore.session.get_session().create_client(
            "meteringmarketplace", region_name=region, config=config
        )
    except ValueError as exc:  # botocore's "Invalid endpoint: ..." and friends
        raise ConfigurationError(
            f"the Metering endpoint is invalid ({exc}): check AWS_ENDPOINT_URL_MARKETPLACE_METERING"
            " and AWS_ENDPOINT_URL",
            variable="AWS_ENDPOINT_URL_MARKETPLACE_METERING",
        ) from None
    return cast("MarketplaceMeteringClient", client)


def validate_product_code(code: str) -> None:
    """Raise `ConfigurationError` unless `code` is a product code AWS would accept."""
    if not PRODUCT_CODE_PATTERN.fullmatch(code):  # `$` alone would let a final newline in
        raise ConfigurationError(
            f"product code {code!r} must be {rules.PRODUCT_CODE_HINT}",
            variable="PRODUCT_CODE",
        )


def validate_nonce(nonce: str) -> None:
    """Raise `ConfigurationError` unless `nonce` fits RegisterUsage (at most 255 characters)."""
    if len(nonce) > rules.NONCE_MAX:
        raise ConfigurationError(f"nonce is {len(nonce)} characters; at most {rules.NONCE_MAX}")


def format_quantity(quantity: Decimal) -> str:
    """`quantity` as AWS's decimal string: no exponent, no trailing zeros, at most 6 decimals."""
    try:
        if not quantity.is_finite() or quantity < 0:
            raise ValueError(f"quantity {quantity} must be a finite non-negative number")
        text = f"{quantity.normalize():f}"
    except InvalidOperation as exc:
        raise ValueError(f"quantity {quantity!r} is not a number") from exc
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if not QUANTITY_PATTERN.fullmatch(text):
        raise ValueError(f"quantity {text} needs more than 6 decimals or 10 integer digits")
    return text


@dataclass(frozen=True)
class Registration:
    """A successful RegisterUsage answer: the signed token and, if the key expired, when."""

    signature: str
    rotation_at: datetime | None


@dataclass(frozen=True)
class Allocation:
    """A share of a MeterUsage quantity, attributed to a set of (key, value) tags."""

    quantity: Decimal
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class MeterRequest:
    """One MeterUsage record: one dimension, one hour, the final quantity and its split."""

    product_code: str
    timestamp: datetime
    dimension: str
    quantity: Decimal
    client_token: str
    allocations: tuple[Allocation, ...] = ()
    dry_run: bool = False

    def to_params(self) -> dict[str, Any]:
        """The MeterUsage request parameters, validated beyond what botocore checks."""
        validate_product_code(self.product_code)
        if not 1 <= len(self.dimension) <= rules.DIMENSION_MAX:
            raise ValueError(f"dimension must be 1-{rules.DIMENSION_MAX} characters")
        if not 1 <= len(self.client_token) <= rules.CLIENT_TOKEN_MAX:
            raise ValueError(f"client token must be 1-{rules.CLIENT_TOKEN_MAX} characters")
        if self.timestamp.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware (UTC)")
        params: dict[str, Any] = {
            "ProductCode": self.product_code,
            "Timestamp": self.timestamp.astimezone(UTC),
            "UsageDimension": self.dimension,
            "UsageQuantityAsDecimal": format_quantity(self.quantity),
            "ClientToken": self.client_token,
            "DryRun": self.dry_run,
        }
        if self.allocations:
            params["UsageAllocations"] = [_allocation_params(a) for a in self.allocations]
        return params


def _allocation_params(allocation: Allocation) -> dict[str, Any]:
    params: dict[str, Any] = {
        "AllocatedUsageQuantityAsDecimal": format_quantity(allocation.quantity)
    }
    if allocation.tags:
        params["Tags"] = [{"Key": key, "Value": value} for key, value in allocation.tags]
    return params


def register_usage(
    client: MarketplaceMeteringClient, product_code: str, public_key_version: int, nonce: str
) -> Registration:
    """Call RegisterUsage once; raise `TransientError` / `PermanentError` on failure."""
    validate_product_code(product_code)
    validate_nonce(nonce)
    if public_key_version < 1:
        raise ConfigurationError("public key version must be >= 1", variable="PUBLIC_KEY_VERSION")
    answer = call(
        lambda: client.register_usage(
            ProductCode=product_code, PublicKeyVersion=public_key_version, Nonce=nonce
        )
    )
    signature = answer.get("Signature")
    if not isinstance(signature, str) or not signature:
        raise classify("EmptySignature")("EmptySignature", "RegisterUsage returned no Signature")
    rotation = answer.get("PublicKeyRotationTimestamp")
    rotation_at = rotation.astimezone(UTC) if isinstance(rotation, datetime) else None
    return Registration(signature=signature, rotation_at=rotation_at)


# AWS documents these answers to a DryRun; neither is modeled, so they arrive as plain codes.
DRY_RUN_OK = "DryRunOperation"


def meter_usage(client: MarketplaceMeteringClient, request: MeterRequest) -> str:
    """Send one MeterUsage record; return its MeteringRecordId ("" for a successful DryRun)."""
    params = request.to_params()
    try:
        answer = call(lambda: client.meter_usage(**params))
    except MarketplaceError as error:
        if request.dry_run and error.code == DRY_RUN_OK:
            return ""
        raise
    record_id = answer.get("MeteringRecordId", "")
    return record_id if isinstance(record_id, str) else ""
