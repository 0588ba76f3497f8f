"""A leader that stalls mid-step, loses its Lease and wakes later never bills an hour twice.

The stall is played exactly: at the chosen point of the first instance's tick, its hook runs the
second instance (a new pod, a new AWS caller) for a few minutes of fake time, then returns, and
the first instance carries on with what it had read before. kmock is extended
(`tests/operator/apiserver.py`) to refuse stale resourceVersions with 409, as the API server does.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import kmock
import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.operator.ledger import FINAL, GROUP, PLURAL, VERSION, Phase
from entitlement_sidecar.operator.wiring import Runtime
from tests.operator.harness import START, FakeClock, Kube, runtime
from tests.operator.test_crashes import hour10, watch_all

CLOSING = START + timedelta(hours=1)  # 11:00: the hour being closed and sent
SENDING = START + timedelta(hours=1, minutes=3)  # when 10:00 is due (jitter 150 s, rng 0.5)
HOURS = kmock.resource(f"{GROUP}/{VERSION}/{PLURAL}")


def scenario(scope: str) -> dict[str, Any]:
    return {
        "products": {"prod-paid": {"dimensions": ["users", "gb"]}},
        "throttle": None,
        "client_token_scope": scope,
    }


def stall_at(point: str, clock: FakeClock, other: Runtime, minutes: list[float]) -> Any:
    """A hook that freezes the instance at `point` (once, while closing or sending 10:00) while
    `other` ticks after each of `minutes` of fake time."""
    stalled: list[str] = []

    def hook(reached: str, name: str) -> None:
        if reached != point or stalled or clock() < CLOSING or "2026112810" not in name:
            return
        stalled.append(name)
        for step in minutes:
            clock.advance(minutes=step)
            other.engine.tick()

    return hook


def drive(first: Runtime, second: Runtime, clock: FakeClock) -> None:
    """10:00-11:03 on the first instance (which stalls somewhere), then both for 12 minutes."""
    for moment in (START, START + timedelta(minutes=30), CLOSING + timedelta(seconds=30), SENDING):
        clock.set(max(moment, clock()))
        first.engine.tick()
    for _ in range(6):
        clock.advance(minutes=2)
        second.engine.tick()
        first.engine.tick()


def phase_histories(kube: Kube) -> dict[str, list[str]]:
    """Every phase each ledger object went through, version by version (kmock keeps them all)."""
    histories: dict[str, list[str]] = {}
    for (resource, _, name), obj in kube.mock.objects.items():
        if resource == HOURS:
            versions = [v for v in obj.history if v is not None]
            histories[name] = [(v.get("status") or {}).get("phase") or "" for v in versions]
    return histories


def assert_never_left_final(histories: dict[str, list[str]]) -> None:
    for name, phases in histories.items():
        finals = [i for i, phase in enumerate(phases) if phase and Phase(phase) in FINAL]
        if finals:
            assert set(phases[finals[0] :]) == {phases[finals[0]]}, (name, phases)


STEPS = {
    "before_checkpoint": "checkpoint",
    "before_write_ahead": "write_ahead",
    "after_write_ahead": "tick",
    "before_claim": "claim",
    "after_claim": "call",
    "after_call": "late_outcome",
}


@pytest.mark.parametrize("scope", ["account", "caller"], ids=["account-tokens", "caller-tokens"])
@pytest.mark.parametrize("point", list(STEPS), ids=[p.replace("_", "-") for p in STEPS])
def test_a_stalled_ex_leader_never_bills_an_hour_twice(  # noqa: PLR0917 - fixtures
    kube: Kube,
    emu: Emulator,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    point: str,
    scope: str,
) -> None:
    """Stalled for 4 minutes at `point` (the Lease is 60 s), whatever the ClientToken scope:
    one record per dimension, no object leaves a final phase, and the ex-leader's late step is
    refused (or, after the call, only records its own outcome), in its logs and a metric."""
    emu.set_scenario(scenario(scope))
    second = runtime(kube, emu, clock, "AKIDPOD2")
    first = runtime(kube, emu, clock, "AKIDPOD1")
    first.engine.sender.hook = stall_at(point, clock, second, [2, 2])
    for rt in (first, second):
        watch_all(rt.engine)
    caplog.set_level(logging.WARNING, logger="entitlement_sidecar.operator")
    drive(first, second, clock)
    records = hour10(emu)
    assert sorted(r["dimension"] for r in records) == ["gb", "users"]
    hours = {
        o["spec"]["dimension"]: o["status"] for o in kube.hours() if "T10" in o["spec"]["hour"]
    }
    assert {s["phase"] for s in hours.values()} == {"Sent"}
    assert {r["metering_record_id"] for r in records} == {
        s["meteringRecordId"] for s in hours.values()
    }
    assert_never_left_final(phase_histories(kube))
    assert first.metrics.fenced.value(step=STEPS[point]) >= 1.0
    assert any(r.levelno >= logging.WARNING for r in caplog.records)


@pytest.mark.parametrize(
    ("scope", "records"), [("account", 1), ("caller", 2)], ids=["account-tokens", "caller-tokens"]
)
def test_a_stall_after_the_call_longer_than_the_grace_is_the_ambiguous_crash(
    kube: Kube, emu: Emulator, clock: FakeClock, scope: str, records: int
) -> None:
    """Stalled after its call for longer than the resend grace, the ex-leader looks dead: the
    hour is resent (flagged `resent`, counted), billed twice only if AWS scopes ClientTokens per
    caller; the ex-leader's late outcome is refused and logged, and the ledger keeps one outcome."""
    emu.set_scenario(scenario(scope))
    second = runtime(kube, emu, clock, "AKIDPOD2")
    first = runtime(kube, emu, clock, "AKIDPOD1")
    first.engine.sender.hook = stall_at("after_call", clock, second, [2, 4])
    for rt in (first, second):
        watch_all(rt.engine)
    drive(first, second, clock)
    sent = hour10(emu)
    dimension = sent[0]["dimension"] if sent[0]["caller"] == "AKIDPOD1" else sent[-1]["dimension"]
    assert records == sum(1 for r in sent if r["dimension"] == dimension)
    (status,) = [
        o["status"]
        for o in kube.hours()
        if o["spec"]["dimension"] == dimension and "T10" in o["spec"]["hour"]
    ]
    assert (status["phase"], status["resent"], status["owner"]) == (
        "Sent",
        True,
        "operator-AKIDPOD2",
    )
    assert second.metrics.ambiguous_resends.value(dimension=dimension) == 1.0
    assert first.metrics.fenced.value(step="outcome") == 1.0
    assert_never_left_final(phase_histories(kube))


def test_the_lease_check_refuses_a_call_once_the_margin_is_reached(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """The Lease is valid for a call only while more than the margin remains of it."""
    rt = runtime(kube, emu, clock, "AKIDPOD1")
    lease = rt.engine.lease
    assert lease.acquire()
    margin = timedelta(seconds=20)
    end = clock() + lease.duration
    clock.set(end - margin - timedelta(microseconds=1))
    assert lease.valid(margin)
    clock.set(end - margin)
    assert not lease.valid(margin)
    assert datetime.fromisoformat("2026-11-28T10:01:00+00:00") == end
