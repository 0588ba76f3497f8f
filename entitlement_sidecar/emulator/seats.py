"""What the emulated License Manager remembers between requests: seats, drawdown, tokens, sessions.

A checkout creates a `Consumption`. A provisional one holds its counted units until it is checked
in or its time-to-live passes (it is then simply no longer live: no sweeper thread); a perpetual
one draws its units down for good. Client tokens make a checkout idempotent per account; access
tokens (GetAccessToken) and STS sessions (AssumeRoleWithWebIdentity) are the Containers Anywhere
flow's memory. One `LicenseBook` lives in the emulator `State`; callers hold `State.lock` for every
read and write. A scenario swap keeps everything that belongs to licenses still present.
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from entitlement_sidecar.emulator.licenses import Placed

DEFAULT_VALIDITY = timedelta(days=365)  # "a year around now" on each side


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with a Z, at whole seconds (the model's ISO8601DateTime)."""
    if moment is None:
        return None
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass
class Consumption:
    """One CheckoutLicense: what it was granted and until when it holds it."""

    token: str
    arn: str
    account: str
    caller: str
    client_token: str
    checkout_type: str
    entitlements: tuple[tuple[str, str, str | None], ...]  # (name, unit, value) as allowed
    issued_at: datetime
    expiration: datetime | None
    node_id: str | None = None
    checked_in: bool = False

    def live(self, now: datetime) -> bool:
        """Still holding what it checked out (not returned, not past its time-to-live)."""
        return not self.checked_in and (self.expiration is None or now < self.expiration)

    def units(self) -> dict[str, int]:
        """Counted units by entitlement name."""
        return {name: int(value or 0) for name, unit, value in self.entitlements if unit == "Count"}

    def to_json(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "caller": self.caller,
            "account": self.account,
            "checkout_type": self.checkout_type,
            "client_token": self.client_token,
            "entitlements": {name: value for name, _unit, value in self.entitlements},
            "node_id": self.node_id,
            "issued_at": iso(self.issued_at),
            "expiration": iso(self.expiration),
        }


@dataclass(frozen=True)
class StsSession:
    """Keys AssumeRoleWithWebIdentity issued: the caller they make, in the role's account."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    account: str
    role_arn: str
    expiration: datetime


@dataclass
class LicenseBook:
    """Seats, drawdown, client tokens, access tokens and sessions (hold `State.lock`)."""

    consumptions: dict[str, Consumption] = field(default_factory=dict)
    drawn: Counter[tuple[str, str]] = field(default_factory=Counter)
    client_tokens: dict[tuple[str, str], tuple[tuple[Any, ...], str]] = field(default_factory=dict)
    access_tokens: dict[str, tuple[str, str, datetime]] = field(default_factory=dict)
    sessions: dict[str, StsSession] = field(default_factory=dict)
    windows: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    checkouts: int = 0

    def clear(self) -> None:
        """Forget everything but the licenses' default validity windows."""
        self.consumptions.clear()
        self.drawn.clear()
        self.client_tokens.clear()
        self.access_tokens.clear()
        self.sessions.clear()
        self.checkouts = 0

    def sync(self, licenses: dict[str, Placed], now: datetime) -> None:
        """After a scenario swap: fix default windows of new licenses, drop vanished ones' state."""
        for arn in licenses:
            self.windows.setdefault(arn, (now - DEFAULT_VALIDITY, now + DEFAULT_VALIDITY))
        for token, consumption in list(self.consumptions.items()):
            if consumption.arn not in licenses:
                del self.consumptions[token]
        for key in [key for key in self.drawn if key[0] not in licenses]:
            del self.drawn[key]

    def window(self, placed: Placed) -> tuple[datetime, datetime]:
        """The license's validity: the scenario's bounds, else the defaults fixed at first sight."""
        begin, end = self.windows.get(placed.arn) or (datetime.min, datetime.max)
        return placed.spec.valid_from or begin, placed.spec.valid_until or end

    def in_use(self, arn: str, name: str, now: datetime) -> int:
        """Units of `name` held now: live provisional checkouts plus perpetual drawdown."""
        held = sum(
            c.units().get(name, 0)
            for c in self.consumptions.values()
            if c.arn == arn and c.checkout_type == "PROVISIONAL" and c.live(now)
        )
        return held + self.drawn[(arn, name)]

    def live(self, arn: str, now: datetime) -> list[Consumption]:
        return [c for c in self.consumptions.values() if c.arn == arn and c.live(now)]

    def add(self, consumption: Consumption) -> None:
        self.consumptions[consumption.token] = consumption
        self.checkouts += 1
        if consumption.checkout_type == "PERPETUAL":
            for name, units in consumption.units().items():
                self.drawn[(consumption.arn, name)] += units

    def new_session(
        self, account: str, role_arn: str, expiration: datetime, akid_prefix: str = "ASIA"
    ) -> StsSession:
        """Mint temporary keys for `role_arn` (they become a caller of `account`)."""
        session = StsSession(
            access_key_id=akid_prefix + secrets.token_hex(8).upper(),
            secret_access_key=secrets.token_urlsafe(30),
            session_token=secrets.token_urlsafe(96),
            account=account,
            role_arn=role_arn,
            expiration=expiration,
        )
        self.sessions[session.access_key_id] = session
        return session

    def snapshot(self, licenses: dict[str, Placed], now: datetime) -> list[dict[str, Any]]:
        """`GET /_emulator/licenses`: each license, its seats in use and live consumptions."""
        out = []
        for arn, placed in licenses.items():
            spec = placed.spec
            begin, end = self.window(placed)
            counted = []
            for item in spec.all_entitlements():
                row: dict[str, Any] = {"name": item.name, "unit": item.unit}
                if item.unit == "Count":
                    in_use = self.in_use(arn, item.name, now)
                    drawn = self.drawn[(arn, item.name)]
                    row.update(max_count=item.max_count, in_use=in_use, drawn_down=drawn)
                counted.append(row)
            live = self.live(arn, now)
            seats = sum(sum(c.units().values()) for c in live if c.checkout_type == "PROVISIONAL")
            out.append(
                {
                    "arn": arn,
                    "sku": spec.sku,
                    "fingerprint": spec.fingerprint,
                    "account": placed.account,
                    "home_region": placed.region,
                    "status": spec.status,
                    "valid_from": iso(begin),
                    "valid_until": iso(end),
                    "provisional_ttl_minutes": spec.provisional_ttl_minutes,
                    "entitlements": counted,
                    "seats_in_use": seats,
                    "consumptions": [c.to_json() for c in live],
                }
            )
        return out
