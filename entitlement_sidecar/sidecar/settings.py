"""The sidecar's settings: one object from `ENTITLEMENT_*` variables, validated up front.

Everything is checked before any AWS call, and an invalid value becomes ONE line naming the
variable (`ConfigurationError`, exit code 2). The image policy (`policy.py`) is applied first, so
a setting the image fixed cannot be changed from the pod spec. Standard library only: the
registration child calls AWS once and need not import pydantic for it (`envlite.py` holds the
readers, shared with `run` and `check`; the usage settings are read by `usage/config.py`, as `run`
reads them). License Manager mode (contract pricing) is on when `ENTITLEMENT_PRODUCT_SKU` is set;
its settings are read here for the License Manager children (`run` reads the timings it schedules
by through `envlite`). `FIELDS` is the contract with the README configuration table (a test
compares them) and the list of names a misspelt variable is matched against.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from entitlement_sidecar.aws import rules
from entitlement_sidecar.errors import ConfigurationError
from entitlement_sidecar.record import Record
from entitlement_sidecar.sidecar import envlite
from entitlement_sidecar.sidecar import policy as image
from entitlement_sidecar.sidecar.defaults import (
    DEFAULT_ANYWHERE_HEARTBEAT,
    DEFAULT_BACKOFF_INITIAL,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_HERD_SIZE,
    DEFAULT_LICENSE_CHECKIN,
    DEFAULT_LICENSE_GRACE,
    DEFAULT_LICENSE_HEARTBEAT,
    DEFAULT_LICENSE_WAIT,
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
    MODE_LICENSE_MANAGER,
    MODE_REGISTER_USAGE,
    POLICY_LOCK,
    POLICY_REPORT,
)
from entitlement_sidecar.sidecar.license.wants import Wants, parse_wants
from entitlement_sidecar.sidecar.usage import config as usage_config
from entitlement_sidecar.sidecar.usage.config import UsageConfig

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "text")
MAX_BACKOFF = 3600.0
MAX_HERD_SIZE = 100_000
OTHER_PREFIXES = (ENV_PREFIX + "OPERATOR_",)  # the operator's own settings, not ours
CHECKOUTS = ("provisional", "perpetual")
POLICIES = (POLICY_LOCK, POLICY_REPORT)
MAX_LICENSE_GRACE = 7 * 86400.0
MAX_LICENSE_WAIT = 3600
MAX_LICENSE_CHECKIN = 300

# field -> description (the README configuration table has a row for each).
FIELDS = {
    "product_code": "AWS Marketplace product code (1-255 of `A-Za-z0-9-/=:_.@`); required "
    "unless `PRODUCT_SKU` is set.",
    "public_key_version": "`PublicKeyVersion` for RegisterUsage; selects `<version>.pem`.",
    "public_keys": "Key ring directory of `<version>.pem` SPKI PEM files, baked into the image.",
    "trusted_product_codes": "Comma list; `PRODUCT_CODE` must be one of them (anti-tamper).",
    "status_dir": "Directory for `status.json` and `token.jwt` (the only place written).",
    "port": "Port of `/livez` `/readyz` `/status` `/metrics`.",
    "startup_timeout": "Seconds to keep retrying transient RegisterUsage failures.",
    "region": "AWS region override; else `AWS_REGION`, `AWS_DEFAULT_REGION`, ECS metadata.",
    "verify_signature": "Verify the PS256 token (only a permissive image lets it be false).",
    "instance_id": "Instance id when there is no `POD_UID` and no ECS metadata (local runs).",
    "backoff_initial": "First retry delay cap in seconds (full jitter).",
    "backoff_max": "Largest retry delay cap in seconds.",
    "herd_size": "How many pods of this product start together (sizes the throttling backoff).",
    "log_level": "Log level.",
    "log_format": "Log format.",
    # Usage the app reports (README "Usage the app reports"); intake is on when dimensions are set.
    "usage_dimensions": "Comma list of the dimensions the app may report; intake is on when set.",
    "usage_port": "Intake port, bound to 127.0.0.1 only.",
    "usage_socket": "Also accept usage on this Unix socket (ECS bridge mode).",
    "usage_tag_keys": "Comma list of allocation tag keys events may carry (at most 5).",
    "usage_journal_bytes": "Size bound of the usage journal; beyond it events get 429.",
    "usage_send_jitter": "Largest random delay in seconds before an hour's first send.",
    "usage_shutdown_timeout": "Seconds to send the partial hour after SIGTERM.",
    # License Manager mode (README "Contract pricing: License Manager"); on when the SKU is set.
    "product_sku": "License Manager mode when set: the product ID (CheckoutLicense SKU).",
    "trusted_product_skus": "Comma list; when set, `PRODUCT_SKU` must be one of them.",
    "license_entitlements": "Comma list: `NAME` per tier, `NAME=COUNT` per counted unit.",
    "license_checkout": "Counted units: floating seats or drawdown.",
    "license_heartbeat_seconds": "Re-check period: 900 s, or 86400 s on Containers Anywhere.",
    "license_policy": "On a lost license: `lock` (unready after the grace) or `report`.",
    "license_grace_seconds": "How long a lost license is tolerated before `lock` takes readiness "
    "down.",
    "license_region": "License Manager Region; else the region settings, else us-east-1.",
    "license_anywhere_dir": "Containers Anywhere: where the buyer's Secret is mounted.",
    "license_token_key": "PEM public key that must verify the license's SignedToken.",
    "license_wait_seconds": "Retry period while every seat is taken.",
    "license_checkin_seconds": "Time allowed to return a seat at exit.",
}


def env_name(field: str) -> str:
    """The environment variable that sets `field`."""
    return ENV_PREFIX + field.upper()


KNOWN_VARIABLES = frozenset(env_name(field) for field in FIELDS)


class SidecarSettings(Record):
    """`ENTITLEMENT_*` environment variables (see the README configuration table)."""

    __slots__ = (*FIELDS, "image_policy")

    def __init__(
        self,
        *,
        product_code: str | None = None,
        public_key_version: int = DEFAULT_PUBLIC_KEY_VERSION,
        public_keys: Path | str = DEFAULT_PUBLIC_KEYS,
        trusted_product_codes: frozenset[str] = frozenset(),
        status_dir: Path | str = DEFAULT_STATUS_DIR,
        port: int = DEFAULT_PORT,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        region: str | None = None,
        verify_signature: bool = True,
        instance_id: str | None = None,
        backoff_initial: float = DEFAULT_BACKOFF_INITIAL,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        herd_size: int = DEFAULT_HERD_SIZE,
        log_level: str = "INFO",
        log_format: str = "json",
        usage: UsageConfig | None = None,
        product_sku: str | None = None,
        trusted_product_skus: frozenset[str] = frozenset(),
        license_entitlements: str | None = None,
        license_checkout: str = "provisional",
        license_heartbeat_seconds: int | None = None,
        license_policy: str | None = None,
        license_grace_seconds: float = DEFAULT_LICENSE_GRACE,
        license_region: str | None = None,
        license_anywhere_dir: Path | str | None = None,
        license_token_key: Path | str | None = None,
        license_wait_seconds: int = DEFAULT_LICENSE_WAIT,
        license_checkin_seconds: int = DEFAULT_LICENSE_CHECKIN,
        image_policy: image.Policy | None = None,
    ) -> None:
        self.product_code = product_code
        self.public_key_version = public_key_version
        self.public_keys = Path(public_keys)
        self.trusted_product_codes = frozenset(trusted_product_codes)
        self.status_dir = Path(status_dir)
        self.port = port
        self.startup_timeout = startup_timeout
        self.region = region
        self.verify_signature = verify_signature
        self.instance_id = instance_id
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.herd_size = herd_size
        self.log_level = log_level
        self.log_format = log_format
        usage = usage or UsageConfig(  # intake off: the defaults
            dimensions=(),
            port=DEFAULT_USAGE_PORT,
            socket=None,
            tag_keys=(),
            journal_bytes=DEFAULT_USAGE_JOURNAL_BYTES,
            send_jitter=DEFAULT_USAGE_SEND_JITTER,
            shutdown_timeout=DEFAULT_USAGE_SHUTDOWN_TIMEOUT,
        )
        self.usage_dimensions = usage.dimensions
        self.usage_port = usage.port
        self.usage_socket = usage.socket
        self.usage_tag_keys = usage.tag_keys
        self.usage_journal_bytes = usage.journal_bytes
        self.usage_send_jitter = usage.send_jitter
        self.usage_shutdown_timeout = usage.shutdown_timeout
        self.product_sku = product_sku
        self.trusted_product_skus = frozenset(trusted_product_skus)
        self.license_entitlements = license_entitlements
        self.license_checkout = license_checkout
        self.license_heartbeat_seconds = license_heartbeat_seconds
        self.license_policy = license_policy
        self.license_grace_seconds = license_grace_seconds
        self.license_region = license_region
        self.license_anywhere_dir = _path(license_anywhere_dir)
        self.license_token_key = _path(license_token_key)
        self.license_wait_seconds = license_wait_seconds
        self.license_checkin_seconds = license_checkin_seconds
        self.image_policy = image_policy  # None: no key pinning (tests that build settings)

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, image_policy: image.Policy | None = None
    ) -> SidecarSettings:
        """Validate `environ` (default: the process environment) under the image policy."""
        image_policy = image.load() if image_policy is None else image_policy
        env = image_policy.apply(os.environ if environ is None else environ)
        settings = cls(
            product_code=_product_code(env),
            public_key_version=envlite.public_key_version(env),
            public_keys=envlite.public_keys(env),
            trusted_product_codes=envlite.trusted_product_codes(env),
            status_dir=envlite.status_dir(env),
            port=envlite.port(env),
            startup_timeout=envlite.seconds(
                env, "STARTUP_TIMEOUT", DEFAULT_STARTUP_TIMEOUT, rules.REGISTER_WINDOW_SECONDS
            ),
            region=envlite.text(env, "REGION", 64),
            verify_signature=envlite.boolean(env, "VERIFY_SIGNATURE", True),
            instance_id=envlite.text(env, "INSTANCE_ID", 1024),
            backoff_initial=envlite.seconds(
                env, "BACKOFF_INITIAL", DEFAULT_BACKOFF_INITIAL, MAX_BACKOFF
            ),
            backoff_max=envlite.seconds(env, "BACKOFF_MAX", DEFAULT_BACKOFF_MAX, MAX_BACKOFF),
            herd_size=envlite.integer(env, "HERD_SIZE", DEFAULT_HERD_SIZE, 1, MAX_HERD_SIZE),
            log_level=envlite.choice(env, "LOG_LEVEL", "INFO", LOG_LEVELS),
            log_format=envlite.choice(env, "LOG_FORMAT", "json", LOG_FORMATS),
            usage=usage_config.load(env, envlite.port(env)),  # the same reader as `run`'s
            product_sku=_product_sku(env),
            trusted_product_skus=envlite.trusted_product_skus(env),
            license_entitlements=_entitlements(env),
            license_checkout=envlite.choice(env, "LICENSE_CHECKOUT", "provisional", CHECKOUTS),
            license_heartbeat_seconds=_optional_heartbeat(env),
            license_policy=_optional_policy(env),
            license_grace_seconds=envlite.number(
                env, "LICENSE_GRACE_SECONDS", DEFAULT_LICENSE_GRACE, 0, MAX_LICENSE_GRACE
            ),
            license_region=envlite.text(env, "LICENSE_REGION", 64),
            license_anywhere_dir=envlite.text(env, "LICENSE_ANYWHERE_DIR", 4096),
            license_token_key=envlite.text(env, "LICENSE_TOKEN_KEY", 4096),
            license_wait_seconds=envlite.license_wait(env),
            license_checkin_seconds=envlite.license_checkin(env),
            image_policy=image_policy,
        )
        settings.check_mode()
        return settings

    def check_mode(self) -> None:
        """The settings each mode requires (one line naming the variable, exit 2)."""
        if self.product_sku is None and self.product_code is None:
            raise ConfigurationError(
                f"{env_name('product_code')} is required (the AWS Marketplace product code; "
                f"or {env_name('product_sku')} for a contract product)",
                variable=env_name("product_code"),
            )
        if self.product_code is None and self.usage_dimensions:
            raise ConfigurationError(
                f"{env_name('product_code')} is required with "
                f"{env_name('usage_dimensions')} (MeterUsage names the product code)",
                variable=env_name("product_code"),
            )
        if self.product_sku is not None and self.license_entitlements is None:
            variable = env_name("license_entitlements")
            raise ConfigurationError(
                f"{variable} is required with {env_name('product_sku')} "
                "(e.g. basic,pro,enterprise or seats=1)",
                variable=variable,
            )

    @property
    def metering_product_code(self) -> str:
        """The product code RegisterUsage and MeterUsage send (their mode always has one)."""
        if self.product_code is None:
            variable = env_name("product_code")
            raise ConfigurationError(f"{variable} is required", variable=variable)
        return self.product_code

    @property
    def mode(self) -> str:
        return MODE_LICENSE_MANAGER if self.product_sku else MODE_REGISTER_USAGE

    @property
    def anywhere(self) -> bool:
        return self.license_anywhere_dir is not None

    @property
    def wants(self) -> Wants:
        return parse_wants(self.license_entitlements or "")

    @property
    def heartbeat_seconds(self) -> int:
        if self.license_heartbeat_seconds is not None:
            return self.license_heartbeat_seconds
        return DEFAULT_ANYWHERE_HEARTBEAT if self.anywhere else DEFAULT_LICENSE_HEARTBEAT

    @property
    def policy(self) -> str:
        """`lock` on EKS and ECS, `report` on Anywhere (AWS: avoid hard limits), unless set."""
        if self.license_policy is not None:
            return self.license_policy
        return POLICY_REPORT if self.anywhere else POLICY_LOCK


def _path(value: Path | str | None) -> Path | None:
    return None if value is None else Path(value)


def _invalid(name: str, value: str, rule: str) -> ConfigurationError:
    shown = value if len(value) <= 60 else value[:57] + "..."
    return ConfigurationError(f"{ENV_PREFIX}{name}={shown!r} {rule}", variable=ENV_PREFIX + name)


def _product_code(env: Mapping[str, str]) -> str | None:
    """The product code when set (AWS's rule); whether it is required depends on the mode."""
    return None if envlite.raw(env, "PRODUCT_CODE") is None else envlite.product_code(env)


def _product_sku(env: Mapping[str, str]) -> str | None:
    sku = envlite.product_sku(env)
    if sku is not None and not re.fullmatch(rules.PRODUCT_SKU, sku):
        raise _invalid("PRODUCT_SKU", sku, f"must be {rules.PRODUCT_SKU_HINT}")
    return sku


def _entitlements(env: Mapping[str, str]) -> str | None:
    value = envlite.raw(env, "LICENSE_ENTITLEMENTS")
    if value is not None:
        try:
            parse_wants(value)
        except ValueError as exc:
            raise _invalid("LICENSE_ENTITLEMENTS", value, f"is invalid: {exc}") from None
    return value


def _optional_heartbeat(env: Mapping[str, str]) -> int | None:
    if envlite.raw(env, "LICENSE_HEARTBEAT_SECONDS") is None:
        return None
    return envlite.license_heartbeat(env)


def _optional_policy(env: Mapping[str, str]) -> str | None:
    if envlite.raw(env, "LICENSE_POLICY") is None:
        return None
    return envlite.choice(env, "LICENSE_POLICY", POLICY_LOCK, POLICIES)


load_settings = SidecarSettings.load


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """(name, closest known name) for each `ENTITLEMENT_*` variable that is not a setting."""
    unknown = sorted(
        name
        for name in environ
        if name.startswith(ENV_PREFIX)
        and name not in KNOWN_VARIABLES
        and not name.startswith(OTHER_PREFIXES)
    )
    return [
        (name, min(sorted(KNOWN_VARIABLES), key=lambda k: distance(name, k))) for name in unknown
    ]


def distance(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions, adjacent swaps) between a and b."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, previous2[j - 2] + 1)
            current.append(cost)
        previous2, previous = previous, current
    return previous[-1]
