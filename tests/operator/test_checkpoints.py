"""The log-structured checkpoint over kmock: small writes, and a consistent checkpoint whatever
step a crash or a stall interrupts.

Most tests shrink the pieces (4 KiB of lines, a log budget of 8 KiB, one base shard per
compaction slice) so that a few hundred workloads go through every step of a compaction.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import kmock
import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.operator import checkpoints, layout, ledger
from entitlement_sidecar.operator.accounting import Entry
from entitlement_sidecar.operator.annotations import DIMENSIONS_KEY, WorkloadRef
from entitlement_sidecar.operator.shards import decode_lines
from entitlement_sidecar.operator.wiring import Runtime
from tests.operator.harness import (
    PRODUCT,
    START,
    Crash,
    FakeClock,
    Kube,
    kube_server,
    runtime,
)
from tests.operator.test_crashes import hour10

REFS = [WorkloadRef(f"ns-{i % 5}", "Deployment", f"app-{i:03d}") for i in range(100)]
CHANGED = REFS[::2]
ROOT = ledger.root_name(PRODUCT)
HOURS = kmock.resource(f"{ledger.GROUP}/{ledger.VERSION}/{ledger.PLURAL}")


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of 4 KiB of lines (about 30 workloads), a log budget of 4 KiB, one shard a slice."""
    monkeypatch.setattr(checkpoints, "PAYLOAD_BYTES", 4096)
    monkeypatch.setattr(layout, "PAYLOAD_BYTES", 4096)
    monkeypatch.setattr(layout, "LOG_FLOOR", 4096)
    monkeypatch.setattr(checkpoints, "SLICE", 1)


def rate(ref: WorkloadRef, changed: bool) -> int:
    return REFS.index(ref) % 7 + 1 + (10 if changed and ref in CHANGED else 0)


def watch(rt: Runtime, *, changed: bool) -> None:
    """What a watch sees: every workload at its rate (the changed ones at their new rate)."""
    for ref in REFS:
        notes = {DIMENSIONS_KEY: f'{{"users": {rate(ref, changed)}}}'}
        rt.engine.observe(ref, notes, {}, gone=False)


def in_force(kube: Kube) -> dict[str, Entry]:
    """The checkpoint as a reader finds it (an oracle of its own: the root's base shards, then
    its log pieces in order, a later line of a workload overriding an earlier one), read from
    kmock's store."""
    stored = {
        name: obj.raw
        for (resource, _, name), obj in kube.mock.objects.items()
        if resource == HOURS and not obj.deleted
    }
    status = stored[ROOT]["status"]
    found: dict[str, Entry] = {}
    for name in [*status["base"], *status["log"]]:
        found.update(decode_lines(stored[name]["spec"]["entries"]))
    return {key: entry for key, entry in found.items() if entry != Entry()}


def checkpoint_objects(kube: Kube) -> set[str]:
    return {o["metadata"]["name"] for o in kube.ledger() if "checkpoint" in o["spec"]}


def named(kube: Kube) -> set[str]:
    root = next(o for o in kube.ledger() if o["metadata"]["name"] == ROOT)
    return {ROOT, *root["status"]["base"], *root["status"]["log"]}


def crash_at_step(step: int, seen: list[str]) -> Any:
    """A hook that records every checkpoint write it passes and crashes before the `step`-th."""

    def hook(point: str, name: str) -> None:
        if point == "before_checkpoint":
            if len(seen) == step:
                raise Crash(f"crash before checkpoint write {step} ({name})")
            seen.append(name)

    return hook


def compacting(kube: Kube, emu: Emulator, clock: FakeClock) -> Runtime:
    """10:00 all workloads; 10:01 the first checkpoint (base shards); 10:02 half of them change,
    are logged, and the log outgrows its budget: a compaction starts, one shard a tick."""
    rt = runtime(kube, emu, clock, "AKIDPOD1")
    watch(rt, changed=False)
    rt.engine.tick()
    clock.advance(minutes=1)
    rt.engine.tick()
    clock.advance(minutes=1)
    watch(rt, changed=True)
    rt.engine.tick()
    return rt


def expected_quantity(kube: Kube, resumed: datetime, *, logged: bool) -> Decimal:
    """Users for 10:00-11:00 without the gap from the hour's last checkpoint to `resumed`: a
    changed workload counts its old rate until 10:02 and its new one from there (outside the
    gap) if its change was logged; if not, its old rate until the last checkpoint and its new
    one from the resume."""
    (hour,) = [o for o in kube.hours() if "T10" in o["spec"]["hour"]]
    seen = ledger.from_time(hour["status"]["observedUntil"])
    resume = Decimal((resumed - START).total_seconds()) / 60
    until = Decimal((seen - START).total_seconds()) / 60
    gap = resume - until
    total = Decimal(0)
    for ref in REFS:
        old, new = rate(ref, False), rate(ref, True)
        if ref not in CHANGED:
            total += old * (60 - gap)
        elif logged:
            total += old * 2 + new * (58 - gap)
        else:
            total += old * until + new * (60 - resume)
    return (total / 60).quantize(Decimal("0.000001"), ROUND_HALF_UP)


def billed(emu: Emulator) -> Decimal:
    (record,) = hour10(emu)
    return Decimal(record["quantity"])


def test_a_change_writes_one_small_piece_whatever_the_cluster(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """With 5,000 workloads in base shards, a checkpoint after 1% of them changed writes one log
    piece of their lines and switches the root: no base shard is rewritten."""
    refs = [WorkloadRef(f"ns-{i % 50}", "Deployment", f"app-{i:05d}") for i in range(5000)]
    rt = runtime(kube, emu, clock, "AKIDPOD1")
    for ref in refs:
        rt.engine.observe(ref, {DIMENSIONS_KEY: '{"users": 1}'}, {}, gone=False)
    rt.engine.tick()
    clock.advance(minutes=1)
    rt.engine.tick()
    base = named(kube) - {ROOT}
    for ref in refs[::100]:
        rt.engine.observe(ref, {DIMENSIONS_KEY: '{"users": 2}'}, {}, gone=False)
    clock.advance(minutes=1)
    requests = len(list(kube.mock))
    rt.engine.tick()
    created = [
        r.data["spec"]
        for r in list(kube.mock)[requests:]
        if str(r.method.value).upper() == "POST" and "checkpoint" in (r.data or {}).get("spec", {})
    ]
    assert [(c["checkpoint"], len(c["entries"])) for c in created] == [("log", 50)]
    assert base < named(kube)
    assert in_force(kube)["ns-0/Deployment/app-00000"].rates == (("users", 2 * 10**12),)


@pytest.mark.usefixtures("small")
def test_a_restart_at_every_step_of_a_compaction_keeps_the_checkpoint() -> None:
    """A crash before any write of a compaction under way (each new base shard, the root switch,
    the hour's object) leaves the checkpoint saying exactly what it said, and the next pod bills
    the hour exactly: only the time from the last checkpoint to its resume is missing."""
    step = 0
    while True:
        clock = FakeClock()
        seen: list[str] = []
        with kube_server() as kube, Emulator(now=clock, scenario=SCENARIO) as emu:
            first = compacting(kube, emu, clock)
            before = in_force(kube)
            first.engine.sender.hook = crash_at_step(step, seen)
            try:
                while first.metrics.compactions.value() < 2:  # the first checkpoint's, this
                    clock.advance(minutes=1)
                    first.engine.tick()
            except Crash:
                pass
            else:
                break  # past the last step: every step was crashed at
            assert in_force(kube) == before, seen
            first.engine.lease.release()  # as if it had expired: the next pod resumes now
            second = runtime(kube, emu, clock, "AKIDPOD2")
            watch(second, changed=True)
            second.engine.tick()
            expected = expected_quantity(kube, clock(), logged=True)
            clock.set(START + timedelta(hours=1, minutes=3))
            second.engine.tick()
            assert billed(emu) == expected, seen
        step += 1
    assert step >= 6  # shards, root switches and hour objects of several ticks
    assert any(name == ROOT for name in seen)


SCENARIO = {"products": {"prod-paid": {"dimensions": ["users", "gb"]}}, "throttle": None}


@pytest.mark.usefixtures("small")
def test_a_crash_between_a_log_piece_and_the_root_switch_loses_nothing_twice(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """A pod that dies after writing a log piece, before the root names it, leaves the previous
    checkpoint in force (the piece is garbage, swept within the hour): the next pod counts the
    changed workloads' old rate up to that checkpoint and their new rate from its resume."""
    first = runtime(kube, emu, clock, "AKIDPOD1")
    watch(first, changed=False)
    first.engine.tick()
    clock.advance(minutes=1)
    first.engine.tick()  # 10:01: base shards
    before = in_force(kube)
    clock.advance(minutes=1)
    watch(first, changed=True)
    seen: list[str] = []
    first.engine.sender.hook = crash_at_step(1, seen)  # the piece, then the root
    with pytest.raises(Crash, match=ROOT):
        first.engine.tick()  # 10:02
    assert in_force(kube) == before
    orphans = checkpoint_objects(kube) - named(kube)
    assert len(orphans) == 1
    first.engine.lease.release()
    second = runtime(kube, emu, clock, "AKIDPOD2")
    watch(second, changed=True)
    second.engine.tick()  # 10:02: resumes
    expected = expected_quantity(kube, clock(), logged=False)
    for minutes in (30, 31, 2):  # 10:32, 11:03 (close and send), 11:05 (the sweep, 1 h on)
        clock.advance(minutes=minutes)
        second.engine.tick()
    assert billed(emu) == expected
    clock.advance(minutes=1)
    second.engine.tick()  # deletes what the sweep found
    assert orphans
    assert not orphans & checkpoint_objects(kube)


@pytest.mark.usefixtures("small")
def test_a_stalled_ex_leader_cannot_switch_the_root(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """A leader stalled right before its root switch while a new pod takes over has its switch
    refused when it wakes, even before the new pod wrote a checkpoint (the resume fences the
    root): its piece is never named, and the hour is billed once, exactly."""
    first = runtime(kube, emu, clock, "AKIDPOD1")
    second = runtime(kube, emu, clock, "AKIDPOD2")
    watch(first, changed=False)
    first.engine.tick()
    clock.advance(minutes=1)
    first.engine.tick()  # 10:01: base shards
    clock.advance(minutes=1)
    watch(first, changed=True)
    watch(second, changed=True)
    expected: list[Decimal] = []
    before: dict[str, Entry] = {}

    def stall(point: str, name: str) -> None:
        if point == "before_checkpoint" and name == ROOT and not expected:
            before.update(in_force(kube))
            clock.advance(minutes=2)
            second.engine.tick()  # 10:04: the Lease renewed at 10:02 has expired: resumes
            expected.append(expected_quantity(kube, clock(), logged=False))

    first.engine.sender.hook = stall
    first.engine.tick()  # 10:02: stalls before its switch, wakes at 10:04 right after the resume
    assert first.metrics.fenced.value(step="checkpoint") >= 1.0
    assert not first.engine._leader
    assert in_force(kube) == before
    clock.set(START + timedelta(hours=1, minutes=3))
    second.engine.tick()
    first.engine.tick()  # the ex-leader: no Lease, nothing written
    assert billed(emu) == expected[0]


@pytest.mark.usefixtures("small")
@pytest.mark.parametrize("seed", [1, 2, 3], ids=["seed-1", "seed-2", "seed-3"])
def test_the_checkpoint_always_says_what_the_operator_knows(
    kube: Kube, emu: Emulator, clock: FakeClock, seed: int
) -> None:
    """Through random changes, deletions and returns every minute across an hour's close (logged,
    the open piece rewritten, tombstones, compactions running while changes are logged), the
    checkpoint in force after each tick holds exactly the entries the operator holds."""
    rng = random.Random(seed)
    rt = runtime(kube, emu, clock, "AKIDPOD1")
    watch(rt, changed=False)
    rt.engine.tick()
    for _ in range(40):
        kube.forget_requests()
        clock.advance(minutes=2)
        for ref in rng.sample(REFS, rng.randint(0, 30)):
            if rng.random() < 0.2:
                rt.engine.observe(ref, {}, {}, gone=True)
            else:
                notes = {DIMENSIONS_KEY: f'{{"users": {rng.randint(1, 9)}}}'}
                rt.engine.observe(ref, notes, {}, gone=False)
        closing = clock().minute < 2  # the tick's checkpoint came before the hour's close
        rt.engine.tick()
        with rt.engine._lock:
            held = rt.engine._accumulator.entries()
            hours = set(rt.engine._accumulator.hours(clock()))
        assert (open_part(in_force(kube), hours) if closing else in_force(kube)) == held
    assert rt.metrics.compactions.value() >= 3


def open_part(entries: dict[str, Entry], hours: set[datetime]) -> dict[str, Entry]:
    """The entries without the usage of the hour closed after they were written (the next
    checkpoint writes them without it)."""
    kept = {}
    for key, entry in entries.items():
        usage = {hour: u for hour, u in entry.usage.items() if hour in hours}
        if usage or entry.rates:
            kept[key] = entry._replace(usage=usage)
    return kept
