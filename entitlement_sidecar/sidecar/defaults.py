"""Constants shared by every sidecar process: defaults, file names, states and exit codes.

`run` stays alive in every pod and `check` runs as an exec probe every few seconds; they read the
few values they need with `envlite` and take their defaults from here, the same place
`settings.SidecarSettings` takes them from. Free of imports on purpose.
"""

from __future__ import annotations

ENV_PREFIX = "ENTITLEMENT_"

DEFAULT_PORT = 9841
DEFAULT_STATUS_DIR = "/var/run/entitlement"
DEFAULT_PUBLIC_KEYS = "/etc/entitlement-sidecar/keys"
DEFAULT_PUBLIC_KEY_VERSION = 1
DEFAULT_STARTUP_TIMEOUT = 1800.0
DEFAULT_BACKOFF_INITIAL = 1.0
DEFAULT_BACKOFF_MAX = 10.0
DEFAULT_HERD_SIZE = 1

STATUS_FILE = "status.json"
TOKEN_FILE = "token.jwt"  # noqa: S105 - a file name, not a secret
STATUS_VERSION = 1

# Exit codes (README "Endpoints and exit codes", docs/design.md).
# (0 and 2, shared by every command, live in `errors`.)
EXIT_DENIED = 1
EXIT_UNAVAILABLE = 3

# status.json `state` values.
PENDING = "pending"
ENTITLED = "entitled"
DENIED = "denied"
UNAVAILABLE = "unavailable"
STATES = (PENDING, ENTITLED, DENIED, UNAVAILABLE)

# Usage the app reports (ENTITLEMENT_USAGE_*; intake is on when USAGE_DIMENSIONS is set).
DEFAULT_USAGE_PORT = 9843
DEFAULT_USAGE_JOURNAL_BYTES = 4 * 1024 * 1024
MIN_USAGE_JOURNAL_BYTES = 64 * 1024
MAX_USAGE_JOURNAL_BYTES = 256 * 1024 * 1024
DEFAULT_USAGE_SEND_JITTER = 300.0
MAX_USAGE_SEND_JITTER = 900.0
DEFAULT_USAGE_SHUTDOWN_TIMEOUT = 20.0
MAX_USAGE_SHUTDOWN_TIMEOUT = 600.0
