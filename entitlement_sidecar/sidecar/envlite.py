"""Reading `ENTITLEMENT_*` settings from the environment with the standard library only.

Every sidecar process reads its settings through these readers: `run` (alive in every pod) and
`check` (an exec probe) take the few they need (in License Manager mode `run` also reads the
heartbeat, wait and check-in timings it schedules), and `settings.SidecarSettings` composes all of
them for the short-lived children, which call AWS once and need not pay for pydantic. Each reader
applies one rule (range, type, pattern), takes its default from `defaults.py`, and raises ONE
`ConfigurationError` line naming the variable. No `re`, `typing` or `collections` (the exec probe).
"""

from __future__ import annotations

from entitlement_sidecar.aws import rules
from entitlement_sidecar.errors import ConfigurationError
from entitlement_sidecar.sidecar.defaults import (
    DEFAULT_ANYWHERE_HEARTBEAT,
    DEFAULT_LICENSE_CHECKIN,
    DEFAULT_LICENSE_HEARTBEAT,
    DEFAULT_LICENSE_WAIT,
    DEFAULT_PORT,
    DEFAULT_PUBLIC_KEY_VERSION,
    DEFAULT_PUBLIC_KEYS,
    DEFAULT_STATUS_DIR,
    ENV_PREFIX,
    MAX_LICENSE_HEARTBEAT,
)

TYPE_CHECKING = False  # keep `typing` out of the exec probe; mypy still reads this block
if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_PORT = 65535
TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "on"})
FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "off"})
_PRODUCT_CODE_CHARACTERS = frozenset(rules.PRODUCT_CODE_CHARACTERS)


def raw(environ: Mapping[str, str], name: str) -> str | None:
    """`ENTITLEMENT_<name>` stripped, or None when unset or blank."""
    value = environ.get(ENV_PREFIX + name)
    return None if value is None or not value.strip() else value.strip()


def _invalid(name: str, value: str, rule: str) -> ConfigurationError:
    shown = value if len(value) <= 60 else value[:57] + "..."
    return ConfigurationError(f"{ENV_PREFIX}{name}={shown!r} {rule}", variable=ENV_PREFIX + name)


def integer(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """`ENTITLEMENT_<name>` as an int in [low, high], or `default` when unset/empty."""
    value = raw(environ, name)
    if value is None:
        return default
    try:
        number = int(value, 10)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise _invalid(name, value, f"must be an integer from {low} to {high}")
    return number


def _float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return float("nan")  # fails every range check below, as "nan" and "inf" do


def number(environ: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """`ENTITLEMENT_<name>` as a number in [low, high], or `default` when unset/empty."""
    value = raw(environ, name)
    if value is None:
        return default
    if not low <= _float(value) <= high:
        raise _invalid(name, value, f"must be a number from {low:g} to {high:g}")
    return _float(value)


def seconds(environ: Mapping[str, str], name: str, default: float, high: float) -> float:
    """`ENTITLEMENT_<name>` as a number of seconds in (0, high], or `default` when unset."""
    value = raw(environ, name)
    if value is None:
        return default
    if not 0 < _float(value) <= high:
        raise _invalid(name, value, f"must be a number of seconds, above 0 and at most {high:g}")
    return _float(value)


def boolean(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """`ENTITLEMENT_<name>` as true/false (also 1/0, yes/no, on/off), or `default`."""
    value = raw(environ, name)
    if value is None:
        return default
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise _invalid(name, value, "must be true or false")


def choice(environ: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    """`ENTITLEMENT_<name>` as one of `choices` (any letter case), or `default`."""
    value = raw(environ, name)
    if value is None:
        return default
    for option in choices:
        if value.casefold() == option.casefold():
            return option
    raise _invalid(name, value, "must be one of " + ", ".join(choices))


def text(environ: Mapping[str, str], name: str, limit: int | None = None) -> str | None:
    """`ENTITLEMENT_<name>` stripped, or None when unset or blank; with `limit`, printable text
    of at most that many characters."""
    value = raw(environ, name)
    if value is not None and limit is not None and (len(value) > limit or not value.isprintable()):
        raise _invalid(name, value, f"must be printable text of at most {limit} characters")
    return value


def is_product_code(code: str) -> bool:
    """True when `code` follows AWS's product code rule (`rules.PRODUCT_CODE`), without `re`."""
    return 0 < len(code) <= rules.PRODUCT_CODE_MAX and _PRODUCT_CODE_CHARACTERS.issuperset(code)


def port(environ: Mapping[str, str]) -> int:
    return integer(environ, "PORT", DEFAULT_PORT, 1, MAX_PORT)


def status_dir(environ: Mapping[str, str]) -> str:
    return raw(environ, "STATUS_DIR") or DEFAULT_STATUS_DIR


def public_keys(environ: Mapping[str, str]) -> str:
    return raw(environ, "PUBLIC_KEYS") or DEFAULT_PUBLIC_KEYS


def public_key_version(environ: Mapping[str, str]) -> int:
    return integer(
        environ, "PUBLIC_KEY_VERSION", DEFAULT_PUBLIC_KEY_VERSION, 1, rules.PUBLIC_KEY_VERSION_MAX
    )


def product_code(environ: Mapping[str, str]) -> str:
    """The configured product code (required, AWS's rule; a stray newline is not trimmed away)."""
    value = environ.get(ENV_PREFIX + "PRODUCT_CODE")
    if value is None or not value.strip():
        raise ConfigurationError(
            f"{ENV_PREFIX}PRODUCT_CODE is required (the AWS Marketplace product code)",
            variable=ENV_PREFIX + "PRODUCT_CODE",
        )
    if not is_product_code(value):
        raise _invalid("PRODUCT_CODE", value, f"must be {rules.PRODUCT_CODE_HINT}")
    return value


def trusted_product_codes(environ: Mapping[str, str]) -> frozenset[str]:
    value = raw(environ, "TRUSTED_PRODUCT_CODES") or ""
    return frozenset(code.strip() for code in value.split(",") if code.strip())


def product_sku(environ: Mapping[str, str]) -> str | None:
    """The License Manager product SKU; set means License Manager mode."""
    return raw(environ, "PRODUCT_SKU")


def license_mode(environ: Mapping[str, str]) -> bool:
    """License Manager mode: `ENTITLEMENT_PRODUCT_SKU` is set."""
    return product_sku(environ) is not None


def trusted_product_skus(environ: Mapping[str, str]) -> frozenset[str]:
    value = raw(environ, "TRUSTED_PRODUCT_SKUS") or ""
    return frozenset(sku.strip() for sku in value.split(",") if sku.strip())


def license_token_key(environ: Mapping[str, str]) -> str | None:
    """The path of the SignedToken public key, when the image carries one."""
    return raw(environ, "LICENSE_TOKEN_KEY")


def license_heartbeat(environ: Mapping[str, str]) -> int:
    """Seconds between license re-checks (a day on Containers Anywhere unless set)."""
    anywhere = raw(environ, "LICENSE_ANYWHERE_DIR") is not None
    default = DEFAULT_ANYWHERE_HEARTBEAT if anywhere else DEFAULT_LICENSE_HEARTBEAT
    return integer(environ, "LICENSE_HEARTBEAT_SECONDS", default, 1, MAX_LICENSE_HEARTBEAT)


def license_wait(environ: Mapping[str, str]) -> int:
    """Seconds between checkout attempts while every seat is in use."""
    return integer(environ, "LICENSE_WAIT_SECONDS", DEFAULT_LICENSE_WAIT, 1, 3600)


def license_checkin(environ: Mapping[str, str]) -> int:
    """Seconds a seat check-in may take at SIGTERM."""
    return integer(environ, "LICENSE_CHECKIN_SECONDS", DEFAULT_LICENSE_CHECKIN, 1, 300)


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
