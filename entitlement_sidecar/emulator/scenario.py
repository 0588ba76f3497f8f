"""The scenario file: which products exist, who is entitled, keys, quotas, injected faults.

A scenario is plain data (YAML or JSON) validated by pydantic models with `extra="forbid"`, so a
typo is an error that names the bad key instead of a silently ignored setting. `load_scenario`
accepts a path, a mapping, a `Scenario` or None (the default scenario, documented in the README).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from entitlement_sidecar.aws import rules
from entitlement_sidecar.emulator import license_model
from entitlement_sidecar.emulator.licenses import License, place
from entitlement_sidecar.emulator.model import MODELED_ERRORS, OPERATIONS

# Every operation a fault or a quota may name, and every code a fault may answer.
ALL_OPERATIONS = OPERATIONS + license_model.OPERATIONS + license_model.STS_OPERATIONS
FAULT_CODES = MODELED_ERRORS | license_model.MODELED_ERRORS

PRODUCT_CODE_RE = re.compile(rules.PRODUCT_CODE)
ACCESS_KEY_ID_RE = re.compile(rules.ACCESS_KEY_ID)
AWS_QUOTAS: dict[str, float] = dict(rules.QUOTAS_PER_SECOND)


def _quotas() -> dict[str, float | None]:
    return {**AWS_QUOTAS}


DEFAULT_SCENARIO: dict[str, Any] = {
    "region": "us-east-1",
    "key_versions": [1],
    "products": {
        "prod-paid": {"entitled": True, "dimensions": ["users", "gb"]},
        "prod-lapsed": {"entitled": False},
    },
    "customers": {
        "token-abc": {"customer_aws_account_id": "123456789012", "product": "prod-paid"},
    },
}


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message is one line naming the bad key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Product(_Strict):
    """One product code and how the emulator answers for it."""

    entitled: bool = Field(
        True,
        description="`false`: CustomerNotEntitledException on a caller's first RegisterUsage and "
        "on every MeterUsage; `CustomerNotSubscribed` in BatchMeterUsage",
    )
    dimensions: tuple[str, ...] = Field(
        (),
        description="the product's published dimension names (others: "
        "InvalidUsageDimensionException)",
    )
    error: str | None = Field(
        None,
        description="answer this modeled error code for the product (RegisterUsage: a caller's "
        "first call only, as AWS does; MeterUsage and BatchMeterUsage: always)",
    )
    sign_with_unlisted_key: bool = Field(
        False,
        description="sign its tokens with an extra key whose public half is never written "
        "(forged-token tests)",
    )
    saas_integration: Literal["legacy", "concurrent-agreements"] = Field(
        "legacy",
        description="`concurrent-agreements` (new SaaS integrations): ResolveCustomer returns no "
        "CustomerIdentifier and BatchMeterUsage refuses records that use one",
    )

    @field_validator("error")
    @classmethod
    def _modeled(cls, code: str | None) -> str | None:
        if code is not None and code not in MODELED_ERRORS:
            raise ValueError(f"{code!r} is not an error code of the Metering service model")
        return code


class Fault(_Strict):
    """An injected failure; `count` is how many matching requests it affects (None: all)."""

    op: (
        Literal[
            "RegisterUsage",
            "MeterUsage",
            "BatchMeterUsage",
            "ResolveCustomer",
            "CheckoutLicense",
            "CheckInLicense",
            "ExtendLicenseConsumption",
            "GetLicense",
            "GetLicenseUsage",
            "ListReceivedLicenses",
            "GetAccessToken",
            "AssumeRoleWithWebIdentity",
        ]
        | None
    ) = Field(None, description="the operation it hits; absent: every operation")
    kind: Literal[
        "internal_error", "throttle", "delay", "hold", "http_503", "drop", "error", "unprocessed"
    ] = Field(description="what happens to a matching request (see the fault kinds table)")
    count: int | None = Field(
        None, ge=1, description="how many matching requests it hits; absent: all of them"
    )
    seconds: float = Field(
        0.0, ge=0, le=600, description="`delay`: how long; `hold`: the longest hold (0: no limit)"
    )
    code: str | None = Field(
        None, description="`error`: the modeled error code to answer (required for that kind)"
    )

    @model_validator(mode="after")
    def _complete(self) -> Fault:
        if self.kind == "error" and (self.code is None or self.code not in FAULT_CODES):
            raise ValueError("kind 'error' needs `code`: an error code of the service model")
        if self.kind != "error" and self.code is not None:
            raise ValueError("`code` only goes with kind 'error'")
        if self.kind == "delay" and self.seconds <= 0:
            raise ValueError("kind 'delay' needs `seconds` > 0")
        if self.kind == "unprocessed" and self.op not in {None, "BatchMeterUsage"}:
            raise ValueError("kind 'unprocessed' applies to BatchMeterUsage only")
        return self


class Customer(_Strict):
    """A SaaS registration token that ResolveCustomer redeems."""

    customer_aws_account_id: str = Field(
        pattern=r"^[0-9]{1,255}$", description="the buyer's AWS account id (required)"
    )
    product: str = Field(description="the product code the buyer subscribed to (required)")
    customer_identifier: str | None = Field(
        None, description="legacy CustomerIdentifier; absent: `cust-` + 16 hex of the token"
    )
    license_arn: str | None = Field(
        None, description="the buyer's LicenseArn; absent: derived from the account and the token"
    )
    agreement_id: str | None = Field(
        None,
        pattern=rules.anchored(rules.AGREEMENT_ID),
        description="ResolveCustomer's Metadata.AgreementId; absent: `agmt-` + 16 hex of the token",
    )
    expired: bool = Field(
        False, description="`true`: ResolveCustomer answers ExpiredTokenException"
    )


class CallerKeys(_Strict):
    """The secret (and account, session token) of one access key id when SigV4 is verified."""

    secret: str = Field(min_length=1, description="the secret access key SigV4 is checked with")
    account: str | None = Field(
        None,
        pattern=rules.anchored(rules.ACCOUNT_ID),
        description="its AWS account; absent: `caller_accounts`, then `account_id`",
    )
    session_token: str | None = Field(
        None,
        min_length=1,
        description="when set, requests must carry it as X-Amz-Security-Token (temporary "
        "credentials); when absent, they must not carry one",
    )


class Scenario(_Strict):
    """The whole emulated world; the README's scenario reference is generated from this model."""

    region: str = Field(
        "us-east-1",
        pattern=rules.anchored(rules.REGION),
        description="the region this endpoint serves; requests signed for another: "
        "InvalidRegionException (RegisterUsage), InvalidEndpointRegionException (MeterUsage), "
        "403 InvalidSignatureException (the others)",
    )
    key_versions: tuple[int, ...] = Field(
        (1,),
        description="public key versions RegisterUsage accepts (others: "
        "InvalidPublicKeyVersionException); an RSA-2048 key per version, generated at start",
    )
    expired_key_versions: tuple[int, ...] = Field(
        (),
        description="versions answered with PublicKeyRotationTimestamp (the time the scenario "
        "was loaded)",
    )
    key_files: dict[int, Path] = Field(
        default_factory=dict,
        description="`version: path` of RSA private keys (PEM) to sign with instead of generated "
        "ones; relative paths are relative to the scenario file",
    )
    products: dict[str, Product] = Field(
        default_factory=dict,
        description="product codes the emulator knows (others: InvalidProductCodeException)",
    )
    throttle: dict[str, float | None] | None = Field(
        default_factory=_quotas,
        description="token buckets (requests/s, burst = rate) per operation and caller account; "
        "a throttled call takes no token (AWS documents its token buckets so; Marketplace "
        "publishes only the rates); listed operations override AWS's quotas, `0`/`null` "
        "disables one, `throttle: null` all",
    )
    faults: tuple[Fault, ...] = Field((), description="injected failures, applied in order")
    customers: dict[str, Customer] = Field(
        default_factory=dict,
        description="SaaS buyers by registration token (ResolveCustomer, BatchMeterUsage)",
    )
    claims_case: Literal["camel", "pascal"] = Field(
        "camel",
        description="claim spelling in tokens: `camel` productCode/publicKeyVersion/nonce (what "
        "the service sends), `pascal` as AWS's docs print them",
    )
    client_token_scope: Literal["account", "caller"] = Field(
        "account",
        description="MeterUsage ClientToken idempotency scope: `account` (a token replayed by "
        "another caller of the account returns the original record) or `caller`",
    )
    dry_run_reply: Literal["success", "error"] = Field(
        "success",
        description="MeterUsage DryRun: `success` answers {}, `error` answers DryRunOperation",
    )
    clock_offset_seconds: float = Field(
        0.0,
        allow_inf_nan=False,
        description="shift of the emulator clock in seconds (e.g. -7200 for the 6-hour window)",
    )
    account_id: str = Field(
        "123456789012",
        pattern=rules.anchored(rules.ACCOUNT_ID),
        description="the AWS account of every caller not placed elsewhere",
    )
    caller_accounts: dict[str, str] = Field(
        default_factory=dict, description="access key id -> AWS account of that caller"
    )
    callers: dict[str, CallerKeys] = Field(
        default_factory=dict,
        description="access key id -> its keys; when any is listed, SigV4 is verified and "
        "unlisted keys are refused (UnrecognizedClientException); empty: permissive",
    )
    licenses: tuple[License, ...] = Field(
        (),
        description="License Manager licenses in the buyer accounts (the `licenses` table); "
        "License Manager quotas are not documented: no default throttling, set `throttle`",
    )

    @field_validator("key_versions")
    @classmethod
    def _versions(cls, versions: tuple[int, ...]) -> tuple[int, ...]:
        if not versions or any(v < 1 for v in versions) or len(set(versions)) != len(versions):
            raise ValueError("must be a non-empty list of distinct integers >= 1")
        return versions

    @field_validator("products")
    @classmethod
    def _codes(cls, products: dict[str, Product]) -> dict[str, Product]:
        for code in products:
            if not PRODUCT_CODE_RE.fullmatch(code):
                raise ValueError(f"product code {code!r} breaks the model's ProductCode pattern")
        return products

    @field_validator("callers")
    @classmethod
    def _keys(cls, callers: dict[str, CallerKeys]) -> dict[str, CallerKeys]:
        for key in callers:
            if not ACCESS_KEY_ID_RE.fullmatch(key):
                raise ValueError(f"access key id {key!r} is not 1-128 letters and digits")
        return callers

    @field_validator("throttle")
    @classmethod
    def _quotas(cls, throttle: dict[str, float | None] | None) -> dict[str, float | None]:
        if throttle is None:
            return {}
        for op, rate in throttle.items():
            if op not in ALL_OPERATIONS:
                raise ValueError(f"unknown operation {op!r} (one of {', '.join(ALL_OPERATIONS)})")
            if rate is not None and rate < 0:
                raise ValueError(f"{op}: rate must be >= 0 (0 or null disables throttling)")
        return {**AWS_QUOTAS, **throttle}

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        for version in (*self.expired_key_versions, *self.key_files):
            if version not in self.key_versions:
                raise ValueError(f"key version {version} is not listed in key_versions")
        for token, customer in self.customers.items():
            if customer.product not in self.products:
                raise ValueError(f"customers.{token}.product {customer.product!r} is unknown")
        place(self.licenses, self.account_id, self.region)  # unique ARNs and license tokens
        return self

    def rate(self, operation: str) -> float | None:
        """Requests per second allowed for `operation` per account, None when unlimited."""
        rate = (self.throttle or {}).get(operation)
        return rate if rate else None

    def account_of(self, access_key_id: str) -> str:
        """The AWS account a caller (SigV4 access key id) belongs to."""
        keys = self.callers.get(access_key_id)
        if keys is not None and keys.account is not None:
            return keys.account
        return self.caller_accounts.get(access_key_id, self.account_id)

    def identifier_of(self, token: str) -> str:
        """The legacy CustomerIdentifier of a registration token's customer."""
        customer = self.customers[token]
        return customer.customer_identifier or f"cust-{_digest(token)}"

    def license_of(self, token: str) -> str:
        """The LicenseArn of a registration token's customer."""
        customer = self.customers[token]
        account = customer.customer_aws_account_id
        default = f"arn:aws:license-manager::{account}:license:l-{_digest(token)}"
        return customer.license_arn or default

    def agreement_of(self, token: str) -> str:
        """The AgreementId (ResolveCustomer's Metadata) of a registration token's customer."""
        return self.customers[token].agreement_id or f"agmt-{_digest(token)}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_scenario(source: Scenario | Mapping[str, Any] | Path | str | None) -> Scenario:
    """Build a validated scenario from a file path, a mapping, or None (the default scenario).

    Relative `key_files` paths in a file are relative to that file's directory.
    """
    if isinstance(source, Scenario):
        return source
    base: Path | None = None
    if source is None:
        data: object = DEFAULT_SCENARIO
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        data = _read_file(Path(source))
        base = Path(source).parent
    if not isinstance(data, dict):
        raise ScenarioError("scenario: the top level must be a mapping of keys")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        prefix = f"scenario key {where}" if where else "scenario"
        raise ScenarioError(f"{prefix}: {message}{more}") from None
    if base is not None and scenario.key_files:
        files = {version: base / path for version, path in scenario.key_files.items()}
        scenario = scenario.model_copy(update={"key_files": files})
    return scenario


def _read_file(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"scenario file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"scenario file {path}: not UTF-8 text") from None
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise ScenarioError(f"scenario file {path}: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ScenarioError(f"scenario file {path}:{where} is not valid YAML/JSON") from None
