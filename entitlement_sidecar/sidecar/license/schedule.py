"""The `run` parent's License Manager duties: which short-lived child to start, and when.

After the start gate (`register --child`): entitled, the heartbeat (`license heartbeat --child`)
runs every heartbeat period, earlier when the held seat would otherwise expire (a seat lives 60
minutes unless extended) or when a lost license's lock time comes; refused because every seat is
taken, the gate runs again after the wait period (jittered, so waiting pods do not stampede);
refused otherwise or out of retry budget, again after a heartbeat period. At SIGTERM the parent
starts `license checkin --child` to return the seat. Lean: os and time only (this runs in the
process that stays up in every pod); the children do the AWS work.
"""

from __future__ import annotations

import os

from entitlement_sidecar.sidecar.license.readiness import epoch, license_of, serving

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

GATE = ("register", "--child")
HEARTBEAT = ("license", "heartbeat", "--child")
CHECKIN = ("license", "checkin", "--child")
EXTEND_MARGIN = 300.0  # run the heartbeat this long before a held seat expires
SEATS_IN_USE = "SeatsInUse"


def extend_margin(expiration: float, checked: float) -> float:
    """How long before a held seat expires it is extended: 5 minutes, or a quarter of its life."""
    return max(1.0, min(EXTEND_MARGIN, (expiration - checked) / 4))


def jitter(seconds: float) -> float:
    """`seconds` times a random factor in [0.5, 1.5) (os.urandom: no `random` import)."""
    return seconds * (0.5 + int.from_bytes(os.urandom(2), "big") / 65536)


class LicenseLoop:
    """When the next child runs, and whether the pod is ready, in License Manager mode."""

    CHECKIN = CHECKIN

    def __init__(
        self, heartbeat: float, wait: float, checkin: float, spawn: Callable[[tuple[str, ...]], int]
    ) -> None:
        self.heartbeat = heartbeat
        self.wait = wait
        self.checkin = checkin
        self.spawn = spawn
        self.gate_ok = False  # this container's start gate has entitled the pod once
        self.next_at: float | None = None
        self.next_args: tuple[str, ...] = GATE

    def exited(
        self, args: tuple[str, ...], code: int, doc: Mapping[str, Any] | None, now: float
    ) -> None:
        """A child ended: plan the next one."""
        if args == GATE:
            if code == 0:
                self.gate_ok = True
            else:
                reason = doc.get("reason") if doc else None
                delay = jitter(self.wait) if reason == SEATS_IN_USE else self.heartbeat
                self.plan(GATE, now + delay)
                return
        if self.gate_ok:
            self.plan(HEARTBEAT, self.next_check(doc, now))

    def plan(self, args: tuple[str, ...], at: float) -> None:
        self.next_args, self.next_at = args, at

    def next_check(self, doc: Mapping[str, Any] | None, now: float) -> float:
        """The earliest of: a period after the last check, before the seat expires, the lock."""
        block = license_of(doc)
        checked = epoch(block.get("checked_at")) or now
        candidates = [checked + self.heartbeat]
        if block.get("reason") == SEATS_IN_USE:
            candidates.append(now + jitter(self.wait))
        expiration = epoch(block.get("expiration"))
        if block.get("seat_held") and expiration is not None:
            candidates.append(expiration - extend_margin(expiration, checked))
        lock_at = epoch(block.get("lock_at"))
        if lock_at is not None and lock_at > now:
            candidates.append(lock_at)
        return max(now + 1.0, min(candidates))

    def due(self, now: float) -> tuple[str, ...] | None:
        """The child to start now, if its time has come."""
        if self.next_at is None or now < self.next_at:
            return None
        self.next_at = None
        return self.next_args

    def until_due(self, now: float) -> float | None:
        return None if self.next_at is None else max(0.0, self.next_at - now)

    def ready(self, doc: Mapping[str, Any] | None, now: float) -> bool:
        return self.gate_ok and serving(doc, now)[0]
