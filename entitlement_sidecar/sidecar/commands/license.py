"""`entitlement-sidecar license heartbeat|checkin`: the License Manager children of `run`.

`run` starts `license heartbeat --child` every heartbeat period (and before a held seat
expires) and `license checkin --child` when it is told to stop. Both work outside `run` too:
`license checkin` returns the seat from a preStop hook or by hand. Exit codes: heartbeat 0 (still
serving), 1 (license lost); checkin 0 (nothing held any more), 3 (AWS could not be told: the
seat returns after its time-to-live); both 2 on invalid configuration.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from entitlement_sidecar.errors import EXIT_CONFIG, EXIT_OK, ConfigurationError
from entitlement_sidecar.sidecar.commands.common import run_work

if TYPE_CHECKING:
    from entitlement_sidecar.sidecar.settings import SidecarSettings

PRODUCT_SKU = "ENTITLEMENT_PRODUCT_SKU"

USAGE = """usage: entitlement-sidecar license heartbeat|checkin [--child]

heartbeat  re-check the license without taking a seat, extend the held seat, update the status
checkin    return this pod's floating seat (CheckInLicense)
License Manager mode only (ENTITLEMENT_PRODUCT_SKU); run starts both by itself."""


def _heartbeat(settings: SidecarSettings) -> int:
    from entitlement_sidecar.sidecar.license.heartbeat import heartbeat

    return heartbeat(_contract(settings), os.environ)


def _checkin(settings: SidecarSettings) -> int:
    from entitlement_sidecar.sidecar.license.checkin import checkin

    return checkin(_contract(settings), os.environ)


def _contract(settings: SidecarSettings) -> SidecarSettings:
    if settings.product_sku is None:
        variable = PRODUCT_SKU
        raise ConfigurationError(
            f"{variable} is not set: not a License Manager product", variable=variable
        )
    return settings


LOGGER = "entitlement_sidecar.license"
WORK = {"heartbeat": _heartbeat, "checkin": _checkin}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(USAGE)
        return EXIT_OK if argv else EXIT_CONFIG
    work = WORK.get(argv[0])
    extra = [arg for arg in argv[1:] if arg != "--child"]
    if work is None or extra:
        print(f"entitlement-sidecar license: unknown arguments {argv!r}", file=sys.stderr)
        print(USAGE, file=sys.stderr)
        return EXIT_CONFIG
    return run_work(work, child="--child" in argv[1:], logger=LOGGER)
