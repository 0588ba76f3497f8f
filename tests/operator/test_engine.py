"""The close/send loop against kmock and the Metering emulator, driven by a fake clock."""

from __future__ import annotations

from typing import Any

import kmock
import pytest
from kubernetes import client as k8s

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.operator.annotations import (
    DIMENSIONS_KEY,
    PER_REPLICA_KEY,
    TAGS_KEY,
    WorkloadRef,
)
from entitlement_sidecar.operator.engine import Engine
from entitlement_sidecar.operator.ledger import GROUP, PLURAL, VERSION
from entitlement_sidecar.operator.wiring import Runtime
from tests.operator.harness import LEDGER_NS, FakeClock, Kube, runtime

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


def web_metered(
    kube: Kube, emu: Emulator, clock: FakeClock, dimensions: str, **overrides: Any
) -> Runtime:
    """An operator instance that watches one Deployment annotated with `dimensions`."""
    rt = runtime(kube, emu, clock, "AKIDPOD1", **overrides)
    observe(rt.engine, WEB, {DIMENSIONS_KEY: dimensions})
    return rt


def close_hour(engine: Engine, clock: FakeClock) -> None:
    """Meter from 10:00 and close 10:00 at 11:00:01 (write-ahead; nothing is due yet)."""
    engine.tick()
    clock.advance(hours=1, seconds=1)
    engine.tick()


def close_and_send(engine: Engine, clock: FakeClock) -> None:
    """Close 10:00 at 11:00:01, then send it at 11:03."""
    close_hour(engine, clock)
    clock.advance(minutes=3)
    engine.tick()


def status_of(kube: Kube, dimension: str) -> dict[str, Any]:
    (obj,) = [
        o
        for o in kube.hours()
        if o["spec"]["dimension"] == dimension and "T10" in o["spec"]["hour"]
    ]
    status: dict[str, Any] = obj["status"]
    return status


def test_window_expiry_is_an_alert_not_a_send(kube: Kube, emu: Emulator, clock: FakeClock) -> None:
    """An hour still unsent near its 6-hour deadline becomes Expired with an Event, never sent."""
    first = runtime(kube, emu, clock, "AKIDPOD1")
    observe(first.engine, WEB, {DIMENSIONS_KEY: '{"users": 1}'})
    close_hour(first.engine, clock)  # Pending; then the operator is down for 5h55m
    clock.advance(hours=5, minutes=55)
    second = runtime(kube, emu, clock, "AKIDPOD2")
    second.engine.tick()
    assert status_of(kube, "users")["phase"] == "Expired"
    assert status_of(kube, "users")["errorCode"] == "WindowExpired"
    # 10:00 (reported as 10:59:59) left the window at 16:59:59 minus the 10-minute margin; the
    # second of 11:00 checkpointed before the outage is still in its window and is sent
    assert [r["hour"] for r in meter_records(emu)] == ["2026-11-28T11:00:00Z"]
    assert [e.reason for e in kube.events()] == ["ObservationGap", "HourExpired"]
    assert second.metrics.sends.value(dimension="users", result="Expired") == 1.0
    # 11:00:01 (the last checkpoint) to 16:55:01: nobody observed the workloads
    assert second.metrics.unobserved.value() == 5 * 3600 + 55 * 60


def test_throttling_is_retried_with_backoff(kube: Kube, emu: Emulator, clock: FakeClock) -> None:
    """Throttled sends go back to Pending with a backoff and succeed later, exactly once."""
    emu.set_scenario(
        {
            "products": {"prod-paid": {"dimensions": ["users", "gb"]}},
            "throttle": None,
            "faults": [{"op": "MeterUsage", "kind": "throttle", "count": 2}],
        }
    )
    rt = web_metered(kube, emu, clock, '{"users": 1}')
    close_and_send(rt.engine, clock)
    assert (status_of(kube, "users")["phase"], status_of(kube, "users")["errorCode"]) == (
        "Pending",
        "ThrottlingException",
    )
    rt.engine.tick()  # not due yet: no call
    assert rt.metrics.sends.value(dimension="users", result="Transient") == 1.0
    for _ in range(3):
        clock.advance(minutes=15)
        rt.engine.tick()
    assert [(r["dimension"], r["quantity"]) for r in meter_records(emu)] == [("users", "1")]
    assert (status_of(kube, "users")["phase"], status_of(kube, "users")["attempts"]) == ("Sent", 3)
    assert rt.metrics.sends.value(dimension="users", result="Transient") == 2.0


@pytest.mark.parametrize(
    "code",
    [
        "DuplicateRequestException",
        "TimestampOutOfBoundsException",
        "InvalidUsageDimensionException",
    ],
    ids=["duplicate", "timestamp", "dimension"],
)
def test_permanent_errors_fail_the_hour_with_the_code(
    kube: Kube, emu: Emulator, clock: FakeClock, code: str
) -> None:
    """A permanent answer ends the hour in Failed with the AWS code, an Event and a metric."""
    emu.set_scenario(
        {
            "products": {"prod-paid": {"dimensions": ["users", "gb"]}},
            "throttle": None,
            "faults": [{"op": "MeterUsage", "kind": "error", "code": code, "count": 1}],
        }
    )
    rt = web_metered(kube, emu, clock, '{"users": 1}')
    close_and_send(rt.engine, clock)
    assert ("Failed", code) == (
        status_of(kube, "users")["phase"],
        status_of(kube, "users")["errorCode"],
    )
    assert [e.reason for e in kube.events()] == ["HourFailed"]
    assert rt.metrics.sends.value(dimension="users", result="Failed") == 1.0
    clock.advance(minutes=30)
    rt.engine.tick()
    assert meter_records(emu) == []


def test_dry_run_sends_nothing_billable(kube: Kube, emu: Emulator, clock: FakeClock) -> None:
    """With DRY_RUN the hour is sent with DryRun=true and recorded as DryRun, not billed."""
    rt = web_metered(kube, emu, clock, '{"users": 1}', dry_run=True)
    close_and_send(rt.engine, clock)
    assert status_of(kube, "users")["phase"] == "DryRun"
    assert meter_records(emu) == []


def test_a_failing_checkpoint_does_not_stop_closing_or_sending(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """Checkpoints the API server refuses (say, an object too large) are logged and counted;
    the hour is still closed from memory and sent once, and older hours are still sent."""
    rt = web_metered(kube, emu, clock, '{"users": 1}')
    store = rt.engine.store
    real_patch, real_create = store.patch_status, store.create

    def refuse_heads(name: str, status: dict[str, Any], version: str) -> Any:
        if status.get("phase") == "Accumulating":
            raise k8s.ApiException(status=422, reason="Request entity too large")
        return real_patch(name, status, version)

    def refuse_pieces(obj: dict[str, Any], *, answer: bool = True) -> Any:
        if "entries" in obj["spec"]:
            raise k8s.ApiException(status=422, reason="Request entity too large")
        return real_create(obj, answer=answer)

    store.patch_status = refuse_heads  # type: ignore[method-assign]
    store.create = refuse_pieces  # type: ignore[method-assign]
    close_and_send(rt.engine, clock)
    assert [(r["dimension"], r["quantity"]) for r in meter_records(emu)] == [("users", "1")]
    assert status_of(kube, "users")["phase"] == "Sent"
    assert rt.metrics.tick_errors.value() >= 1.0


def test_switching_dry_run_off_bills_from_the_next_closed_hour(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """Hours closed under DRY_RUN stay DryRun (even one still Pending at the restart); the hour
    open when DRY_RUN is switched off is billed for real, once, without any conflict."""
    dry = web_metered(kube, emu, clock, '{"users": 1}', dry_run=True)
    close_and_send(dry.engine, clock)  # 10:00 -> DryRun at 11:03
    clock.advance(hours=1)
    dry.engine.tick()  # 11:00 closed at 12:03 under DRY_RUN: Pending, not yet due
    live = runtime(kube, emu, clock, "AKIDPOD2", dry_run=False)  # restarted without DRY_RUN
    observe(live.engine, WEB, {DIMENSIONS_KEY: '{"users": 1}'})
    clock.advance(minutes=3)
    live.engine.tick()  # takes over only once the old Lease expired
    clock.advance(hours=1, minutes=5)
    live.engine.tick()
    assert phases(kube) == {
        "users@2026-11-28T10:00:00Z": "DryRun",
        "users@2026-11-28T11:00:00Z": "DryRun",
        "users@2026-11-28T12:00:00Z": "Sent",
        "users@2026-11-28T13:00:00Z": "Accumulating",
    }
    assert [(r["hour"], r["caller"]) for r in meter_records(emu)] == [
        ("2026-11-28T12:00:00Z", "AKIDPOD2")
    ]


@pytest.mark.parametrize(
    ("send_zero", "expected"),
    [(False, []), (True, [("gb", "0"), ("users", "0")])],
    ids=["default", "send-zero"],
)
def test_zero_hours(
    kube: Kube, emu: Emulator, clock: FakeClock, send_zero: bool, expected: list[tuple[str, str]]
) -> None:
    """Hours without usage are not sent unless SEND_ZERO, then as one zero record per dimension."""
    rt = web_metered(kube, emu, clock, '{"users": 0}', send_zero=send_zero)
    close_and_send(rt.engine, clock)
    assert expected == [(r["dimension"], r["quantity"]) for r in meter_records(emu)]


def test_only_the_lease_holder_writes_or_sends(kube: Kube, emu: Emulator, clock: FakeClock) -> None:
    """A second instance stays passive while the first renews the Lease, then takes over."""
    first = runtime(kube, emu, clock, "AKIDPOD1")
    second = runtime(kube, emu, clock, "AKIDPOD2")
    for rt in (first, second):
        observe(rt.engine, WEB, {DIMENSIONS_KEY: '{"users": 2}'})
    first.engine.tick()
    second.engine.tick()
    clock.advance(hours=1, minutes=3)
    first.engine.tick()
    second.engine.tick()
    first.engine.tick()
    assert (first.metrics.leader.value(), second.metrics.leader.value()) == (1.0, 0.0)
    assert [(r["dimension"], r["quantity"], r["caller"]) for r in meter_records(emu)] == [
        ("users", "2", "AKIDPOD1")
    ]
    clock.advance(minutes=2)  # the first stopped renewing
    second.engine.tick()
    assert second.metrics.leader.value() == 1.0
    assert len(meter_records(emu)) == 1


def test_operators_of_two_products_in_one_namespace_both_send(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """Two operators (two products) sharing a namespace hold their own Leases and both bill."""
    products = {"prod-paid": {"dimensions": ["users"]}, "prod-two": {"dimensions": ["users"]}}
    emu.set_scenario({"products": products, "throttle": None})
    first = runtime(kube, emu, clock, "AKIDPOD1", lease_name="paid-operator")
    second = runtime(
        kube, emu, clock, "AKIDPOD2", product_code="prod-two", lease_name="two-operator"
    )
    for rt in (first, second):
        observe(rt.engine, WEB, {DIMENSIONS_KEY: '{"users": 2}'})
        rt.engine.tick()
    clock.advance(hours=1, minutes=4)  # closes 10:00 and sends it (past the jitter) in one tick
    for rt in (first, second):
        rt.engine.tick()
    assert (first.metrics.leader.value(), second.metrics.leader.value()) == (1.0, 1.0)
    assert sorted((r["product_code"], r["quantity"]) for r in meter_records(emu)) == [
        ("prod-paid", "2"),
        ("prod-two", "2"),
    ]


def test_invalid_annotation_is_reported_once(kube: Kube, emu: Emulator, clock: FakeClock) -> None:
    """The same bad annotation is reported once, counted, and again only after it changes."""
    rt = runtime(kube, emu, clock, "AKIDPOD1")
    notes = {DIMENSIONS_KEY: '{"users": -1, "cpu": 2}'}
    assert len(observe(rt.engine, WEB, notes)) == 2
    assert observe(rt.engine, WEB, notes, {"readyReplicas": 2}) == ()
    assert len(observe(rt.engine, WEB, {DIMENSIONS_KEY: '{"users": "x"}'})) == 1
    assert rt.metrics.invalid_annotations.value(kind="Deployment") == 3.0
    assert dict(rt.engine.current_rates()) == {}


def test_metrics_report_phases_and_the_oldest_unsent_hour(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """Gauges show hours by phase and the oldest unsent hour against its deadline."""
    rt = web_metered(kube, emu, clock, '{"users": 1, "gb": 1}')
    close_hour(rt.engine, clock)
    text = rt.metrics.render()
    assert 'entitlement_operator_hours{phase="Pending"} 2.0' in text
    assert 'entitlement_operator_workloads{dimension="users"} 1.0' in text
    assert "entitlement_operator_oldest_unsent_hour_age_seconds 3601.0" in text
    # 10:00 is reported as 10:59:59, so AWS takes it until 16:59:59
    assert "entitlement_operator_oldest_unsent_hour_deadline_seconds 21598.0" in text


def test_a_claim_refused_by_the_api_server_re_reads_and_decides_again(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """A claim carrying a stale resourceVersion gets 409 and changes nothing; the hour is read
    again, and as another instance has settled it meanwhile, it is not sent."""
    rt = web_metered(kube, emu, clock, '{"users": 1}')
    close_hour(rt.engine, clock)
    (name,) = [o["metadata"]["name"] for o in kube.hours() if "T10" in o["spec"]["hour"]]

    def settled_by_another(point: str, hour: str) -> None:
        if point == "before_claim":
            status = {"phase": "Sent", "meteringRecordId": "from-another", "owner": "other"}
            k8s.CustomObjectsApi(kube.api).patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                LEDGER_NS,
                PLURAL,
                hour,
                {"status": status},
                _content_type="application/merge-patch+json",
            )

    rt.engine.sender.hook = settled_by_another
    clock.advance(minutes=3)
    rt.engine.tick()
    assert meter_records(emu) == []
    assert kube.mock.conflicts == 1
    assert status_of(kube, "users")["meteringRecordId"] == "from-another"
    assert rt.metrics.fenced.value(step="claim") == 1.0
    assert name


def test_a_request_aws_would_refuse_fails_without_a_call(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """A total beyond AWS's 10 integer digits ends in Failed (InvalidRequest), never sent."""
    rt = runtime(kube, emu, clock, "AKIDPOD1")
    for i in range(11):
        ref = WorkloadRef("shop", "Deployment", f"big-{i}")
        observe(rt.engine, ref, {DIMENSIONS_KEY: '{"users": 999999999}'})
    close_and_send(rt.engine, clock)
    status = status_of(kube, "users")
    assert (status["phase"], status["errorCode"]) == ("Failed", "InvalidRequest")
    assert emu.records()["requests"].get("MeterUsage", 0) == 0


def test_one_failing_hour_does_not_hold_back_the_others(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """If the API server refuses one hour's claim, the other dimensions are still sent."""
    rt = web_metered(kube, emu, clock, '{"users": 1, "gb": 2}')
    close_hour(rt.engine, clock)
    (gb,) = [
        o["metadata"]["name"]
        for o in kube.hours()
        if o["spec"]["dimension"] == "gb" and "T10" in o["spec"]["hour"]
    ]
    failure = kmock.KubernetesError(status=500, reason="InternalError", message="etcd timeout")
    kube.mock["patch"][kmock.name(gb)] << failure
    clock.advance(minutes=3)
    rt.engine.tick()
    assert [r["dimension"] for r in meter_records(emu)] == ["users"]
    assert rt.metrics.tick_errors.value() == 1.0


def test_metrics_stamp_each_completed_tick_and_count_the_billed_quantity(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """A completed run stamps the wall clock (for the not-ticking alert), and an hour accepted by
    MeterUsage adds its quantity per dimension (for the hourly-quantity panel)."""
    rt = web_metered(kube, emu, clock, '{"users": 3, "gb": "1.5"}')
    rt.engine.wall = lambda: 1_800_000_000.5
    close_and_send(rt.engine, clock)
    assert rt.metrics.last_tick.value() == 1_800_000_000.5
    assert rt.metrics.sent_quantity.value(dimension="users", result="Sent") == 3.0
    assert rt.metrics.sent_quantity.value(dimension="gb", result="Sent") == 1.5
    text = rt.metrics.render()
    assert "entitlement_operator_last_tick_timestamp_seconds 1.8000000005e+09" in text  # exact
    assert 'entitlement_operator_sent_quantity_total{dimension="gb",result="Sent"} 1.5' in text
