"""Quantities in exact micro-units and UTC hours as epoch seconds: the arithmetic of usage.

AWS takes `UsageQuantityAsDecimal` with at most 6 decimals and 10 integer digits
(`aws/rules.py`), so every quantity is held as an integer count of millionths: sums are exact
without importing `decimal` into the process that stays up in every pod. Hours are the epoch
second they start at; the record of hour H carries the timestamp of its last second (AWS rounds
down to the hour), or the moment it was sealed when a shutdown seals it early. Pure and
dependency-free.
"""

from __future__ import annotations

import re
import time

from entitlement_sidecar.aws import rules

HOUR = 3600
MICRO: int = 10**rules.QUANTITY_DECIMALS
# The largest quantity AWS accepts: 10 integer digits and 6 decimals.
MAX_UNITS = 10**10 * MICRO - 1
_QUANTITY = re.compile(rules.QUANTITY_DECIMAL)


def parse_quantity(text: str) -> int | None:
    """`text` (AWS's decimal form, e.g. `12.5`) in micro-units, or None when it is not one."""
    if not _QUANTITY.fullmatch(text):
        return None
    whole, _, fraction = text.partition(".")
    return int(whole) * MICRO + int(fraction.ljust(rules.QUANTITY_DECIMALS, "0") or "0")


def format_quantity(units: int) -> str:
    """Micro-units as AWS's decimal string: no exponent, no trailing zeros (`12.5`, `3`)."""
    whole, fraction = divmod(units, MICRO)
    if not fraction:
        return str(whole)
    return f"{whole}.{fraction:06d}".rstrip("0")


def hour_of(moment: float) -> int:
    """The start (epoch seconds) of the UTC hour holding `moment`."""
    return int(moment // HOUR) * HOUR


def record_timestamp(hour: int, sealed_at: float) -> int:
    """The MeterUsage timestamp of `hour` sealed at `sealed_at`: its last second, or earlier.

    A completed hour is stamped with its last second (never before any usage it reports); an
    hour sealed early (at shutdown) with the sealing second, so the timestamp is never in the
    future. Both round down to `hour` at AWS.
    """
    return max(hour, min(hour + HOUR - 1, int(sealed_at)))


def iso(moment: float) -> str:
    """RFC 3339 UTC to the second (`2026-01-02T03:00:00Z`)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))
