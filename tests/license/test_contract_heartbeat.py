"""The heartbeat: expiry and downgrade under `lock` and `report`, outages, seat extension."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from entitlement_sidecar.emulator import Emulator
from tests.sidecar.conftest import RunningSidecar

from .conftest import (
    SEATS,
    TIERS,
    Pods,
    check,
    seat_license,
    seats_in_use,
    status_of,
    tier_license,
    wait_for,
)

Make = Callable[[Emulator], Pods]
BEAT = {"ENTITLEMENT_LICENSE_HEARTBEAT_SECONDS": "1"}
GOOD: dict[str, Any] = {"licenses": [tier_license("basic", "pro"), seat_license(seats=2)]}
EXPIRED: dict[str, Any] = {
    "licenses": [
        tier_license("basic", "pro", status="EXPIRED"),
        seat_license(seats=2, status="EXPIRED"),
    ]
}


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(GOOD) as emu:
        yield emu


def entitlements(pod: RunningSidecar) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (Path(pod.env["ENTITLEMENT_STATUS_DIR"]) / "entitlements.json").read_text()
    )
    return loaded


def serves(pod: RunningSidecar) -> bool:
    return pod.get("/readyz")[0] == 200


def lost(doc: dict[str, Any]) -> bool:
    return doc.get("state") == "denied" and doc["license"].get("lost_at") is not None


def test_expiry_under_lock_and_report(emu: Emulator, pods: Make) -> None:
    """Expired: both pods say denied LicenseExpired and grant nothing; `report` stays ready,
    `lock` stays ready for the grace period, then 503; a renewal lifts both."""
    group = pods(emu)
    report = group.start("report", TIERS, "basic,pro", ENTITLEMENT_LICENSE_POLICY="report", **BEAT)
    lock = group.start(
        "lock", TIERS, "basic,pro", ENTITLEMENT_LICENSE_POLICY="lock",
        ENTITLEMENT_LICENSE_GRACE_SECONDS="3", **BEAT,
    )  # fmt: skip
    report.wait_ready()
    lock.wait_ready()
    emu.set_scenario(EXPIRED)
    for pod in (report, lock):
        doc = pod.wait_state("denied", where=lost)
        assert (doc["reason"], doc["license"]["result"]) == ("LicenseExpired", "lost")
        assert entitlements(pod) == {}
        assert check(pod, "--entitlement", "pro") == 1
    assert status_of(report)["license"]["lock_at"] is None
    assert report.get("/readyz")[0] == 200
    assert check(report) == 0  # the ECS health check agrees with /readyz
    assert lock.get("/readyz")[0] == 200  # inside the grace period
    wait_for(lambda: lock.get("/readyz")[0] == 503, timeout=20, what="lock after the grace")
    assert check(lock) == 1
    assert "entitlement_sidecar_license_lost 1" in lock.get("/metrics")[1]
    emu.set_scenario(GOOD)
    for pod in (report, lock):
        pod.wait_state("entitled")
        wait_for(partial(serves, pod), what="ready again after renewal")
        assert entitlements(pod) == {"basic": True, "pro": True}


def test_a_downgrade_out_of_the_configured_tiers_is_a_loss(emu: Emulator, pods: Make) -> None:
    """pro -> basic keeps serving (tier basic); a tier not configured: EntitlementNotInLicense."""
    pod = pods(emu).start("tiers", TIERS, "basic,pro", **BEAT)
    pod.wait_ready()
    emu.set_scenario({"licenses": [tier_license("basic"), seat_license(seats=2)]})
    pod.wait_state("entitled", where=lambda d: d["license"]["tier"] == "basic")
    assert entitlements(pod) == {"basic": True}
    emu.set_scenario({"licenses": [tier_license("gold"), seat_license(seats=2)]})
    doc = pod.wait_state("denied", where=lost)
    assert doc["reason"] == "EntitlementNotInLicense"


def test_fewer_units_than_a_pod_needs_is_a_loss(emu: Emulator, pods: Make) -> None:
    """A pool cut below what one pod checks out (GetLicense MaxCount) is a definitive loss."""
    pod = pods(emu).start("units", SEATS, "seats=2", **BEAT)
    pod.wait_ready()
    emu.set_scenario({"licenses": [tier_license("basic", "pro"), seat_license(seats=1)]})
    assert pod.wait_state("denied", where=lost)["reason"] == "EntitlementNotInLicense"


def test_outages_never_change_readiness_and_turn_stale_after_the_grace(
    emu: Emulator, pods: Make
) -> None:
    """Server faults at every heartbeat: ready, entitlements kept, `unverified`, then stale."""
    pod = pods(emu).start(
        "outage", TIERS, "basic,pro", ENTITLEMENT_LICENSE_GRACE_SECONDS="2", **BEAT
    )
    pod.wait_ready()
    emu.set_scenario({**GOOD, "faults": [{"op": "CheckoutLicense", "kind": "internal_error"}]})
    doc = pod.wait_state("entitled", where=lambda d: d["license"]["result"] == "unverified")
    assert doc["license"]["reason"] == "ServerInternalException"
    assert entitlements(pod) == {"basic": True, "pro": True}
    pod.wait_state("entitled", where=lambda d: d["license"]["stale"] is True, timeout=30)
    assert pod.get("/readyz")[0] == 200
    assert "entitlement_sidecar_license_stale 1" in pod.get("/metrics")[1]
    emu.set_scenario(GOOD)
    pod.wait_state("entitled", where=lambda d: d["license"]["result"] == "ok")


def test_the_heartbeat_extends_the_seat_and_never_takes_another(emu: Emulator, pods: Make) -> None:
    """A seat living 12 s outlives its first TTL by extensions; one seat is held throughout."""
    emu.set_scenario({"licenses": [seat_license(seats=2, provisional_ttl_minutes=0.2)]})
    pod = pods(emu).start("extended", SEATS, "seats=1", **BEAT)
    pod.wait_ready()
    [first] = emu.licenses()[-1]["consumptions"]
    time.sleep(15)  # past the first expiry
    [now] = emu.licenses()[-1]["consumptions"]
    assert now["token"] == first["token"]
    assert now["expiration"] > first["expiration"]
    assert emu.records()["requests"]["ExtendLicenseConsumption"] >= 2
    assert seats_in_use(emu) == 1
    assert status_of(pod)["license"]["seat_held"] is True


def test_a_seat_lost_in_an_outage_is_taken_back_or_lost(emu: Emulator, pods: Make) -> None:
    """Past its TTL the seat is gone: the heartbeat checks a new one out if one is free; when
    another pod took it meanwhile, the pod has lost its seat (SeatsInUse) and waits."""
    group = pods(emu)
    pod = group.start("outage-seat", SEATS, "seats=1", ENTITLEMENT_LICENSE_HEARTBEAT_SECONDS="3")
    pod.wait_ready()
    before = emu.licenses()[-1]["consumptions"][0]["token"]
    emu.set_scenario({**GOOD, "clock_offset_seconds": 2 * 3600})  # the seat's hour passes
    pod.wait_state("entitled", where=lambda d: d["license"]["checks"].get("ok", 0) >= 2)
    after = [c["token"] for c in emu.licenses()[-1]["consumptions"]]
    assert after != [before]
    assert len(after) == 1
    emu.set_scenario({**GOOD, "clock_offset_seconds": 4 * 3600})
    thieves = [group.start(f"thief-{n}", SEATS, "seats=1") for n in range(2)]
    for thief in thieves:
        thief.wait_ready()
    doc = pod.wait_state("denied", where=lost)
    assert (doc["reason"], doc["license"]["seat_held"]) == ("SeatsInUse", False)
    assert seats_in_use(emu) == 2
