"""The contract-pricing part of `make demo`: License Manager on the same embedded emulator.

Three stories, each with real `entitlement-sidecar run` processes in License Manager mode
(`ENTITLEMENT_PRODUCT_SKU`): a tiered license (the tier granted, `entitlements.json`,
`check --entitlement`); a 2-seat floating license where a third pod waits and takes the seat a
stopped pod returns (never more than two held); and a license that expires under both policies
(`report` stays ready, `lock` goes unready once its grace period ran out). Every pod is stopped at
the end and every seat is back in the pool.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from entitlement_sidecar.emulator import Emulator

LICENSES: list[dict[str, Any]] = [
    {"sku": "prod-tiers", "entitlements": [{"name": "basic"}, {"name": "pro"}]},
    {"sku": "prod-seats", "entitlements": [{"name": "seats", "unit": "Count", "max_count": 2}]},
    {"sku": "prod-expiring", "entitlements": [{"name": "pro"}]},
]
FAST = {  # the demo's pace: a heartbeat every second, a waiting pod retries every second
    "ENTITLEMENT_LICENSE_WAIT_SECONDS": "1",
    "ENTITLEMENT_LICENSE_HEARTBEAT_SECONDS": "1",
}


class ContractStoryFailed(Exception):
    """A contract step did not behave as narrated."""


def seats_in_use(emu: Emulator, sku: str = "prod-seats") -> int:
    return sum(int(lic["seats_in_use"]) for lic in emu.licenses() if lic["sku"] == sku)


def until(condition: Callable[[], bool], what: str, timeout: float = 20) -> float:
    """Seconds until `condition` held (polling every 20 ms); fails after `timeout`."""
    begun = time.monotonic()
    while not condition():
        if time.monotonic() - begun > timeout:
            raise ContractStoryFailed(what)
        time.sleep(0.02)
    return time.monotonic() - begun


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise ContractStoryFailed(what)


def contract_story(
    start: Callable[..., Any], emu: Emulator, scenario: dict[str, Any], say: Any
) -> None:
    """Steps 6-8. `start(name, product, **env)` starts one `run` pod (the demo's `Pod`)."""
    emu.set_scenario({**scenario, "licenses": LICENSES})
    pods: list[Any] = []

    def pod(name: str, sku: str, entitlements: str, **extra: str) -> Any:
        env = {"ENTITLEMENT_PRODUCT_SKU": sku, "ENTITLEMENT_LICENSE_ENTITLEMENTS": entitlements}
        started = start(name, None, **env, **FAST, **extra)
        pods.append(started)
        return started

    try:
        expiring = _expiring(pod)  # started first, so they are ready by step 8
        _tiers(pod, say)
        _seats(pod, emu, say)
        _expiry(expiring, emu, scenario, say)
    finally:
        codes = [each.stop() for each in pods]
    _expect(codes == [0] * len(pods), f"SIGTERM should exit 0, got {codes}")
    _expect(seats_in_use(emu) == 0, "every seat should be back in the pool")
    say(
        f"   SIGTERM to the {len(pods)} contract pods -> exit codes {codes}; seats in use "
        f"{seats_in_use(emu)}/2 (each returned its seat)"
    )


def _tiers(pod: Callable[..., Any], say: Any) -> None:
    say("\n6. Contract pricing, tiered: ENTITLEMENT_LICENSE_ENTITLEMENTS=basic,pro,enterprise")
    tiers = pod("contract-tiers", "prod-tiers", "basic,pro,enterprise")
    tiers.wait_ready()
    doc = tiers.wait_state("entitled")
    granted = json.loads((tiers.status_dir / "entitlements.json").read_text())
    say(
        f"   CheckoutLicense (AWS Marketplace issuer fingerprint pinned) -> tier "
        f"{doc['license']['tier']}; entitlements.json {json.dumps(granted, sort_keys=True)}"
    )
    for name, expected in (("pro", 0), ("enterprise", 1)):
        code, out = tiers.check("--entitlement", name)
        _expect(code == expected, f"check --entitlement {name} should exit {expected}: {out}")
        say(f"   $ entitlement-sidecar check --entitlement {name:<10} -> exit {code}")


def _seats(pod: Callable[..., Any], emu: Emulator, say: Any) -> None:
    say("\n7. A 2-seat floating license and three pods (ENTITLEMENT_LICENSE_ENTITLEMENTS=seats=1)")
    first = pod("seat-a", "prod-seats", "seats=1")
    second = pod("seat-b", "prod-seats", "seats=1")
    first.wait_ready()
    second.wait_ready()
    third = pod("seat-c", "prod-seats", "seats=1")
    waiting = third.wait_state("denied")
    _expect(waiting["reason"] == "SeatsInUse", f"seat-c should wait, got {waiting['reason']}")
    say(f"   seat-a and seat-b ready; seats in use {seats_in_use(emu)}/2")
    say(f"   seat-c: /readyz {third.get('/readyz')[0]}, reason SeatsInUse; it retries every second")
    code = first.stop()
    say(f"   SIGTERM seat-a (exit {code}): CheckInLicense returns its seat")
    took = until(lambda: third.get("/readyz")[0] == 200, "seat-c never got the returned seat")
    held = seats_in_use(emu)
    _expect(held == 2, f"two seats should be held, saw {held}")
    say(f"   seat-c took the returned seat {took:.1f} s later; seats in use {held}/2")


def _expiring(pod: Callable[..., Any]) -> tuple[Any, Any]:
    """Two pods on the license step 8 lets expire: policy `report`, and `lock` with a 1 s grace."""
    report = pod("expiry-report", "prod-expiring", "pro", ENTITLEMENT_LICENSE_POLICY="report")
    lock = pod(
        "expiry-lock",
        "prod-expiring",
        "pro",
        ENTITLEMENT_LICENSE_POLICY="lock",
        ENTITLEMENT_LICENSE_GRACE_SECONDS="1",
    )
    return report, lock


def _expiry(expiring: tuple[Any, Any], emu: Emulator, scenario: dict[str, Any], say: Any) -> None:
    say("\n8. The license expires: policy report vs policy lock (grace 1 s)")
    report, lock = expiring
    report.wait_ready()
    lock.wait_ready()
    expired = [
        {**lic, "status": "EXPIRED"} if lic["sku"] == "prod-expiring" else lic for lic in LICENSES
    ]
    emu.set_scenario({**scenario, "licenses": expired})
    say("   the buyer's license is now EXPIRED; the next heartbeat (every second here) sees it")
    for each in (report, lock):
        doc = each.wait_state("denied")
        say(f"   {each.name}: state denied, reason {doc['reason']}")
    _expect(report.get("/readyz")[0] == 200, "the report policy keeps the pod ready")
    say("   expiry-report: /readyz 200 (stays ready; status and metrics say the license is lost)")
    took = until(lambda: lock.get("/readyz")[0] == 503, "expiry-lock never locked")
    say(f"   expiry-lock: /readyz 503 {took:.1f} s later, when its grace period ran out")
    for each in (report, lock):
        granted = json.loads((each.status_dir / "entitlements.json").read_text())
        _expect(granted == {}, f"{each.name}: a lost license grants nothing, saw {granted}")
    say("   both: entitlements.json is {}, so the app can degrade at once")
