"""`seat.json`: the License Manager consumption this pod holds, private to the sidecar.

Written ahead of every consuming checkout (the ClientToken first, so a checkout whose answer was
lost is replayed under the same token instead of taking a second seat), then with the consumption
token once AWS answered. A restarted sidecar container finds it on the pod's status volume and
re-uses its own seat (ExtendLicenseConsumption) instead of checking out another; the SIGTERM
check-in reads it to return the seat. Mode 0600 and never served on `/status`: the consumption
token lets its holder return or extend the seat. Bound to the instance and SKU it was taken for.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from entitlement_sidecar.atomic import write_atomic
from entitlement_sidecar.sidecar.defaults import SEAT_FILE

VERSION = 1
PENDING = "pending"  # a checkout under `client_token` may be in flight
HELD = "held"  # `consumption_token` holds the units in `entitlements`
RETURNED = "returned"  # checked in (or found gone): nothing held
MAX_BYTES = 65536


def new_client_token() -> str:
    """64 hex characters: valid under both of AWS's documented ClientToken rules."""
    return secrets.token_hex(32)


@dataclass
class Seat:
    """One consumption of this instance, as `seat.json` records it."""

    instance: str
    sku: str
    region: str
    client_token: str
    checkout_type: str
    state: str = PENDING
    consumption_token: str | None = None
    license_arn: str | None = None
    expiration: str | None = None
    entitlements: dict[str, int | bool] = field(default_factory=dict)
    consuming: bool = True

    def owned_by(self, instance: str, sku: str) -> bool:
        return self.instance == instance and self.sku == sku

    @property
    def held(self) -> bool:
        return self.state == HELD and bool(self.consumption_token)


def path(status_dir: str) -> Path:
    return Path(status_dir) / SEAT_FILE


def write(status_dir: str, seat: Seat) -> None:
    body = json.dumps({"version": VERSION, **asdict(seat)}, indent=2, sort_keys=True) + "\n"
    write_atomic(path(status_dir), body.encode("utf-8"), mode=0o600)


def read(status_dir: str) -> Seat | None:
    """The recorded seat, or None when there is none or it cannot be read as one."""
    try:
        raw = path(status_dir).read_bytes()[:MAX_BYTES]
        doc: Any = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.pop("version", None) != VERSION:
        return None
    try:
        seat = Seat(**doc)
    except TypeError:
        return None
    strings = (seat.instance, seat.sku, seat.region, seat.client_token, seat.checkout_type)
    if not all(isinstance(value, str) and value for value in strings):
        return None
    if not isinstance(seat.entitlements, dict):
        return None
    return seat


def remove(status_dir: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path(status_dir))
