"""One log line, the same everywhere: the lean processes, the logging setup, configuration errors.

`run`'s parent, `check` and the configuration-error path must not import `logging`, yet their lines
must look exactly like the registration child's (which uses `logging` through `logs.py`): the
same JSON keys (`time`, `level`, `logger`, `message`, then the fields) with the same RFC 3339 UTC
time (`2026-01-02T03:04:05.678Z`), or the same text layout (`<time> <LEVEL> <logger>: <message>
key=value ...`). Both paths build their lines here. Lean: json and time only.
"""

from __future__ import annotations

import json
import time

FORMATS = ("json", "text")
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
FORMAT_VARIABLE = "ENTITLEMENT_LOG_FORMAT"


def timestamp(now: float | None = None) -> str:
    """RFC 3339 UTC timestamp with milliseconds (`2026-01-02T03:04:05.678Z`)."""
    moment = time.time() if now is None else now
    whole = int(moment)
    millis = int((moment - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def chosen_format(value: str | None) -> str:
    """`text` when `value` says so (any case), else `json` (the default, also for garbage)."""
    return "text" if (value or "").strip().lower() == "text" else "json"


def line(
    fmt: str,
    level: str,
    logger: str,
    message: str,
    fields: dict[str, object] | None = None,
    *,
    now: float | None = None,
) -> str:
    """One log line (no newline) in `fmt`: `json` or `text`."""
    when = timestamp(now)
    fields = fields or {}
    if fmt == "text":
        extra = " ".join(f"{key}={value}" for key, value in fields.items())
        return f"{when} {level} {logger}: {message} {extra}".rstrip()
    document = {"time": when, "level": level, "logger": logger, "message": message, **fields}
    return json.dumps(document, default=str)
