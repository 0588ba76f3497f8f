"""`entitlement-sidecar register`: the start gate once, written to the status directory.

RegisterUsage (verified PS256 token), or with `ENTITLEMENT_PRODUCT_SKU` License Manager's
CheckoutLicense (`sidecar/license/gate.py`). For init containers and ECS `essential: false`
containers, and run by `run` as its short-lived child (with `--child`: `run` already wrote the
pending status). Every ending is one documented exit code: 0 entitled, 1 denied (a permanent
answer), 2 invalid configuration or usage (one line naming the variable), 3 transient failures
until `ENTITLEMENT_STARTUP_TIMEOUT` ran out (or an unexpected error, status `RegistrationFailed`),
130 / 143 interrupted by SIGINT / SIGTERM (one line; a status still pending becomes
`unavailable`, `Interrupted`).
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

from entitlement_sidecar.errors import EXIT_CONFIG, EXIT_OK
from entitlement_sidecar.sidecar.commands.common import run_work

if TYPE_CHECKING:
    from entitlement_sidecar.sidecar.settings import SidecarSettings

STARTED = time.monotonic()  # the process's start, near enough: the herd's window counts from it

USAGE = """usage: entitlement-sidecar register

Call RegisterUsage once (retrying transient failures until ENTITLEMENT_STARTUP_TIMEOUT), verify the
signed token and write status.json / token.jwt to ENTITLEMENT_STATUS_DIR. With
ENTITLEMENT_PRODUCT_SKU: check a License Manager license out instead (also entitlements.json).
exit codes: 0 entitled, 1 denied, 2 invalid configuration, 3 transient failures until the timeout,
130/143 interrupted (SIGINT/SIGTERM)"""
LOGGER = "entitlement_sidecar.register"


def main(argv: list[str]) -> int:
    child = False
    for arg in argv:
        if arg in {"-h", "--help"}:
            print(USAGE)
            return EXIT_OK
        if arg == "--child":
            child = True
        else:
            print(f"entitlement-sidecar register: unknown argument {arg!r}", file=sys.stderr)
            return EXIT_CONFIG
    return run_work(_gate if child else _one_shot, child=child, logger=LOGGER)


def _one_shot(settings: SidecarSettings) -> int:
    """`register` on its own (an init container): nothing will extend or return a floating seat."""
    floating = settings.license_checkout == "provisional"
    if settings.product_sku is not None and settings.wants.consuming and floating:
        import logging

        logging.getLogger(LOGGER).warning(
            "a one-shot register holds a floating seat nobody extends or returns: it goes "
            "back to the pool after its time-to-live; use `run` for floating seats"
        )
    return _gate(settings)


def _gate(settings: SidecarSettings) -> int:
    if settings.product_sku is not None:  # contract pricing: License Manager
        from entitlement_sidecar.sidecar.license.gate import gate

        return gate(settings, os.environ)
    from entitlement_sidecar.sidecar.registration import register

    return register(settings, os.environ, started=STARTED)
