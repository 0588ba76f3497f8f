"""Logging setup: JSON lines by default (one object per line, for log pipelines), or plain text.

Configured once, from a command's `main()`; modules only call `logging.getLogger(__name__)`.
Lines are built by `logline`, like those of the processes that may not import `logging` (`run`'s
parent, configuration errors), so every line has the same keys, time format and text layout.
Secrets (tokens, credentials) are never logged: log `fingerprint(secret)` instead, a short hash
that lets an operator match two log lines without learning the value.
"""

from __future__ import annotations

import hashlib
import logging
import sys

from entitlement_sidecar import logline

LEVELS = tuple(logline.LEVELS)
FORMATS = logline.FORMATS

# Attributes every LogRecord has; anything else was passed with `extra=` and is emitted as a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


class LineFormatter(logging.Formatter):
    """A record as one `logline` line: time, level, logger, message, and any `extra=` fields."""

    def __init__(self, fmt: str = "json") -> None:
        super().__init__()
        self.line_format = fmt

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            key: value
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        }
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return logline.line(
            self.line_format,
            record.levelname,
            record.name,
            record.getMessage(),
            fields,
            now=record.created,
        )


def setup(level: str = "INFO", fmt: str = "json") -> None:
    """Send records at `level` and above to stderr, formatted as `fmt` ("json" or "text")."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LineFormatter("text" if fmt == "text" else "json"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter at INFO (botocore credential discovery, kopf internals) stays out.
    for noisy in ("botocore", "boto3", "urllib3", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible name for `secret`, safe to log."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]
