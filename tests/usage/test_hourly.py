"""Hourly sends by a real `run` process on a shifted clock, checked in the emulator's records."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.testing import ShiftedClock

from .conftest import H10, HOUR, SCENARIO, UsageSidecar, billed, iso, wait_for, with_fault

Make = Callable[..., UsageSidecar]
H11 = H10 + HOUR


def test_a_completed_hour_is_sent_once_per_dimension_after_its_seal_delay(
    usage_sidecar: Make, clock: ShiftedClock, emulator: Emulator
) -> None:
    """10:xx usage is one record per dimension, stamped 10:59:59, sent after 11:01, with tags."""
    sidecar = usage_sidecar().start()
    assert sidecar.add("gb", "12.5", "a").status == 202
    assert sidecar.add("jobs", "3", "b", tags={"team": "x"}).status == 202
    assert sidecar.add("jobs", "2", "c").status == 202
    clock.jump_to(H11 + 30)  # hour 10 ended; still open for 60 s (late retries dedupe)
    assert json.loads(sidecar.add("gb", "1", "d").body)["accepted"] == 1
    view = sidecar.view()
    assert [u["state"] for u in view["unsent"]] == ["open"]
    assert view["totals"] == {"gb": "1", "jobs": "0"}
    assert billed(emulator) == {}
    clock.jump_to(H11 + 61)
    wait_for(lambda: len(billed(emulator)) == 2, what="hour 10 sent")
    assert billed(emulator) == {
        (iso(H10), "gb"): Decimal("12.5"),
        (iso(H10), "jobs"): Decimal(5),
    }
    records = {r["dimension"]: r for r in emulator.records()["meter_usage"]}
    assert records["jobs"]["timestamp"] == iso(H11 - 1)
    assert records["jobs"]["allocations"] == [
        {"quantity": "2", "tags": {}},
        {"quantity": "3", "tags": {"team": "x"}},
    ]
    assert records["gb"]["allocations"] == []
    status = wait_for(lambda: (s := sidecar.status())["sends"] and s, what="sends recorded")
    assert status["sends"] == {"gb": {"Sent": 1}, "jobs": {"Sent": 1}}
    assert status["hours_pending"] == 0
    assert sidecar.view()["unsent"] == []
    assert 'entitlement_sidecar_usage_sends_total{dimension="gb",result="Sent"} 1' in (
        sidecar.metrics()
    )
    assert sidecar.stop() == 0
    # SIGTERM sent the partial 11:00 hour too: 1 gb, stamped when it was sealed.
    assert billed(emulator)[(iso(H11), "gb")] == Decimal(1)


def test_sigterm_sends_the_partial_hour_within_the_grace_period(
    usage_sidecar: Make, emulator: Emulator
) -> None:
    """SIGTERM at 10:30: the intake closes, 10:00 is sealed and sent at once, exit 0."""
    sidecar = usage_sidecar().start()
    assert sidecar.add("gb", "0.000001").status == 202
    assert sidecar.add("gb", "9999").status == 202
    assert sidecar.stop() == 0
    assert billed(emulator) == {(iso(H10), "gb"): Decimal("9999.000001")}
    assert emulator.records()["meter_usage"][0]["timestamp"].startswith("2026-03-02T10:30:")


def test_throttling_is_retried_inside_the_round(
    usage_sidecar: Make, clock: ShiftedClock, emulator: Emulator
) -> None:
    """Two ThrottlingExceptions, then the record: one record, Transient counted twice."""
    with_fault(emulator, kind="throttle", count=2)
    sidecar = usage_sidecar().start()
    assert sidecar.add("gb", "4").status == 202
    clock.jump_to(H11 + 61)
    wait_for(lambda: billed(emulator), what="sent after throttling")
    assert billed(emulator) == {(iso(H10), "gb"): Decimal(4)}
    wait_for(lambda: sidecar.status()["sends"].get("gb", {}).get("Sent"), what="recorded")
    assert sidecar.status()["sends"]["gb"] == {"Transient": 2, "Sent": 1}


def test_an_outage_is_retried_with_backoff_until_the_window_closes(
    usage_sidecar: Make, clock: ShiftedClock, emulator: Emulator
) -> None:
    """5xx: rounds back off and retry; the hour is sent when AWS answers again before 16:59:29."""
    with_fault(emulator, kind="internal_error")
    sidecar = usage_sidecar().start()
    assert sidecar.add("jobs", "7").status == 202
    clock.jump_to(H11 + 61)
    wait_for(lambda: sidecar.status()["sends"].get("jobs", {}).get("Transient"), what="a try")
    status = sidecar.status()
    assert status["hours_pending"] == 1
    assert status["oldest_unsent_deadline"] == iso(H11 - 1 + 6 * HOUR)
    assert status["unsent"][0]["dimensions"]["jobs"]["last_error"] == (
        "InternalServiceErrorException"
    )
    assert "usage_oldest_unsent_hour_deadline_seconds" in sidecar.metrics()
    emulator.set_scenario(SCENARIO)
    clock.jump_to(H11 - 1 + 6 * HOUR - 60)  # a minute before the window closes
    wait_for(lambda: billed(emulator), what="sent at last")
    assert billed(emulator) == {(iso(H10), "jobs"): Decimal(7)}


def test_an_hour_unsent_when_the_window_closes_is_expired_and_never_sent(
    usage_sidecar: Make, clock: ShiftedClock, emulator: Emulator
) -> None:
    """Past 16:59:29 nothing is sent for 10:00 any more: Expired, counted, logged."""
    with_fault(emulator, kind="http_503")
    sidecar = usage_sidecar().start()
    assert sidecar.add("gb", "1").status == 202
    clock.jump_to(H11 + 61)
    wait_for(lambda: sidecar.status()["sends"].get("gb", {}).get("Transient"), what="a try")
    emulator.set_scenario(SCENARIO)
    clock.jump_to(H11 - 1 + 6 * HOUR - 29)
    wait_for(lambda: sidecar.status()["sends"]["gb"].get("Expired"), what="expired")
    assert billed(emulator) == {}
    assert sidecar.status()["hours_pending"] == 0
    assert "usage hour expired unsent" in sidecar.log()


def test_a_permanent_refusal_is_failed_and_never_retried(
    usage_sidecar: Make, clock: ShiftedClock, emulator: Emulator
) -> None:
    """A dimension AWS does not know: InvalidUsageDimensionException once, the other one sent."""
    sidecar = usage_sidecar(ENTITLEMENT_USAGE_DIMENSIONS="gb,unpublished").start()
    assert sidecar.add("gb", "2").status == 202
    assert sidecar.add("unpublished", "5").status == 202
    clock.jump_to(H11 + 61)
    wait_for(lambda: sidecar.status()["sends"].get("unpublished"), what="refused")
    clock.jump_to(H11 + 3 * HOUR)
    sends = wait_for(lambda: sidecar.status()["sends"], what="sends")
    assert sends == {"gb": {"Sent": 1}, "unpublished": {"Failed": 1}}
    assert billed(emulator) == {(iso(H10), "gb"): Decimal(2)}
    assert sidecar.status()["recent"][-1]["error"] == "InvalidUsageDimensionException"


def test_the_first_send_waits_for_a_random_share_of_the_jitter(
    usage_sidecar: Make, clock: ShiftedClock, emulator: Emulator
) -> None:
    """With a 900 s jitter the send time lies in [seal, seal + 900] and nothing goes before it."""
    sidecar = usage_sidecar(ENTITLEMENT_USAGE_SEND_JITTER="900").start()
    assert sidecar.add("gb", "1").status == 202
    clock.jump_to(H11 + 61)
    planned = wait_for(lambda: sidecar.status()["next_send_at"], what="a planned send")
    assert iso(H11 + 60) <= planned <= iso(H11 + 62 + 900)
    clock.jump_to(H11 + 61 + 901)
    wait_for(lambda: billed(emulator), what="sent after the jitter")


def test_usage_of_an_hour_sent_early_is_carried_into_the_next_hour(
    usage_sidecar: Make, clock: ShiftedClock, emulator: Emulator
) -> None:
    """The sidecar restarts in the pod after SIGTERM sent 10:00; later 10:xx usage bills at 11."""
    sidecar = usage_sidecar().start()
    assert sidecar.add("gb", "3").status == 202
    assert sidecar.stop() == 0
    assert billed(emulator) == {(iso(H10), "gb"): Decimal(3)}
    clock.jump_to(H10 + 2400)
    sidecar.start()
    reply = sidecar.add("gb", "4", time=iso(H10 + 2000))
    assert json.loads(reply.body) == {"accepted": 1, "duplicates": 0, "carried": 1}
    assert sidecar.view()["unsent"][0]["hour"] == iso(H11)
    clock.jump_to(H11 + HOUR + 61)
    wait_for(lambda: len(billed(emulator)) == 2, what="hour 11 sent")
    assert billed(emulator)[(iso(H11), "gb")] == Decimal(4)
