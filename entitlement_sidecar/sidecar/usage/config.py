"""The usage settings as the lean `run` parent reads them (`ENTITLEMENT_USAGE_*`, no pydantic).

Intake is on when `ENTITLEMENT_USAGE_DIMENSIONS` is set. The same names, defaults (`defaults.py`)
and limits (`aws/rules.py`) as `settings.SidecarSettings`, which the children load; a test keeps
the two readers in agreement. Any invalid value is one `ConfigurationError` naming the variable
(exit code 2), before anything is bound or spawned.
"""

from __future__ import annotations

from entitlement_sidecar.aws import rules
from entitlement_sidecar.errors import ConfigurationError
from entitlement_sidecar.record import Record
from entitlement_sidecar.sidecar import envlite
from entitlement_sidecar.sidecar.defaults import (
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
from entitlement_sidecar.sidecar.usage.events import valid_tag_key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the final NUL


class UsageConfig(Record):
    """The intake's settings (only built when intake is on)."""

    __slots__ = (
        "dimensions",
        "journal_bytes",
        "port",
        "send_jitter",
        "shutdown_timeout",
        "socket",
        "tag_keys",
    )

    def __init__(
        self,
        *,
        dimensions: tuple[str, ...],
        port: int,
        socket: str | None,
        tag_keys: tuple[str, ...],
        journal_bytes: int,
        send_jitter: float,
        shutdown_timeout: float,
    ) -> None:
        self.dimensions = dimensions
        self.port = port
        self.socket = socket
        self.tag_keys = tag_keys
        self.journal_bytes = journal_bytes
        self.send_jitter = send_jitter
        self.shutdown_timeout = shutdown_timeout


def _bad(name: str, message: str) -> ConfigurationError:
    return ConfigurationError(f"{ENV_PREFIX}{name}: {message}", variable=ENV_PREFIX + name)


def split(raw: str | None) -> tuple[str, ...]:
    """A comma list: its non-blank items, stripped, in order."""
    return tuple(item.strip() for item in (raw or "").split(",") if item.strip())


def check_dimensions(names: tuple[str, ...]) -> str | None:
    """Why `names` is not a valid list of usage dimensions, or None."""
    if len(names) > rules.DIMENSIONS_PER_PRODUCT:
        return f"at most {rules.DIMENSIONS_PER_PRODUCT} dimensions (AWS's limit per product)"
    for name in names:
        if len(name) > rules.DIMENSION_MAX or not name.isprintable():
            return f"{name[:40]!r} is not 1-{rules.DIMENSION_MAX} printable characters"
    if len(set(names)) != len(names):
        return "a dimension is listed twice"
    return None


def check_tag_keys(keys: tuple[str, ...]) -> str | None:
    """Why `keys` is not a valid list of allocation tag keys, or None."""
    if len(keys) > rules.TAG_KEYS_PER_REQUEST:
        return f"at most {rules.TAG_KEYS_PER_REQUEST} tag keys (AWS's limit per request)"
    for key in keys:
        if not valid_tag_key(key):
            return f"{key[:40]!r} is not 1-{rules.TAG_KEY_MAX} letters, digits, spaces or +-=._:/@"
    if len(set(keys)) != len(keys):
        return "a tag key is listed twice"
    return None


def check_socket(path: str) -> str | None:
    """Why `path` cannot be the intake's Unix socket, or None."""
    if not path.startswith("/"):
        return "must be an absolute path"
    if len(path.encode()) > SOCKET_PATH_MAX:
        return f"at most {SOCKET_PATH_MAX} bytes (a Unix socket path)"
    return None


def load(environ: Mapping[str, str], probe_port: int) -> UsageConfig | None:
    """The usage settings, or None when intake is off; `ConfigurationError` when invalid."""
    dimensions = split(envlite.text(environ, "USAGE_DIMENSIONS"))
    if not dimensions:
        return None
    problem = check_dimensions(dimensions)
    if problem:
        raise _bad("USAGE_DIMENSIONS", problem)
    port = envlite.integer(environ, "USAGE_PORT", DEFAULT_USAGE_PORT, 1, envlite.MAX_PORT)
    if port == probe_port:
        raise _bad("USAGE_PORT", f"{port} is the probe port (ENTITLEMENT_PORT): use another")
    socket = envlite.text(environ, "USAGE_SOCKET")
    if socket is not None and (problem := check_socket(socket)):
        raise _bad("USAGE_SOCKET", problem)
    tag_keys = split(envlite.text(environ, "USAGE_TAG_KEYS"))
    if problem := check_tag_keys(tag_keys):
        raise _bad("USAGE_TAG_KEYS", problem)
    return UsageConfig(
        dimensions=dimensions,
        port=port,
        socket=socket,
        tag_keys=tag_keys,
        journal_bytes=envlite.integer(
            environ,
            "USAGE_JOURNAL_BYTES",
            DEFAULT_USAGE_JOURNAL_BYTES,
            MIN_USAGE_JOURNAL_BYTES,
            MAX_USAGE_JOURNAL_BYTES,
        ),
        send_jitter=envlite.number(
            environ, "USAGE_SEND_JITTER", DEFAULT_USAGE_SEND_JITTER, 0, MAX_USAGE_SEND_JITTER
        ),
        shutdown_timeout=envlite.number(
            environ,
            "USAGE_SHUTDOWN_TIMEOUT",
            DEFAULT_USAGE_SHUTDOWN_TIMEOUT,
            1,
            MAX_USAGE_SHUTDOWN_TIMEOUT,
        ),
    )
