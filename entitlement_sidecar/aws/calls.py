"""One botocore call in, our error tree out: the translation every AWS boundary module shares.

`aws/metering.py` and `aws/license_manager.py` wrap each client call in `call()`, so nothing above
them ever sees a `ClientError`: an AWS error code (or a failure below HTTP) becomes a
`TransientError` or `PermanentError` by `errors.classify`, with the modeled members of the error
body (License Manager's `RedirectException` carries a `Location`) kept in `details`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    CredentialRetrievalError,
    HTTPClientError,
)

from entitlement_sidecar import __version__
from entitlement_sidecar.errors import classify

# Keys botocore puts beside the modeled members of an error response.
_ENVELOPE = frozenset({"Error", "ResponseMetadata", "Message", "message"})


def fail_fast_config(
    region: str, connect_timeout: float, read_timeout: float, **extra: Any
) -> Config:
    """A client config for `region` that fails fast: one attempt (we retry with our own budget)."""
    return Config(
        region_name=region,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"total_max_attempts": 1, "mode": "standard"},
        user_agent_extra=f"entitlement-sidecar/{__version__}",
        **extra,
    )


def call(operation: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any]:
    """Run one botocore call, translating every failure into our error tree."""
    try:
        return operation()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(error.get("Code") or "")
        if not code or code.isdigit():
            code = f"HTTP{status}" if status else "HttpError"
        message = str(error.get("Message") or "")
        failure = classify(code, status)(code, message, http_status=status)
        failure.details = {k: v for k, v in exc.response.items() if k not in _ENVELOPE}
        raise failure from exc
    except (HTTPClientError, ConnectionError) as exc:
        raise classify("NetworkError")("NetworkError", str(exc)) from exc
    except CredentialRetrievalError as exc:
        # The ECS agent or STS may not be reachable yet at task start: worth another try.
        raise classify("NetworkError")("CredentialsUnavailable", str(exc)) from exc
    except BotoCoreError as exc:
        # NoCredentialsError, PartialCredentialsError, ParamValidationError, ...: will not heal.
        raise classify(type(exc).__name__)(type(exc).__name__, str(exc)) from exc
    except OSError as exc:
        # A local credential source botocore reads itself (the IRSA token file) is unreadable.
        raise classify("CredentialsUnreadable")("CredentialsUnreadable", str(exc)) from exc
