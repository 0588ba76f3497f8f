"""What the sidecar's and the operator's settings models share: types, naming, loading.

Both read environment variables that people type by hand, so the spelling rules live here once:
log levels and formats in any case, optional strings left blank, the product code checked against
AWS's rule (`aws/rules.py`). Fields use these annotated types instead of name-matched validators.
Loading is one classmethod: an invalid value becomes ONE line naming the variable
(`ConfigurationError`, exit code 2), never a pydantic traceback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BeforeValidator, ValidationError
from pydantic_settings import BaseSettings, NoDecode

from entitlement_sidecar.aws import rules
from entitlement_sidecar.errors import ConfigurationError


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _blank_is_none(value: object) -> object:
    if isinstance(value, str):
        return value.strip() or None
    return value


def _product_code(value: str) -> str:
    if not re.fullmatch(rules.PRODUCT_CODE, value):
        raise ValueError(f"must be {rules.PRODUCT_CODE_HINT}")
    return value


def split_commas(value: object) -> object:
    """A comma list from the environment as a tuple of its non-blank, stripped items."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)
]
LogFormat = Annotated[Literal["json", "text"], BeforeValidator(_lower)]
OptionalText = Annotated[str | None, BeforeValidator(_blank_is_none)]
ProductCode = Annotated[str, AfterValidator(_product_code)]
CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(split_commas)]


def settings_error(errors: Sequence[Mapping[str, Any]], prefix: str) -> ConfigurationError:
    """One line naming the variable, from the first of pydantic's `ValidationError.errors()`."""
    first = errors[0]
    field = str(first["loc"][0]) if first.get("loc") else ""
    variable = prefix + field.upper() if field else prefix + "*"
    message = "is required" if first.get("type") == "missing" else str(first.get("msg", ""))
    message = message.removeprefix("Value error, ")
    return ConfigurationError(f"{variable}: {message}", variable=variable)


class CommonSettings(BaseSettings):
    """Base of `SidecarSettings` and `OperatorSettings`: variable names and loading."""

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable that sets `field`."""
        return str(cls.model_config.get("env_prefix", "")) + field.upper()

    @classmethod
    def load(cls) -> Self:
        """Read and validate from the environment; `ConfigurationError` on any problem."""
        try:
            return cls()
        except ValidationError as exc:
            raise settings_error(exc.errors(), cls.env_name("")) from None
