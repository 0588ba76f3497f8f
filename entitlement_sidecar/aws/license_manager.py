"""The boundary to AWS License Manager: the only module that talks to boto3 for it.

It builds the client (region explicit, botocore's retries off: we retry in our own budget),
sends CheckoutLicense always with the pinned AWS Marketplace issuer fingerprint, validates what
botocore would let through, reads answers into small frozen values, and turns every failure into
`TransientError` / `PermanentError` by AWS error code (`aws/calls.py`), with `RedirectException`
as `Redirect` carrying the Region it names. Endpoints come from `AWS_ENDPOINT_URL_LICENSE_MANAGER`
as boto3 reads it, which is how an unchanged client reaches the local emulator.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore import UNSIGNED

from entitlement_sidecar.aws import rules
from entitlement_sidecar.aws.calls import call, fail_fast_config
from entitlement_sidecar.errors import ConfigurationError, PermanentError

if TYPE_CHECKING:
    from mypy_boto3_license_manager import LicenseManagerClient
else:
    LicenseManagerClient = Any

REDIRECT = "RedirectException"
NO_ENTITLEMENTS = "NoEntitlementsAllowedException"
PROVISIONAL, PERPETUAL = rules.CHECKOUT_TYPES
UNIT_NONE, UNIT_COUNT = "None", "Count"
_REGION_IN = re.compile(rf"(?<![a-z]){rules.REGION}(?![0-9])")
_SKU = re.compile(rules.PRODUCT_SKU)
_CLIENT_TOKEN = re.compile(rules.LICENSE_CLIENT_TOKEN)
_ARN = re.compile(rules.LICENSE_ARN)
_PAGE_LIMIT = 20  # ListReceivedLicenses pages read at most
_PAGE_SIZE = 100  # licenses per page (the model's maximum)


class Redirect(PermanentError):
    """`RedirectException`: the license lives in another Region, `region` (None if unclear)."""

    def __init__(self, message: str, location: str | None) -> None:
        super().__init__(REDIRECT, message)
        self.location = location
        self.region = region_of(location)


def region_of(location: str | None) -> str | None:
    """The Region a `RedirectException.Location` names (a Region or an endpoint URL), or None."""
    if not location:
        return None
    found = _REGION_IN.search(location.strip().lower())
    return found.group(0) if found else None


@dataclass(frozen=True)
class Entitlement:
    """An entitlement as CheckoutLicense takes and answers it: `{Name, Unit, Value?}`."""

    name: str
    unit: str = UNIT_NONE
    value: str | None = None

    def to_params(self) -> dict[str, str]:
        params = {"Name": self.name, "Unit": self.unit}
        if self.value is not None:
            params["Value"] = self.value
        return params


@dataclass(frozen=True)
class Checkout:
    """A successful CheckoutLicense: what was granted and the consumption that holds it."""

    checkout_type: str
    consumption_token: str
    allowed: tuple[Entitlement, ...]
    license_arn: str | None
    signed_token: str | None
    node_id: str | None
    issued_at: datetime | None
    expiration: datetime | None


@dataclass(frozen=True)
class LicenseEntitlement:
    """One entitlement of a license (GetLicense / ListReceivedLicenses)."""

    name: str
    unit: str
    max_count: int | None = None
    overage: bool = False
    allow_check_in: bool = False
    value: str | None = None


@dataclass(frozen=True)
class License:
    """The parts of a License (or GrantedLicense) the sidecar decides on."""

    arn: str
    sku: str | None
    fingerprint: str | None
    issuer_name: str | None
    home_region: str | None
    status: str | None
    begin: datetime | None
    end: datetime | None
    entitlements: tuple[LicenseEntitlement, ...]
    provisional_ttl_minutes: int | None

    @property
    def from_marketplace(self) -> bool:
        """Issued by AWS Marketplace (the pinned fingerprint), not self-issued by the buyer."""
        return self.fingerprint == rules.MARKETPLACE_ISSUER_FINGERPRINT


def make_client(
    region: str,
    *,
    session: boto3.session.Session | None = None,
    anonymous: bool = False,
    connect_timeout: float = 5.0,
    read_timeout: float = 10.0,
) -> LicenseManagerClient:
    """A License Manager client for `region` that fails fast and leaves retrying to us.

    `session` carries the credentials (the Containers Anywhere provider, `aws/anywhere.py`);
    `anonymous` signs nothing (GetAccessToken, whose caller has no AWS credentials yet).
    """
    unsigned: dict[str, Any] = {"signature_version": UNSIGNED} if anonymous else {}
    config = fail_fast_config(region, connect_timeout, read_timeout, **unsigned)
    client: LicenseManagerClient = (session or boto3.session.Session()).client(
        "license-manager", region_name=region, config=config
    )
    return client


def validate_sku(sku: str) -> None:
    """Raise `ConfigurationError` unless `sku` is a product SKU we send."""
    if not _SKU.fullmatch(sku):
        raise ConfigurationError(
            f"product SKU {sku!r} must be {rules.PRODUCT_SKU_HINT}", variable="PRODUCT_SKU"
        )


def checkout(
    client: LicenseManagerClient,
    *,
    sku: str,
    checkout_type: str,
    entitlements: Sequence[Entitlement],
    client_token: str,
    node_id: str | None = None,
) -> Checkout:
    """One CheckoutLicense with the AWS Marketplace issuer fingerprint; our errors on failure.

    `RedirectException` is raised as `Redirect`; `NoEntitlementsAllowedException` (no license,
    or every seat in use: AWS answers both the same) as a `PermanentError` with that code.
    """
    validate_sku(sku)
    if checkout_type not in rules.CHECKOUT_TYPES:
        raise ValueError(f"checkout type {checkout_type!r} is not one of {rules.CHECKOUT_TYPES}")
    if not entitlements:
        raise ValueError("a checkout names at least one entitlement")
    if not _CLIENT_TOKEN.fullmatch(client_token):
        raise ValueError(
            f"client token must be {rules.LICENSE_CLIENT_TOKEN_MAX} or fewer non-blanks"
        )
    params: dict[str, Any] = {
        "ProductSKU": sku,
        "CheckoutType": checkout_type,
        "KeyFingerprint": rules.MARKETPLACE_ISSUER_FINGERPRINT,
        "Entitlements": [e.to_params() for e in entitlements],
        "ClientToken": client_token,
    }
    if node_id:
        params["NodeId"] = node_id
    answer = _call(lambda: client.checkout_license(**params))
    token = answer.get("LicenseConsumptionToken")
    if not isinstance(token, str) or not token:
        raise PermanentError("EmptyConsumptionToken", "CheckoutLicense returned no token")
    return Checkout(
        checkout_type=_text(answer.get("CheckoutType")) or checkout_type,
        consumption_token=token,
        allowed=tuple(_entitlements(answer.get("EntitlementsAllowed"))),
        license_arn=_text(answer.get("LicenseArn")),
        signed_token=_text(answer.get("SignedToken")),
        node_id=_text(answer.get("NodeId")),
        issued_at=parse_time(answer.get("IssuedAt")),
        expiration=parse_time(answer.get("Expiration")),
    )


def check_in(client: LicenseManagerClient, consumption_token: str) -> None:
    """Return a checked-out unit (CheckInLicense)."""
    _call(lambda: client.check_in_license(LicenseConsumptionToken=consumption_token))


def extend(client: LicenseManagerClient, consumption_token: str) -> datetime | None:
    """Extend a held provisional unit by another period; its new expiration (if AWS says)."""
    answer = _call(
        lambda: client.extend_license_consumption(LicenseConsumptionToken=consumption_token)
    )
    return parse_time(answer.get("Expiration"))


def get_license(client: LicenseManagerClient, arn: str) -> License:
    """GetLicense: status, validity, issuer and entitlements of one license."""
    if not _ARN.fullmatch(arn):
        raise ValueError(f"{arn!r} is not a license ARN")
    answer = _call(lambda: client.get_license(LicenseArn=arn))
    document = answer.get("License")
    if not isinstance(document, Mapping):
        raise PermanentError("EmptyLicense", "GetLicense returned no License")
    return read_license(document)


def usage(client: LicenseManagerClient, arn: str) -> dict[str, tuple[int, int | None]]:
    """GetLicenseUsage: {entitlement: (units in use, MaxCount or None)}; consumes nothing."""
    if not _ARN.fullmatch(arn):
        raise ValueError(f"{arn!r} is not a license ARN")
    answer = _call(lambda: client.get_license_usage(LicenseArn=arn))
    rows = (answer.get("LicenseUsage") or {}).get("EntitlementUsages") or ()
    found: dict[str, tuple[int, int | None]] = {}
    for row in rows:
        if not isinstance(row, Mapping) or not isinstance(row.get("Name"), str):
            continue
        consumed, most = _text(row.get("ConsumedValue")), _text(row.get("MaxCount"))
        used = int(consumed) if consumed and consumed.isdigit() else 0
        found[row["Name"]] = (used, int(most) if most and most.isdigit() else None)
    return found


def received_licenses(client: LicenseManagerClient, sku: str) -> list[License]:
    """ListReceivedLicenses filtered by `sku` (every page, up to a sane limit)."""
    validate_sku(sku)
    found: list[License] = []
    next_token: str | None = None
    for _page in range(_PAGE_LIMIT):
        params: dict[str, Any] = {
            "Filters": [{"Name": "ProductSKU", "Values": [sku]}],
            "MaxResults": _PAGE_SIZE,
        }
        if next_token:
            params["NextToken"] = next_token
        answer = _call(lambda params=params: client.list_received_licenses(**params))
        for item in answer.get("Licenses") or ():
            if isinstance(item, Mapping):
                found.append(read_license(item))
        next_token = _text(answer.get("NextToken"))
        if not next_token:
            break
    return found


def get_access_token(client: LicenseManagerClient, token: str) -> str:
    """GetAccessToken: the buyer's license (refresh) token in, an hour-long access token out."""
    if not token or len(token) > rules.GET_ACCESS_TOKEN_MAX or any(c.isspace() for c in token):
        raise ConfigurationError(
            f"the license token must be 1-{rules.GET_ACCESS_TOKEN_MAX} characters without blanks"
        )
    answer = _call(lambda: client.get_access_token(Token=token))
    access = answer.get("AccessToken")
    if not isinstance(access, str) or not access:
        raise PermanentError("EmptyAccessToken", "GetAccessToken returned no AccessToken")
    return access


def read_license(document: Mapping[str, Any]) -> License:
    """A License / GrantedLicense answer as a `License` (unknown or missing members tolerated)."""
    issuer = _mapping(document.get("Issuer"))
    validity = _mapping(document.get("Validity"))
    config = document.get("ConsumptionConfiguration")
    provisional = config.get("ProvisionalConfiguration") if isinstance(config, Mapping) else None
    ttl = provisional.get("MaxTimeToLiveInMinutes") if isinstance(provisional, Mapping) else None
    return License(
        arn=str(document.get("LicenseArn") or ""),
        sku=_text(document.get("ProductSKU")),
        fingerprint=_text(issuer.get("KeyFingerprint")),
        issuer_name=_text(issuer.get("Name")),
        home_region=_text(document.get("HomeRegion")),
        status=_text(document.get("Status")),
        begin=parse_time(validity.get("Begin")),
        end=parse_time(validity.get("End")),
        entitlements=tuple(_license_entitlements(document.get("Entitlements"))),
        provisional_ttl_minutes=ttl if isinstance(ttl, int) and not isinstance(ttl, bool) else None,
    )


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 timestamp (as License Manager sends them) as an aware UTC datetime, or None."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not re.fullmatch(rules.ISO8601_DATETIME, value.strip()):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _call(operation: Any) -> Mapping[str, Any]:
    """`calls.call`, with `RedirectException` raised as `Redirect`."""
    try:
        return call(operation)
    except PermanentError as error:
        if error.code != REDIRECT:
            raise
        location = error.details.get("Location")
        raise Redirect(error.message, location if isinstance(location, str) else None) from error


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _entitlements(items: object) -> Iterable[Entitlement]:
    for item in items if isinstance(items, list) else ():
        if isinstance(item, Mapping) and isinstance(item.get("Name"), str):
            yield Entitlement(
                item["Name"], str(item.get("Unit") or UNIT_NONE), _text(item.get("Value"))
            )


def _license_entitlements(items: object) -> Iterable[LicenseEntitlement]:
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping) or not isinstance(item.get("Name"), str):
            continue
        count = item.get("MaxCount")
        yield LicenseEntitlement(
            name=item["Name"],
            unit=str(item.get("Unit") or UNIT_NONE),
            max_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
            overage=item.get("Overage") is True,
            allow_check_in=item.get("AllowCheckIn") is True,
            value=_text(item.get("Value")),
        )
