"""What the seller asks License Manager for, and what an answer grants: pure, table-tested.

`ENTITLEMENT_LICENSE_ENTITLEMENTS` is a comma list: `NAME` for a tier or feature (checked out
with unit `None`; AWS answers which of them the buyer holds) and `NAME=COUNT` for counted units
(unit `Count`, value `COUNT`; all of them or nothing). A checkout grants when at least one listed
tier (if any are listed) and every counted entitlement come back in `EntitlementsAllowed`. The
tier reported is the LAST listed tier granted, so list tiers from lowest to highest. A heartbeat
never consumes: it asks for the tiers, or for the non-consuming `AWS::Marketplace::Usage`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from entitlement_sidecar.aws import rules

Granted = dict[str, int | bool]  # entitlements.json: counted units -> int, tiers -> true
Item = tuple[str, str, str | None]  # (name, unit, value) as CheckoutLicense takes and answers
NONE, COUNT = "None", "Count"
MAX_UNITS = 1_000_000
_NAME = re.compile(rules.ENTITLEMENT_NAME)


@dataclass(frozen=True)
class Wants:
    """The configured entitlements: tiers (unit None) in order, counted units with their count."""

    tiers: tuple[str, ...] = ()
    counted: tuple[tuple[str, int], ...] = ()

    @property
    def consuming(self) -> bool:
        """Whether a checkout takes units from a pool (a seat, or drawdown)."""
        return bool(self.counted)

    def checkout_items(self) -> list[Item]:
        """The start gate's CheckoutLicense entitlements."""
        tiers: list[Item] = [(name, NONE, None) for name in self.tiers]
        return tiers + [(name, COUNT, str(units)) for name, units in self.counted]

    def heartbeat_items(self) -> list[Item]:
        """A re-check that takes no seat: the tiers, else `AWS::Marketplace::Usage`."""
        names = self.tiers or (rules.MARKETPLACE_USAGE_ENTITLEMENT,)
        return [(name, NONE, None) for name in names]

    def granted(self, allowed: Iterable[Item]) -> Granted | None:
        """What `allowed` (EntitlementsAllowed) grants of what we asked for; None: not enough."""
        got: Granted = {}
        for name, unit, value in allowed:
            if unit == COUNT and value is not None and value.isdigit():
                got[name] = int(value)
            elif unit == NONE:
                got[name] = True
        result: Granted = {t: True for t in self.tiers if got.get(t) is True}
        if self.tiers and not result:
            return None
        for name, units in self.counted:
            held = got.get(name)
            if held is True or not isinstance(held, int) or held < units:
                return None
            result[name] = held
        return result

    def still_granted(
        self, allowed: Iterable[Item], held: Mapping[str, int | bool]
    ) -> Granted | None:
        """A heartbeat's answer: the tiers it grants now, plus the counted units we still hold."""
        tiers = Wants(tiers=self.tiers).granted(allowed) if self.tiers else {}
        if tiers is None:
            return None
        if not self.tiers and not any(
            name == rules.MARKETPLACE_USAGE_ENTITLEMENT for name, *_ in allowed
        ):
            return None
        counted = {name: held[name] for name, _units in self.counted if name in held}
        return {**tiers, **counted}

    def tier(self, granted: Mapping[str, int | bool]) -> str | None:
        """The highest granted tier (the last listed one present)."""
        present = [name for name in self.tiers if granted.get(name) is True]
        return present[-1] if present else None

    def describe(self) -> str:
        parts = list(self.tiers) + [f"{name}={units}" for name, units in self.counted]
        return ",".join(parts)


def parse_wants(text: str) -> Wants:
    """`basic,pro,enterprise` / `seats=1` / both; ValueError naming the problem."""
    tiers: list[str] = []
    counted: list[tuple[str, int]] = []
    seen: set[str] = set()
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, count = (part.strip() for part in item.partition("="))
        if not _NAME.fullmatch(name):
            raise ValueError(
                f"entitlement {name!r} must be 1-255 letters, digits and _.:/@+- (its API name)"
            )
        if name in seen:
            raise ValueError(f"entitlement {name!r} is listed twice")
        seen.add(name)
        if not sep:
            tiers.append(name)
            continue
        if not count.isdigit() or not 1 <= int(count) <= MAX_UNITS:
            raise ValueError(
                f"{name}={count}: the count must be a whole number from 1 to {MAX_UNITS}"
            )
        if name == rules.MARKETPLACE_USAGE_ENTITLEMENT:
            raise ValueError(f"{name} is not counted: list it without =COUNT")
        counted.append((name, int(count)))
    if not tiers and not counted:
        raise ValueError("name at least one entitlement (NAME for a tier, NAME=COUNT for units)")
    return Wants(tuple(tiers), tuple(counted))
