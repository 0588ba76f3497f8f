"""The sidecar's settings: one typed object from `ENTITLEMENT_*` variables, validated up front.

Everything is checked before any AWS call, and an invalid value becomes ONE line naming the
variable (`ConfigurationError`, exit code 2), never a pydantic traceback. The README
configuration table is the contract for these fields; a test fails when one is missing there.
Defaults come from `defaults.py`, shared with the lean `run`/`check` readers (`envlite.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from entitlement_sidecar.aws import rules
from entitlement_sidecar.settings_base import (
    CommaList,
    CommonSettings,
    LogFormat,
    LogLevel,
    OptionalText,
    ProductCode,
    split_commas,
)
from entitlement_sidecar.sidecar.defaults import (
    DEFAULT_PORT,
    DEFAULT_PUBLIC_KEY_VERSION,
    DEFAULT_PUBLIC_KEYS,
    DEFAULT_STARTUP_TIMEOUT,
    DEFAULT_STATUS_DIR,
    DEFAULT_USAGE_JOURNAL_BYTES,
    DEFAULT_USAGE_PORT,
    DEFAULT_USAGE_SEND_JITTER,
    DEFAULT_USAGE_SHUTDOWN_TIMEOUT,
    ENV_PREFIX,
    MAX_USAGE_JOURNAL_BYTES,
    MAX_USAGE_SEND_JITTER,
    MAX_USAGE_SHUTDOWN_TIMEOUT,
    MIN_USAGE_JOURNAL_BYTES,
)
from entitlement_sidecar.sidecar.usage import config as usage_config


def _checked(check: Callable[[tuple[str, ...]], str | None]) -> AfterValidator:
    def validate(value: tuple[str, ...]) -> tuple[str, ...]:
        problem = check(value)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(validate)


def _socket_path(value: str | None) -> str | None:
    problem = usage_config.check_socket(value) if value is not None else None
    if problem:
        raise ValueError(problem)
    return value


UsageDimensions = Annotated[CommaList, _checked(usage_config.check_dimensions)]
UsageTagKeys = Annotated[CommaList, _checked(usage_config.check_tag_keys)]
SocketPath = Annotated[OptionalText, AfterValidator(_socket_path)]


class SidecarSettings(CommonSettings):
    """`ENTITLEMENT_*` environment variables (see the README configuration table)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, env_ignore_empty=True
    )

    product_code: ProductCode = Field(
        description="AWS Marketplace product code of this product (1-255 of `A-Za-z0-9-/=:_.@`).",
    )
    public_key_version: int = Field(
        DEFAULT_PUBLIC_KEY_VERSION,
        ge=1,
        le=rules.PUBLIC_KEY_VERSION_MAX,
        description="`PublicKeyVersion` for RegisterUsage; selects `<version>.pem` in the ring.",
    )
    public_keys: Path = Field(
        Path(DEFAULT_PUBLIC_KEYS),
        description="Key ring directory of `<version>.pem` SPKI PEM files, baked into the image.",
    )
    trusted_product_codes: Annotated[frozenset[str], NoDecode, BeforeValidator(split_commas)] = (
        Field(
            frozenset(),
            description="Comma list; when set, `PRODUCT_CODE` must be one of them (anti-tamper).",
        )
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
        le=rules.REGISTER_WINDOW_SECONDS,
        description="Seconds to keep retrying transient RegisterUsage failures before giving up.",
    )
    region: OptionalText = Field(
        None,
        description="AWS region override; else `AWS_REGION`, `AWS_DEFAULT_REGION`, ECS metadata.",
    )
    verify_signature: bool = Field(
        True,
        description="Verify the PS256 token; `false` only for explicit testing (logged loudly).",
    )
    instance_id: OptionalText = Field(
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
    log_level: LogLevel = Field("INFO", description="Log level.")
    log_format: LogFormat = Field("json", description="Log format.")

    # Usage the app reports (README "Usage the app reports"); intake is on when dimensions are set.
    usage_dimensions: UsageDimensions = Field(
        (), description="Comma list of the dimensions the app may report; intake is on when set."
    )
    usage_port: int = Field(
        DEFAULT_USAGE_PORT, ge=1, le=65535, description="Intake port, bound to 127.0.0.1 only."
    )
    usage_socket: SocketPath = Field(
        None, description="Also accept usage on this Unix socket (ECS bridge mode)."
    )
    usage_tag_keys: UsageTagKeys = Field(
        (), description="Comma list of allocation tag keys events may carry (at most 5)."
    )
    usage_journal_bytes: int = Field(
        DEFAULT_USAGE_JOURNAL_BYTES,
        ge=MIN_USAGE_JOURNAL_BYTES,
        le=MAX_USAGE_JOURNAL_BYTES,
        description="Size bound of the usage journal; beyond it events get 429.",
    )
    usage_send_jitter: float = Field(
        DEFAULT_USAGE_SEND_JITTER,
        ge=0,
        le=MAX_USAGE_SEND_JITTER,
        description="Largest random delay in seconds before an hour's first send.",
    )
    usage_shutdown_timeout: float = Field(
        DEFAULT_USAGE_SHUTDOWN_TIMEOUT,
        ge=1,
        le=MAX_USAGE_SHUTDOWN_TIMEOUT,
        description="Seconds to send the partial hour after SIGTERM.",
    )

    @field_validator("usage_port")
    @classmethod
    def _not_the_probe_port(cls, value: int, info: ValidationInfo) -> int:
        if info.data.get("usage_dimensions") and value == info.data.get("port"):
            raise ValueError(f"{value} is the probe port (ENTITLEMENT_PORT): use another")
        return value


env_name = SidecarSettings.env_name
load_settings = SidecarSettings.load
