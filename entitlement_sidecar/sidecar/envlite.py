"""The few settings the lean processes need, read straight from the environment.

`run` (alive in every pod) and `check` (an exec probe) cannot afford pydantic; they need only the
port, the status directory and, for `check --verify`, the product code, key version and key ring.
These readers apply the same names, defaults (`defaults.py`) and rules as `settings.SidecarSettings`
and raise the same one-line `ConfigurationError`; a test keeps the two in agreement.
"""

from __future__ import annotations

from entitlement_sidecar.errors import ConfigurationError
from entitlement_sidecar.sidecar.defaults import (
    DEFAULT_PORT,
    DEFAULT_PUBLIC_KEY_VERSION,
    DEFAULT_PUBLIC_KEYS,
    DEFAULT_STATUS_DIR,
    ENV_PREFIX,
)

TYPE_CHECKING = False  # keep `typing` out of the exec probe; mypy still reads this block
if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_PORT = 65535


def _raw(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(ENV_PREFIX + name)
    return None if value is None or not value.strip() else value.strip()


def integer(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """`ENTITLEMENT_<name>` as an int in [low, high], or `default` when unset/empty."""
    raw = _raw(environ, name)
    if raw is None:
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ConfigurationError(
            f"{ENV_PREFIX}{name}={raw!r} must be an integer from {low} to {high}",
            variable=ENV_PREFIX + name,
        )
    return value


def number(environ: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """`ENTITLEMENT_<name>` as a number in [low, high], or `default` when unset/empty."""
    raw = _raw(environ, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # NaN fails too
        raise ConfigurationError(
            f"{ENV_PREFIX}{name}={raw!r} must be a number from {low:g} to {high:g}",
            variable=ENV_PREFIX + name,
        )
    return value


def text(environ: Mapping[str, str], name: str) -> str | None:
    """`ENTITLEMENT_<name>` stripped, or None when unset or blank."""
    return _raw(environ, name)


def port(environ: Mapping[str, str]) -> int:
    return integer(environ, "PORT", DEFAULT_PORT, 1, MAX_PORT)


def status_dir(environ: Mapping[str, str]) -> str:
    return _raw(environ, "STATUS_DIR") or DEFAULT_STATUS_DIR


def public_keys(environ: Mapping[str, str]) -> str:
    return _raw(environ, "PUBLIC_KEYS") or DEFAULT_PUBLIC_KEYS


def public_key_version(environ: Mapping[str, str]) -> int:
    return integer(environ, "PUBLIC_KEY_VERSION", DEFAULT_PUBLIC_KEY_VERSION, 1, 2**31 - 1)


def product_code(environ: Mapping[str, str]) -> str:
    """The configured product code (required)."""
    raw = _raw(environ, "PRODUCT_CODE")
    if raw is None:
        raise ConfigurationError(
            f"{ENV_PREFIX}PRODUCT_CODE is required (the AWS Marketplace product code)",
            variable=ENV_PREFIX + "PRODUCT_CODE",
        )
    return raw


def trusted_product_codes(environ: Mapping[str, str]) -> frozenset[str]:
    raw = _raw(environ, "TRUSTED_PRODUCT_CODES") or ""
    return frozenset(code.strip() for code in raw.split(",") if code.strip())


def local_instance_id(environ: Mapping[str, str]) -> tuple[str | None, bool]:
    """(this instance's id when knowable without I/O, whether ECS metadata must be asked).

    Precedence as in `instance.resolve`: `POD_UID`, then ECS task metadata, then the explicit
    `ENTITLEMENT_INSTANCE_ID`.
    """
    pod_uid = clean_id(environ.get("POD_UID"))
    if pod_uid:
        return pod_uid, False
    if clean_id(environ.get("ECS_CONTAINER_METADATA_URI_V4")):
        return None, True
    return clean_id(environ.get(ENV_PREFIX + "INSTANCE_ID")), False


def clean_id(value: str | None, limit: int = 1024) -> str | None:
    """`value` stripped, or None when empty, too long or not printable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    return value if len(value) <= limit and value.isprintable() else None
