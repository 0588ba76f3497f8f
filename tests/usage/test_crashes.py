"""Kill the sidecar at every step of the usage path, restart it: each acknowledged event is billed
exactly once (one record per hour and dimension, with the acknowledged quantity)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import psutil
import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.testing import ShiftedClock

from .conftest import H10, HOUR, UsageSidecar, billed, iso, wait_for, with_fault

Make = Callable[..., UsageSidecar]
H11 = H10 + HOUR
DRIVER = str(Path(__file__).with_name("crash_driver.py"))


def crashing(clock: ShiftedClock, point: str) -> list[str]:
    return [sys.executable, DRIVER, clock.path, point, "run"]


def report(sidecar: UsageSidecar) -> dict[tuple[str, str], Decimal]:
    """Acknowledge a fixed set of 10:xx usage: gb 12.5 + 0.5, jobs 3 (tagged) + 2."""
    acked: dict[tuple[str, str], Decimal] = {}
    for dimension, quantity, event_id, tags in [
        ("gb", "12.5", "e1", None),
        ("jobs", "3", "e2", {"team": "x"}),
        ("gb", "0.5", "e3", None),
        ("jobs", "2", "e4", None),
    ]:
        extra = {"tags": tags} if tags else {}
        reply = sidecar.add(dimension, quantity, event_id, **extra)
        assert reply.status == 202, reply.body
        key = (iso(H10), dimension)
        acked[key] = acked.get(key, Decimal(0)) + Decimal(quantity)
    return acked


def died(sidecar: UsageSidecar) -> None:
    """Wait for the crash point to fire, then take the rest of the group down with it."""
    wait_for(lambda: not sidecar.alive(), 30, "the crash")
    sidecar.kill()


def settle(sidecar: UsageSidecar, clock: ShiftedClock, emulator: Emulator, hours: int = 1) -> None:
    """Restart normally (unless already restarted), move past the seal of hour 10, wait until
    everything is recorded."""
    if not sidecar.alive():
        sidecar.start()
    clock.jump_to(H10 + hours * HOUR + 61)
    wait_for(
        lambda: sidecar.status()["hours_pending"] == 0 and not sidecar.status()["unsent"],
        30,
        "every hour sent",
    )


def sending(
    usage_sidecar: Make, clock: ShiftedClock, emulator: Emulator
) -> tuple[UsageSidecar, dict[tuple[str, str], Decimal]]:
    """A sidecar whose 10:00 hour is closed and whose first MeterUsage call is at AWS (held 2 s),
    and the usage it acknowledged."""
    with_fault(emulator, kind="delay", seconds=2, count=1)
    sidecar = usage_sidecar().start()
    acked = report(sidecar)
    clock.jump_to(H11 + 61)
    wait_for(lambda: emulator.records()["requests"].get("MeterUsage"), 30, "a call in flight")
    return sidecar, acked


def test_killed_right_after_the_acknowledgement(
    usage_sidecar: Make, clock: ShiftedClock, emulator: Emulator
) -> None:
    """202 answered, then SIGKILL: the restarted sidecar replays and bills it."""
    sidecar = usage_sidecar().start()
    acked = report(sidecar)
    sidecar.kill()
    settle(sidecar, clock, emulator)
    assert billed(emulator) == acked


def test_killed_after_the_fsync_before_the_answer(
    usage_sidecar: Make, clock: ShiftedClock, emulator: Emulator
) -> None:
    """The event is durable but unanswered; the app's retry with the same id counts once."""
    sidecar = usage_sidecar().start(wrapper=crashing(clock, "after-fsync"))
    with pytest.raises(OSError, match=r"reset|refused|not an HTTP answer"):
        sidecar.add("gb", "7", "retry-me")
    died(sidecar)
    sidecar.start()
    reply = sidecar.add("gb", "7", "retry-me")
    assert json.loads(reply.body) == {"accepted": 0, "duplicates": 1, "carried": 0}
    settle(sidecar, clock, emulator)
    assert billed(emulator) == {(iso(H10), "gb"): Decimal(7)}


@pytest.mark.parametrize("point", ["seal-before-rename", "seal-after-rename"])
def test_killed_during_the_seal(
    usage_sidecar: Make, clock: ShiftedClock, emulator: Emulator, point: str
) -> None:
    """A crash before or after the compaction's rename leaves the old or the new journal."""
    sidecar = usage_sidecar().start(wrapper=crashing(clock, point))
    acked = report(sidecar)
    clock.jump_to(H11 + 61)
    died(sidecar)
    leftovers = sorted(p.name for p in sidecar.status_dir.iterdir())
    assert billed(emulator) == {}
    settle(sidecar, clock, emulator)
    assert billed(emulator) == acked, leftovers
    assert not list(sidecar.status_dir.glob("*.tmp"))


def test_killed_while_the_request_is_at_aws(
    usage_sidecar: Make, clock: ShiftedClock, emulator: Emulator
) -> None:
    """AWS records the call after the sidecar died; the resend gets the same record back."""
    sidecar, acked = sending(usage_sidecar, clock, emulator)
    sidecar.kill()
    wait_for(lambda: billed(emulator), 10, "AWS recording the first call")
    first = {r["dimension"]: r["metering_record_id"] for r in emulator.records()["meter_usage"]}
    settle(sidecar, clock, emulator)
    assert billed(emulator) == acked
    recent = {r["dimension"]: r["metering_record_id"] for r in sidecar.status()["recent"]}
    assert all(recent[d] == first[d] for d in first)  # the resend was answered idempotently


def test_killed_after_the_send_before_recording_it(
    usage_sidecar: Make, clock: ShiftedClock, emulator: Emulator
) -> None:
    """The child's result never reaches the journal; the resend is the identical request."""
    sidecar = usage_sidecar().start(wrapper=crashing(clock, "before-recording"))
    acked = report(sidecar)
    clock.jump_to(H11 + 61)
    died(sidecar)
    time.sleep(0.5)  # a child still finishing its round
    settle(sidecar, clock, emulator)
    assert billed(emulator) == acked
    tokens = {r["client_token"] for r in emulator.records()["meter_usage"]}
    assert len(tokens) == 2
    assert sidecar.status()["sends"]["gb"]["Sent"] == 1


def test_killed_at_shutdown_while_sending_the_partial_hour(
    usage_sidecar: Make, clock: ShiftedClock, emulator: Emulator
) -> None:
    """SIGTERM seals 10:30; a SIGKILL mid-send leaves it sealed; the restart sends it as sealed."""
    with_fault(emulator, kind="delay", seconds=2, count=1)
    sidecar = usage_sidecar().start()
    acked = report(sidecar)
    assert sidecar.process is not None
    sidecar.process.terminate()
    wait_for(lambda: emulator.records()["requests"].get("MeterUsage"), 30, "the shutdown send")
    sidecar.kill()
    clock.jump_to(H10 + 2400)
    sidecar.start()
    wait_for(lambda: len(billed(emulator)) == 2, 30, "both dimensions")
    assert billed(emulator) == acked
    stamps = {r["timestamp"] for r in emulator.records()["meter_usage"]}
    assert len(stamps) == 1  # the seal's timestamp, not the restart's clock
    assert sidecar.add("gb", "1").status == 202  # later 10:xx usage is carried to 11:00
    assert sidecar.view()["unsent"][0]["hour"] == iso(H11)


def test_a_stalled_sender_is_killed_and_the_hour_sent_by_the_next_round(
    usage_sidecar: Make, clock: ShiftedClock, emulator: Emulator
) -> None:
    """A child frozen mid-call (SIGSTOP) is killed past its budget; the next round bills once."""
    sidecar, acked = sending(usage_sidecar, clock, emulator)
    assert sidecar.process is not None
    [child] = psutil.Process(sidecar.process.pid).children()
    child.suspend()
    clock.jump_to(H11 + 61 + 200)  # the round's 60 s budget and 30 s grace are long over
    wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, 10, "kill")
    assert "usage sender stalled past its budget: killed" in sidecar.log()
    clock.jump_to(H11 + 61 + 200 + 60)  # past the backoff
    wait_for(lambda: billed(emulator) == acked and not sidecar.status()["unsent"], 30, "billed")
    assert billed(emulator) == acked
