"""Constants shared by every sidecar process: defaults, file names, states and exit codes.

`run` stays alive in every pod and `check` runs as an exec probe every few seconds; they read the
few values they need with `envlite` and take their defaults from here, the same place
`settings.SidecarSettings` takes them from. Imports nothing but `aws/rules.py` (itself
import-free) on purpose.
"""

from __future__ import annotations

from entitlement_sidecar.aws import rules

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
ENTITLEMENTS_FILE = "entitlements.json"
SEAT_FILE = "seat.json"  # the held License Manager consumption (sidecar-private, mode 0600)

# status.json `mode`: which AWS API enforces this product.
MODE_REGISTER_USAGE = "register-usage"
MODE_LICENSE_MANAGER = "license-manager"

# License Manager mode (README "Contract pricing"); the parent `run` reads these with `envlite`.
DEFAULT_LICENSE_HEARTBEAT = rules.LICENSE_CHECK_SECONDS
DEFAULT_ANYWHERE_HEARTBEAT = rules.ANYWHERE_CHECK_SECONDS
MAX_LICENSE_HEARTBEAT = rules.ANYWHERE_CHECK_SECONDS
DEFAULT_LICENSE_GRACE = 3600.0
DEFAULT_LICENSE_WAIT = 30  # while every seat is in use, try again this often (jittered)
DEFAULT_LICENSE_CHECKIN = 10  # seconds a seat check-in may take at SIGTERM
POLICY_LOCK = "lock"
POLICY_REPORT = "report"
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
