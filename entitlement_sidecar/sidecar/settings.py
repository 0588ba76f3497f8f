"""The sidecar's settings: one object from `ENTITLEMENT_*` variables, validated up front.

Everything is checked before any AWS call, and an invalid value becomes ONE line naming the
variable (`ConfigurationError`, exit code 2). The image policy (`policy.py`) is applied first, so
a setting the image fixed cannot be changed from the pod spec. Standard library only: the
registration child calls AWS once and need not import pydantic for it (`envlite.py` holds the
readers, shared with `run` and `check`; the usage settings are read by `usage/config.py`, as `run`
reads them). `FIELDS` is the contract with the README configuration table (a test compares them)
and the list of names a misspelt variable is matched against.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from entitlement_sidecar.aws import rules
from entitlement_sidecar.record import Record
from entitlement_sidecar.sidecar import envlite
from entitlement_sidecar.sidecar import policy as image
from entitlement_sidecar.sidecar.defaults import (
    DEFAULT_BACKOFF_INITIAL,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_HERD_SIZE,
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
)
from entitlement_sidecar.sidecar.usage import config as usage_config
from entitlement_sidecar.sidecar.usage.config import UsageConfig

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "text")
MAX_BACKOFF = 3600.0
MAX_HERD_SIZE = 100_000
OTHER_PREFIXES = (ENV_PREFIX + "OPERATOR_",)  # the operator's own settings, not ours

# field -> description (the README configuration table has a row for each).
FIELDS = {
    "product_code": "AWS Marketplace product code of this product (1-255 of `A-Za-z0-9-/=:_.@`).",
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
        product_code: str,
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
        self.image_policy = image_policy  # None: no key pinning (tests that build settings)

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, image_policy: image.Policy | None = None
    ) -> SidecarSettings:
        """Validate `environ` (default: the process environment) under the image policy."""
        image_policy = image.load() if image_policy is None else image_policy
        env = image_policy.apply(os.environ if environ is None else environ)
        return cls(
            product_code=envlite.product_code(env),
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
            image_policy=image_policy,
        )


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
