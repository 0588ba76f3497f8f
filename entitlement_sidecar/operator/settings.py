"""The operator's settings: one typed object from `ENTITLEMENT_OPERATOR_*` variables.

Validated up front; an invalid value becomes ONE line naming the variable (`ConfigurationError`,
exit code 2). The README's operator settings table is the contract for these fields: a test walks
them and fails when one is missing there.
"""

from __future__ import annotations

import re

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import SettingsConfigDict

from entitlement_sidecar.aws import rules
from entitlement_sidecar.operator.annotations import RESERVED_TAG_KEYS
from entitlement_sidecar.settings_base import (
    CommaList,
    CommonSettings,
    LogFormat,
    LogLevel,
    OptionalText,
    ProductCode,
)

ENV_PREFIX = "ENTITLEMENT_OPERATOR_"
MAX_USER_TAG_KEYS = rules.TAG_KEYS_PER_REQUEST - len(RESERVED_TAG_KEYS)  # + namespace, workload
NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # Kubernetes: a DNS-1123 label


class OperatorSettings(CommonSettings):
    """`ENTITLEMENT_OPERATOR_*` environment variables (see the README settings table)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, validate_by_name=True
    )

    product_code: ProductCode = Field(description="AWS Marketplace product code (required).")
    dimensions: CommaList = Field(
        description="Comma list of the product's published dimension names (required); "
        "annotations naming others get a Warning Event and are never sent.",
    )
    tag_keys: CommaList = Field(
        (),
        description="Comma list of allowed user tag keys (at most 3; not `namespace`/`workload`).",
    )
    namespaces: CommaList = Field(
        (), description="Comma list of namespaces to watch; empty = all namespaces."
    )
    ledger_namespace: str = Field(
        validation_alias=AliasChoices(f"{ENV_PREFIX}LEDGER_NAMESPACE", "POD_NAMESPACE"),
        description="Namespace of the HourlyUsage ledger; default `POD_NAMESPACE`.",
    )
    send_jitter_seconds: float = Field(
        300,
        ge=0,
        le=1800,
        description="Random delay (0..this, at least 60 s) after an hour closes, before sending.",
    )
    send_zero: bool = Field(False, description="Also send hours whose quantity is zero.")
    dry_run: bool = Field(False, description="Send MeterUsage with `DryRun=true` (nothing billed).")
    metrics_port: int = Field(9842, ge=0, le=65535, description="Port of `/metrics` and `/livez`.")
    region: OptionalText = Field(
        None, description="AWS region override; else `AWS_REGION`, `AWS_DEFAULT_REGION`."
    )
    checkpoint_seconds: float = Field(
        60, ge=5, le=600, description="Accumulating hours are written to the ledger this often."
    )
    tick_seconds: float = Field(15, ge=1, le=300, description="How often the close/send loop runs.")
    safety_margin_seconds: float = Field(
        600,
        ge=60,
        le=3600,
        description="Stop retrying this long before the 6-hour window ends (then `Expired`).",
    )
    lease_name: str = Field(
        "entitlement-sidecar-operator",
        pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
        description="Name of the single-sender Lease in the operator's namespace; operators "
        "sharing a namespace need different names (the chart derives it from the release).",
    )
    retention_days: int = Field(
        90, ge=0, description="Delete finished HourlyUsage objects older than this; 0 = never."
    )
    log_level: LogLevel = Field("INFO", description="Log level.")
    log_format: LogFormat = Field("json", description="Log format (`json`|`text`).")

    @field_validator("dimensions", "tag_keys", "namespaces")
    @classmethod
    def _unique_sorted(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(value)))

    @field_validator("dimensions")
    @classmethod
    def _check_dimensions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one dimension is required")
        limit, longest = rules.DIMENSIONS_PER_PRODUCT, rules.DIMENSION_MAX
        if len(value) > limit or any(len(name) > longest for name in value):
            raise ValueError(f"at most {limit} dimensions of 1-{longest} characters")
        return value

    @field_validator("namespaces", "ledger_namespace")
    @classmethod
    def _check_namespace_names(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        for name in (value,) if isinstance(value, str) else value:
            if not NAMESPACE_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a namespace name (a DNS-1123 label)")
        return value

    @field_validator("tag_keys")
    @classmethod
    def _check_tag_keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > MAX_USER_TAG_KEYS:
            raise ValueError(
                f"at most {MAX_USER_TAG_KEYS} keys "
                f"(AWS allows {rules.TAG_KEYS_PER_REQUEST} per request)"
            )
        for key in value:
            if key in RESERVED_TAG_KEYS or not re.fullmatch(rules.TAG_KEY, key):
                raise ValueError(f"{key!r} is reserved or not a valid tag key")
        return value


env_name = OperatorSettings.env_name
load_settings = OperatorSettings.load
