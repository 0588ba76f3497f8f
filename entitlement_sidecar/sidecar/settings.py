"""The sidecar's settings: one typed object from `ENTITLEMENT_*` variables, validated up front.

Everything is checked before any AWS call, and an invalid value becomes ONE line naming the
variable (`ConfigurationError`, exit code 2), never a pydantic traceback. The README
configuration table is the contract for these fields; a test fails when one is missing there.
Defaults come from `defaults.py`, shared with the lean `run`/`check` readers (`envlite.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from entitlement_sidecar.errors import settings_error
from entitlement_sidecar.settings_base import CommonSettings
from entitlement_sidecar.sidecar.defaults import (
    DEFAULT_PORT,
    DEFAULT_PUBLIC_KEY_VERSION,
    DEFAULT_PUBLIC_KEYS,
    DEFAULT_STARTUP_TIMEOUT,
    DEFAULT_STATUS_DIR,
    ENV_PREFIX,
)

PRODUCT_CODE_PATTERN = r"^[-a-zA-Z0-9/=:_.@]{1,255}$"
SIX_HOURS = 6 * 3600.0


class SidecarSettings(CommonSettings):
    """`ENTITLEMENT_*` environment variables (see the README configuration table)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, env_ignore_empty=True
    )

    product_code: str = Field(
        pattern=PRODUCT_CODE_PATTERN,
        description="AWS Marketplace product code of this product (1-255 of `A-Za-z0-9-/=:_.@`).",
    )
    public_key_version: int = Field(
        DEFAULT_PUBLIC_KEY_VERSION,
        ge=1,
        le=2**31 - 1,
        description="`PublicKeyVersion` for RegisterUsage; selects `<version>.pem` in the ring.",
    )
    public_keys: Path = Field(
        Path(DEFAULT_PUBLIC_KEYS),
        description="Key ring directory of `<version>.pem` SPKI PEM files, baked into the image.",
    )
    trusted_product_codes: Annotated[frozenset[str], NoDecode] = Field(
        frozenset(),
        description="Comma list; when set, `PRODUCT_CODE` must be one of them (anti-tamper).",
    )
    status_dir: Path = Field(
        Path(DEFAULT_STATUS_DIR),
        description="Directory for `status.json` and `token.jwt` (the only place written).",
    )
    port: int = Field(
        DEFAULT_PORT, ge=1, le=65535, description="Port of `/livez` `/readyz` `/status` `/metrics`."
    )
    startup_timeout: float = Field(
        DEFAULT_STARTUP_TIMEOUT,
        gt=0,
        le=SIX_HOURS,
        description="Seconds to keep retrying transient RegisterUsage failures before giving up.",
    )
    region: str | None = Field(
        None,
        description="AWS region override; else `AWS_REGION`, `AWS_DEFAULT_REGION`, ECS metadata.",
    )
    verify_signature: bool = Field(
        True,
        description="Verify the PS256 token; `false` only for explicit testing (logged loudly).",
    )
    instance_id: str | None = Field(
        None,
        max_length=1024,
        description="Instance id when there is no `POD_UID` and no ECS metadata (local runs).",
    )
    backoff_initial: float = Field(
        1.0, gt=0, le=3600, description="First retry delay cap in seconds (full jitter)."
    )
    backoff_max: float = Field(
        60.0, gt=0, le=3600, description="Largest retry delay cap in seconds."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Log level."
    )
    log_format: Literal["json", "text"] = Field("json", description="Log format.")

    @field_validator("trusted_product_codes", mode="before")
    @classmethod
    def _split_codes(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(code.strip() for code in value.split(",") if code.strip())
        return value


def env_name(field: str) -> str:
    """The environment variable that sets `field`."""
    return ENV_PREFIX + field.upper()


def load_settings() -> SidecarSettings:
    """Read and validate the settings from the environment; `ConfigurationError` on any problem."""
    try:
        settings = SidecarSettings()
    except ValidationError as exc:
        raise settings_error(exc.errors(), ENV_PREFIX) from None
    return settings
