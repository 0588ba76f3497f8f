"""One small error tree shared by the sidecar and the operator.

Every failure that crosses a module boundary is one of these, and it carries its retry meaning:
a `TransientError` may succeed if tried again later (throttling, 5xx, network), a `PermanentError`
never will (not entitled, wrong region, bad payload) and must fail closed. The classification
happens once, at the boto3 boundary (`aws/metering.py`, `aws/license_manager.py`), from the AWS
error code; everything above decides by type, never by parsing messages.
"""

from __future__ import annotations

import os
import sys

from entitlement_sidecar import logline

TYPE_CHECKING = False  # keep `typing` out of the exec probe; mypy still reads this block
if TYPE_CHECKING:
    from collections.abc import Mapping

# Exit codes every command shares (each command documents its own others).
EXIT_OK = 0
EXIT_CONFIG = 2  # invalid configuration or usage: one line on stderr naming the variable

# AWS error codes that are worth retrying. Everything else Metering or License Manager answers is
# permanent.
TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "InternalServiceErrorException",
        # License Manager's names for the same two conditions.
        "RateLimitExceededException",
        "ServerInternalException",
        # STS: the identity provider (License Manager's OIDC issuer) could not be reached.
        "IDPCommunicationError",
        # Generic codes botocore may surface for the same conditions.
        "Throttling",
        "ThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        # Ours, for failures below HTTP (connection refused, reset, timeouts, 502/503/504 pages).
        "NetworkError",
        "HttpError",
    }
)


# The codes among them that mean "over the request quota" (a crowd, not an outage).
THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException"}
)


class MarketplaceError(Exception):
    """An AWS call (Metering, License Manager, STS) failed; `code` is AWS's error code (or
    ours), `message` its text."""

    transient: bool = False

    def __init__(self, code: str, message: str = "", *, http_status: int | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.details: dict[str, object] = {}  # modeled members of the error body, if any


class TransientError(MarketplaceError):
    """Worth retrying with backoff: throttling, server errors, network failures, timeouts."""

    transient = True


class PermanentError(MarketplaceError):
    """Never retried: the answer will not change (not entitled, bad configuration, bad payload)."""


class BudgetExhausted(Exception):
    """Transient failures went on until the retry budget ran out; `last` is the final one."""

    def __init__(self, last: TransientError, attempts: int) -> None:
        super().__init__(f"gave up after {attempts} attempts: {last}")
        self.last = last
        self.attempts = attempts


class ConfigurationError(Exception):
    """Our own configuration is invalid; `variable` names the setting at fault (may be empty)."""

    def __init__(self, message: str, *, variable: str = "") -> None:
        super().__init__(message)
        self.variable = variable


def config_exit(
    problem: object,
    logger: str = "entitlement_sidecar",
    environ: Mapping[str, str] | None = None,
    format_variable: str = logline.FORMAT_VARIABLE,
) -> int:
    """Report an invalid configuration in ONE log line on stderr; return `EXIT_CONFIG`.

    The line has the shape of every other log line (`logline`), in the format `format_variable`
    asks for (`json` unless it says `text`), with the variable at fault as a field.
    """
    env = os.environ if environ is None else environ
    variable = getattr(problem, "variable", "")
    text = logline.line(
        logline.chosen_format(env.get(format_variable)),
        "ERROR",
        logger,
        f"invalid configuration: {problem}",
        {"variable": variable} if variable else None,
    )
    try:  # noqa: SIM105 - contextlib would cost the exec probe an import
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
    return EXIT_CONFIG


def classify(code: str, http_status: int | None = None) -> type[MarketplaceError]:
    """The error class for an AWS error `code` (and HTTP status when the code says nothing)."""
    if code in TRANSIENT_CODES:
        return TransientError
    # Server faults and rate limits are transient whatever code names them (an HTML 503 from a
    # load balancer, a proxy's 502 with its own JSON error): the model has no permanent 5xx error.
    if http_status is not None and (http_status >= 500 or http_status == 429):
        return TransientError
    return PermanentError
