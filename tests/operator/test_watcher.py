"""The workload watches: list, watch, relist, Warning Events once per annotation value."""

from __future__ import annotations

import time

import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.operator import watcher as watcher_module
from entitlement_sidecar.operator.annotations import DIMENSIONS_KEY
from entitlement_sidecar.operator.watcher import Watcher
from entitlement_sidecar.operator.wiring import Runtime
from tests.operator.harness import FakeClock, Kube, runtime, wait_for

BAD = {DIMENSIONS_KEY: '{"users": "lots"}'}


def watching(kube: Kube, rt: Runtime) -> Watcher:
    watcher = Watcher(rt.api, rt.engine, rt.events, rt.now).start()
    assert watcher.synced.wait(10)
    return watcher


def test_changes_reach_the_engine_and_stop_is_prompt(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """Listed workloads, then created, changed and deleted ones reach the engine; stop() returns
    at once even while the streams wait for events."""
    kube.apply_workload("Deployment", "shop", "web", {DIMENSIONS_KEY: '{"users": 5}'})
    rt = runtime(kube, emu, clock, "AKIDPOD1")
    watcher = watching(kube, rt)
    try:
        assert list(rt.engine.current_rates()) == ["shop/Deployment/web"]
        kube.apply_workload("DaemonSet", "ops", "agent", {DIMENSIONS_KEY: '{"gb": 1}'})
        kube.apply_workload("Deployment", "shop", "web", {DIMENSIONS_KEY: '{"users": 7}'})
        wait_for(lambda: len(rt.engine.current_rates()) == 2)
        wait_for(lambda: rt.engine.current_rates()["shop/Deployment/web"]["users"] == 7)
        kube.delete_workload("Deployment", "shop", "web")
        wait_for(lambda: list(rt.engine.current_rates()) == ["ops/DaemonSet/agent"])
    finally:
        started = time.monotonic()
        watcher.stop()
    assert time.monotonic() - started < 2


def test_a_bad_annotation_is_reported_once_also_across_restarts(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """One Warning Event per bad annotation value: a restarted operator does not post it again;
    a new bad value gets its own."""
    kube.apply_workload("Deployment", "shop", "bad", BAD)
    for caller in ("AKIDPOD1", "AKIDPOD2"):  # two operator pods, one after the other
        watching(kube, runtime(kube, emu, clock, caller)).stop()
    assert [e.reason for e in kube.events()] == ["InvalidMeteringAnnotation"]
    rt = runtime(kube, emu, clock, "AKIDPOD3")
    watcher = watching(kube, rt)
    try:
        kube.apply_workload("Deployment", "shop", "bad", {DIMENSIONS_KEY: '{"cpu": 1}'})
        wait_for(lambda: len(kube.events()) == 2)
    finally:
        watcher.stop()


def test_a_relist_observes_workloads_deleted_meanwhile_as_gone(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """After a relist (the watch was too old to resume), a workload missing from it is gone."""
    kube.apply_workload("StatefulSet", "shop", "db", {DIMENSIONS_KEY: '{"users": 1}'})
    rt = runtime(kube, emu, clock, "AKIDPOD1")
    watcher = Watcher(rt.api, rt.engine, rt.events, rt.now)
    known: set[str] = set()
    watcher._list("statefulsets", "StatefulSet", "", known)
    assert known == {"shop/StatefulSet/db"}
    kube.delete_workload("StatefulSet", "shop", "db")
    watcher._list("statefulsets", "StatefulSet", "", known)
    assert (known, rt.engine.current_rates()) == (set(), {})


def test_the_lease_is_taken_only_once_every_workload_was_listed(
    kube: Kube, emu: Emulator, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator takes the Lease (and resumes from the checkpoint) only once its watch has
    listed every workload: one not seen yet would look gone and lose its checkpointed segment.
    A kind that never lists holds nobody up past the grace (logged)."""
    kube.apply_workload("Deployment", "shop", "web", {DIMENSIONS_KEY: '{"users": 5}'})
    rt = runtime(kube, emu, clock, "AKIDPOD1")
    idle = Watcher(rt.api, rt.engine, rt.events, rt.now)  # not started: nothing listed
    rt.engine.ready = idle.ready
    rt.engine.tick()
    assert rt.metrics.leader.value() == 0.0
    watcher = watching(kube, rt)
    try:
        rt.engine.ready = watcher.ready
        rt.engine.tick()
        assert rt.metrics.leader.value() == 1.0
    finally:
        watcher.stop()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(watcher_module, "SYNC_GRACE", 0.0)
        assert idle.ready()
    assert "not every workload kind could be listed" in caplog.text
