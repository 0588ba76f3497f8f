"""What the sidecar's and the operator's settings models share.

Both read environment variables that people type by hand: log levels and formats in any case,
optional strings left blank. The spelling rules live here once, so `ENTITLEMENT_LOG_LEVEL=debug`
and `ENTITLEMENT_OPERATOR_LOG_LEVEL=debug` behave the same. Validators name fields that a subclass
may not have (`check_fields=False`); pydantic applies each only where the field exists.
"""

from __future__ import annotations

from pydantic import field_validator
from pydantic_settings import BaseSettings


class CommonSettings(BaseSettings):
    """Base of `SidecarSettings` and `OperatorSettings`: shared input normalisation."""

    @field_validator("log_level", mode="before", check_fields=False)
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before", check_fields=False)
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("region", "instance_id", mode="before", check_fields=False)
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip() or None
        return value
