"""Property: a clean restart at any moment of the hour bills exactly what no restart bills.

A clean restart checkpoints at t (SIGTERM), the next pod resumes from that checkpoint at the same
t and keeps watching. The usage must come out identical to the last micro-unit, allocations
included, whatever the rates (up to 12 decimals), the changes and the restart moment. The pure
property runs the accumulator through the checkpoint's JSON form; the end-to-end one runs two real
operator instances over kmock and the Metering emulator.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.operator.accounting import (
    HOUR,
    MICROS_PER_HOUR,
    Accumulator,
    ClosedHour,
    rate_units,
)
from entitlement_sidecar.operator.allocation import Split, split
from entitlement_sidecar.operator.annotations import DIMENSIONS_KEY, WorkloadRef
from entitlement_sidecar.operator.shards import decode_lines, encode_line
from tests.operator.harness import START, FakeClock, kube_server, runtime

H10 = datetime(2026, 11, 28, 10, tzinfo=UTC)
KEYS = [f"shop/Deployment/w{i}" for i in range(4)]
RATE = st.decimals(min_value=0, max_value=1000, places=12, allow_nan=False, allow_infinity=False)
MICRO = st.integers(min_value=0, max_value=3_600_000_000 - 1)
# (microsecond into the hour, workload, rate or None for deleted)
EVENTS = st.lists(st.tuples(MICRO, st.sampled_from(KEYS), st.none() | RATE), max_size=12)


def at(micros: int) -> datetime:
    return H10 + timedelta(microseconds=micros)


def meter(events: list[tuple[int, str, Decimal | None]], restart: int | None) -> ClosedHour:
    """Run the hour's events, restarting cleanly at `restart` (checkpoint written and read back
    as JSON, a new accumulator resumed from it and re-observing what is running)."""
    acc = Accumulator(H10)
    current: dict[str, Decimal | None] = {}
    pending = sorted(events, key=lambda e: e[0])
    for moment, key, rate in pending:
        if restart is not None and moment >= restart:
            acc = _restarted(acc, current, at(restart))
            restart = None
        acc.observe(key, {"users": rate} if rate is not None else None, (), at(moment))
        current[key] = rate
    if restart is not None:
        acc = _restarted(acc, current, at(restart))
    ((_, usage),) = acc.close(H10 + HOUR)
    return usage


def _restarted(old: Accumulator, current: dict[str, Decimal | None], now: datetime) -> Accumulator:
    stored = json.loads(json.dumps([encode_line(k, e) for k, e in old.entries().items()]))
    entries = dict(decode_lines(stored))
    new = Accumulator(now)
    for key, rate in current.items():  # the new pod's watch sees what runs now
        new.observe(key, {"users": rate} if rate is not None else None, (), now)
    new.restore(entries, {H10: now}, now)
    return new


def billed(usage: ClosedHour) -> Split:
    return split(usage.get("users", {}))


@settings(max_examples=200, deadline=None)
@given(events=EVENTS, restart=MICRO)
@example(  # 1.0000005 exactly: half a micro-unit, rounded up with or without a restart
    events=[(0, KEYS[0], Decimal("1.0000005"))], restart=1_200_000_000
)
@example(events=[(0, KEYS[0], Decimal("0.333333333333")), (1, KEYS[1], Decimal(2))], restart=7)
def test_a_clean_restart_at_any_microsecond_changes_nothing(
    events: list[tuple[int, str, Decimal | None]], restart: int
) -> None:
    """The quantity and every allocation are the same with a restart at any moment as without."""
    assert billed(meter(events, None)) == billed(meter(events, restart))


def observed_usage(
    events: list[tuple[int, str, Decimal | None]], gaps: list[tuple[int, int]]
) -> dict[str, int]:
    """The reference: each workload's rate (its latest event at or before t) integrated over
    the hour's microseconds outside `gaps`, in usage units."""
    edges = sorted({0, MICROS_PER_HOUR, *(t for t, _, _ in events), *(t for g in gaps for t in g)})
    usage: dict[str, int] = {}
    for start, end in itertools.pairwise(edges):
        if any(a <= start and end <= b for a, b in gaps):
            continue
        for key, rate in state_at(events, start).items():
            if rate:
                usage[key] = usage.get(key, 0) + rate_units(rate) * (end - start)
    return usage


def state_at(
    events: list[tuple[int, str, Decimal | None]], moment: int, *, before: bool = False
) -> dict[str, Decimal | None]:
    """Each workload's latest rate at `moment` (or just before it)."""
    state: dict[str, Decimal | None] = {}
    for t, key, rate in sorted(events, key=lambda e: e[0]):
        if t < moment or (t == moment and not before):
            state[key] = rate
    return state


def crashed(
    events: list[tuple[int, str, Decimal | None]], crashes: list[tuple[int, int]]
) -> dict[str, int]:
    """Meter the hour with crashes: the pod checkpoints at `c`, dies, and the next one resumes
    at `r` (what ran meanwhile unobserved), with the gaps the ledger's hour objects kept."""
    acc, began, gaps = Accumulator(H10), 0, []
    for c, r in [*crashes, (MICROS_PER_HOUR, MICROS_PER_HOUR)]:
        for moment, key, rate in sorted(events, key=lambda e: e[0]):
            if began <= moment < c:
                acc.observe(key, {"users": rate} if rate is not None else None, (), at(moment))
        if c == MICROS_PER_HOUR:
            break
        stored = json.loads(json.dumps([encode_line(k, e) for k, e in acc.entries().items()]))
        gaps = acc.unobserved(H10)
        acc = Accumulator(at(r))
        for key, rate in state_at(events, r, before=True).items():  # the new pod's watch
            acc.observe(key, {"users": rate} if rate is not None else None, (), at(r))
        acc.restore(decode_lines(stored), {H10: at(c)}, at(r), gaps)
        began = r
    ((_, usage),) = acc.close(H10 + HOUR)
    return {key: w.usage for key, w in usage.get("users", {}).items()}


CRASHES = st.lists(MICRO, min_size=2, max_size=4, unique=True).map(
    lambda moments: [
        (a, b) for a, b in itertools.pairwise(sorted(moments)[: len(moments) // 2 * 2])
    ][::2]
)


@settings(max_examples=200, deadline=None)
@given(events=EVENTS, crashes=CRASHES)
@example(events=[(0, KEYS[0], Decimal(3))], crashes=[(600_000_000, 900_000_000)])
@example(  # changed while nobody watched: the new rate counts from the resume
    events=[(0, KEYS[0], Decimal(3)), (700_000_000, KEYS[0], Decimal(5))],
    crashes=[(600_000_000, 900_000_000), (1_000_000_000, 1_000_000_001)],
)
def test_crashes_bill_exactly_what_was_observed(
    events: list[tuple[int, str, Decimal | None]], crashes: list[tuple[int, int]]
) -> None:
    """Crashes at any moments bill, to the usage unit, every workload's rates over the time an
    operator observed them: from each crash's last checkpoint to the next resume nothing counts
    (also when a second crash follows: the first gap is kept with the hour), and a workload
    that changed meanwhile counts its new rates from the resume."""
    expected = {k: u for k, u in observed_usage(events, crashes).items() if u}
    assert expected == {k: u for k, u in crashed(events, crashes).items() if u}


def run_operator(restart: timedelta | None) -> list[dict[str, Any]]:
    """Two annotated workloads metered 10:00-11:03 by real operator pods (one, or two with a
    clean restart at 10:00 + `restart`); the MeterUsage records the emulator accepted."""
    clock = FakeClock()
    notes = {
        WorkloadRef("shop", "Deployment", "a"): '{"users": "1.0000005"}',
        WorkloadRef("shop", "Deployment", "b"): '{"users": "0.333333333333"}',
    }
    scenario = {"products": {"prod-paid": {"dimensions": ["users", "gb"]}}, "throttle": None}
    with kube_server() as kube, Emulator(now=clock, scenario=scenario) as emu:
        rt = runtime(kube, emu, clock, "AKIDPOD1")
        for ref, raw in notes.items():
            rt.engine.observe(ref, {DIMENSIONS_KEY: raw}, {}, gone=False)
        rt.engine.tick()
        if restart is not None:
            clock.set(START + restart)
            rt.engine.tick()
            rt.engine.shutdown()
            rt = runtime(kube, emu, clock, "AKIDPOD2")
            for ref, raw in notes.items():
                rt.engine.observe(ref, {DIMENSIONS_KEY: raw}, {}, gone=False)
            rt.engine.tick()
        clock.set(START + timedelta(hours=1, minutes=3))
        rt.engine.tick()
        records: list[dict[str, Any]] = emu.records()["meter_usage"]
        assert [r["dimension"] for r in records] == ["users"]
    return [
        {"quantity": r["quantity"], "allocations": sorted(map(str, r["allocations"]))}
        for r in records
    ]


@settings(max_examples=6, deadline=None)
@given(seconds=st.integers(min_value=1, max_value=3599))
def test_real_operators_bill_the_same_with_a_clean_restart_at_any_second(seconds: int) -> None:
    """End to end over kmock and the emulator: a rollout at any second of the hour bills the
    identical record (quantity and allocations) as an operator that ran the whole hour."""
    assert run_operator(None) == run_operator(timedelta(seconds=seconds))
