"""The scenario's `licenses`: what License Manager licenses exist in the emulated buyer accounts.

Each entry is one license as AWS Marketplace (or, with another `fingerprint`, the buyer) issued
it: product SKU, issuer fingerprint, home Region, status, validity window, entitlements (tiers
with unit `None`, counted units with `Count` and a `max_count`), the provisional time-to-live of a
floating seat, and the buyer's Containers Anywhere license tokens with the role each may assume.
Validated with `extra="forbid"` like the rest of the scenario, so a typo names the bad key.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from entitlement_sidecar.aws import rules

ENABLED = "Enabled"  # the Value a unit-None entitlement carries in License Manager's answers
_ROLE = re.compile(rules.ROLE_ARN)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LicenseEntitlement(_Strict):
    """One entitlement: a tier / feature (`unit: None`) or counted units (`unit: Count`)."""

    name: str = Field(
        pattern=rules.anchored(rules.ENTITLEMENT_NAME),
        description="the dimension's API name (a tier, a feature, or counted units)",
    )
    unit: Literal["None", "Count"] = Field(
        "None", description="`None`: a tier or feature; `Count`: units from a pool"
    )
    max_count: int | None = Field(
        None, ge=0, le=2**62, description="count only: how many units the buyer bought"
    )
    overage: bool = Field(False, description="count only: checkouts beyond max_count succeed")
    allow_check_in: bool = Field(True, description="GetLicense's AllowCheckIn")

    @model_validator(mode="after")
    def _counted(self) -> LicenseEntitlement:
        if self.unit == "Count" and self.max_count is None:
            raise ValueError(f"entitlement {self.name!r}: unit Count needs max_count")
        if self.unit == "None" and self.max_count is not None:
            raise ValueError(f"entitlement {self.name!r}: max_count goes with unit Count only")
        return self


class License(_Strict):
    """One license in a buyer account (see the README's `licenses` scenario key)."""

    sku: str = Field(
        pattern=rules.anchored(rules.PRODUCT_SKU),
        description="ProductSKU: the Marketplace product ID CheckoutLicense names",
    )
    fingerprint: str = Field(
        rules.MARKETPLACE_ISSUER_FINGERPRINT,
        min_length=1,
        max_length=512,
        description="issuer key fingerprint; default AWS Marketplace's (anything else: a "
        "license the buyer issued themselves)",
    )
    home_region: str | None = Field(
        None,
        pattern=rules.anchored(rules.REGION),
        description="the license's Region (default the scenario's); elsewhere: RedirectException",
    )
    status: str = Field(
        "AVAILABLE", description="license status; only AVAILABLE licenses check out"
    )
    valid_from: datetime | None = Field(
        None, description="validity start (ISO 8601); default a year before the emulator started"
    )
    valid_until: datetime | None = Field(
        None, description="validity end (ISO 8601); default a year after the emulator started"
    )
    entitlements: tuple[LicenseEntitlement, ...] = Field(
        min_length=1,
        description="the license's entitlements (Marketplace ones also get "
        "AWS::Marketplace::Usage)",
    )
    provisional_ttl_minutes: float = Field(
        rules.PROVISIONAL_TTL_MINUTES,
        gt=0,
        le=100_000,
        description="how long a provisional checkout holds its units unless extended (fractions "
        "of a minute for tests; GetLicense reports whole minutes, rounded up)",
    )
    tokens: dict[str, str] = Field(
        default_factory=dict,
        description="Containers Anywhere: license token -> the IAM role ARN it may assume",
    )
    arn: str | None = Field(
        None,
        pattern=rules.anchored(rules.LICENSE_ARN),
        description="LicenseArn; default derived from account, SKU, fingerprint and Region",
    )
    account: str | None = Field(
        None,
        pattern=rules.anchored(rules.ACCOUNT_ID),
        description="the buyer account holding it; default the scenario's account_id",
    )
    name: str | None = Field(None, description="LicenseName / ProductName in answers")
    signed_token: bool = Field(True, description="whether checkouts carry a SignedToken")

    @field_validator("status")
    @classmethod
    def _status(cls, status: str) -> str:
        if status not in rules.LICENSE_STATUSES:
            raise ValueError(f"must be one of {', '.join(rules.LICENSE_STATUSES)}")
        return status

    @field_validator("valid_from", "valid_until")
    @classmethod
    def _aware(cls, moment: datetime | None) -> datetime | None:
        if moment is not None and moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment

    @field_validator("entitlements")
    @classmethod
    def _unique(cls, items: tuple[LicenseEntitlement, ...]) -> tuple[LicenseEntitlement, ...]:
        names = [item.name for item in items]
        if len(set(names)) != len(names):
            raise ValueError("entitlement names must be unique")
        return items

    @field_validator("tokens")
    @classmethod
    def _tokens(cls, tokens: dict[str, str]) -> dict[str, str]:
        for token, role in tokens.items():
            if (
                not token
                or len(token) > rules.GET_ACCESS_TOKEN_MAX
                or any(c.isspace() for c in token)
            ):
                raise ValueError("a license token is 1-4096 characters without blanks")
            if not _ROLE.fullmatch(role):
                raise ValueError(
                    f"{role!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
                )
        return tokens

    @model_validator(mode="after")
    def _window(self) -> License:
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self

    @property
    def from_marketplace(self) -> bool:
        return self.fingerprint == rules.MARKETPLACE_ISSUER_FINGERPRINT

    def owner(self, default_account: str) -> str:
        """The buyer account holding this license."""
        return self.account or default_account

    def arn_in(self, default_account: str, default_region: str) -> str:
        """This license's ARN: given, or derived from account, SKU, issuer and Region (stable)."""
        if self.arn:
            return self.arn
        account = self.owner(default_account)
        key = f"{account}|{self.sku}|{self.fingerprint}|{self.home_region or default_region}"
        return f"arn:aws:license-manager::{account}:license:l-{_digest(key)}"

    def all_entitlements(self) -> tuple[LicenseEntitlement, ...]:
        """The entitlements, plus `AWS::Marketplace::Usage` on every Marketplace license."""
        names = {item.name for item in self.entitlements}
        if not self.from_marketplace or rules.MARKETPLACE_USAGE_ENTITLEMENT in names:
            return self.entitlements
        usage = LicenseEntitlement(name=rules.MARKETPLACE_USAGE_ENTITLEMENT, allow_check_in=True)
        return (*self.entitlements, usage)

    def entitlement(self, name: str) -> LicenseEntitlement | None:
        return next((item for item in self.all_entitlements() if item.name == name), None)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Placed:
    """A license with its account, home Region and ARN resolved against the scenario defaults."""

    arn: str
    account: str
    region: str
    spec: License


def place(licenses: tuple[License, ...], account: str, region: str) -> dict[str, Placed]:
    """The scenario's licenses by ARN; ValueError when two share an ARN or a license token."""
    placed: dict[str, Placed] = {}
    tokens: set[str] = set()
    for index, item in enumerate(licenses):
        arn = item.arn_in(account, region)
        if arn in placed:
            raise ValueError(
                f"licenses.{index}: a second license with the same account, SKU, fingerprint "
                "and home Region needs its own `arn`"
            )
        placed[arn] = Placed(arn, item.owner(account), item.home_region or region, item)
        for token in item.tokens:
            if token in tokens:
                raise ValueError(f"licenses.{index}: license token used by two licenses")
            tokens.add(token)
    return placed
