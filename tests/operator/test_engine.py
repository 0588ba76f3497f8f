"""The close/send loop against kmock and the Metering emulator, driven by a fake clock."""

from __future__ import annotations

from typing import Any

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.operator.annotations import (
    DIMENSIONS_KEY,
    PER_REPLICA_KEY,
    TAGS_KEY,
    WorkloadRef,
)
from entitlement_sidecar.operator.engine import Engine
from tests.operator.harness import FakeClock, Kube, runtime

WEB = WorkloadRef("shop", "Deployment", "web")
DB = WorkloadRef("shop", "StatefulSet", "db")
AGENT = WorkloadRef("ops", "DaemonSet", "agent")


def observe(
    engine: Engine, ref: WorkloadRef, notes: dict[str, str], status: dict[str, Any] | None = None
) -> tuple[str, ...]:
    return engine.observe(ref, notes, status or {}, gone=False)


def meter_records(emu: Emulator) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = emu.records()["meter_usage"]
    return sorted(records, key=lambda r: (r["hour"], r["dimension"], r["caller"]))


def phases(kube: Kube) -> dict[str, str]:
    return {
        obj["spec"]["dimension"] + "@" + obj["spec"]["hour"]: obj["status"]["phase"]
        for obj in kube.hours()
    }


def test_one_record_per_dimension_with_the_cluster_total(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """Three workloads give exactly one MeterUsage per dimension, allocated per workload."""
    engine = runtime(kube, emu, clock, "AKIDPOD1").engine
    observe(engine, WEB, {DIMENSIONS_KEY: '{"users": 5, "gb": "2.5"}'})
    observe(
        engine,
        DB,
        {DIMENSIONS_KEY: '{"users": 2}', PER_REPLICA_KEY: "true", TAGS_KEY: '{"team": "data"}'},
        {"readyReplicas": 3},
    )
    engine.tick()
    clock.advance(minutes=30)
    observe(
        engine, AGENT, {DIMENSIONS_KEY: '{"gb": 1}', PER_REPLICA_KEY: "true"}, {"numberReady": 4}
    )
    engine.tick()
    clock.advance(minutes=30, seconds=1)
    engine.tick()  # closes 10:00 (write-ahead), sends nothing before the jitter
    assert {k: v for k, v in phases(kube).items() if "T10" in k} == {
        "gb@2026-11-28T10:00:00Z": "Pending",
        "users@2026-11-28T10:00:00Z": "Pending",
    }
    assert meter_records(emu) == []
    clock.advance(minutes=3)
    engine.tick()
    records = meter_records(emu)
    assert [(r["dimension"], r["quantity"]) for r in records] == [("gb", "4.5"), ("users", "11")]
    gb = {tuple(sorted(a["tags"].items())): a["quantity"] for a in records[0]["allocations"]}
    assert gb == {
        (("namespace", "shop"), ("workload", "Deployment/web")): "2.5",
        (("namespace", "ops"), ("workload", "DaemonSet/agent")): "2",
    }
    users = {
        a["tags"]["workload"]: (a["quantity"], a["tags"].get("team"))
        for a in records[1]["allocations"]
    }
    assert users == {"Deployment/web": ("5", None), "StatefulSet/db": ("6", "data")}
    ledger = {
        obj["spec"]["dimension"]: obj["status"]
        for obj in kube.hours()
        if obj["spec"]["hour"].startswith("2026-11-28T10")
    }
    assert {"Sent"} == {status["phase"] for status in ledger.values()}
    assert {r["metering_record_id"] for r in records} == {
        status["meteringRecordId"] for status in ledger.values()
    }
