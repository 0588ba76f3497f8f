"""Crash at every step of the send sequence, restart as a new pod: no hour twice, none lost."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from kubernetes import client as k8s

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.operator import ledger
from entitlement_sidecar.operator.annotations import DIMENSIONS_KEY, TAGS_KEY, WorkloadRef
from entitlement_sidecar.operator.engine import Engine
from tests.operator.harness import LEDGER_NS, PRODUCT, Crash, FakeClock, Kube, crash_at, runtime

WEB = WorkloadRef("shop", "Deployment", "web")
API = WorkloadRef("shop", "Deployment", "api")
NOTES = {WEB: '{"users": 3, "gb": "1.5"}', API: '{"users": 1}'}


def watch_all(engine: Engine) -> None:
    """What a fresh watch does at start: every annotated workload is observed once."""
    for ref, raw in NOTES.items():
        engine.observe(ref, {DIMENSIONS_KEY: raw}, {}, gone=False)


def hour10(emu: Emulator) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = emu.records()["meter_usage"]
    return sorted(
        (r for r in records if r["hour"].startswith("2026-11-28T10")),
        key=lambda r: (r["dimension"], r["caller"]),
    )


def run_until_crash(kube: Kube, emu: Emulator, clock: FakeClock, point: str) -> None:
    """Instance 1 meters 10:00-11:00 and dies at `point` while closing or sending 10:00."""
    engine = runtime(kube, emu, clock, "AKIDPOD1", hook=crash_at(point)).engine
    watch_all(engine)
    engine.tick()

    def run() -> None:
        for minutes in (30, 29.5, 1, 2.5):  # 10:30, 10:59:30, 11:00:30, 11:03
            clock.advance(minutes=minutes)
            engine.tick()

    with pytest.raises(Crash):
        run()


@pytest.mark.parametrize(
    ("point", "ambiguous"),
    [
        ("before_write_ahead", False),
        ("after_write_ahead", False),
        ("after_claim", True),
        ("after_call", True),
    ],
    ids=["before-ledger-write", "after-ledger-write", "after-claim", "after-call"],
)
def test_restart_after_crash_sends_each_hour_once(
    kube: Kube, emu: Emulator, clock: FakeClock, point: str, ambiguous: bool
) -> None:
    """Whatever step the crash hit, the restarted pod completes the hour once per dimension
    (an hour the dead pod had claimed only after the resend grace: it might just be stalled)."""
    run_until_crash(kube, emu, clock, point)
    clock.advance(minutes=2)  # the dead holder's Lease expires
    second = runtime(kube, emu, clock, "AKIDPOD2")
    watch_all(second.engine)
    second.engine.tick()
    owners = [o["status"].get("owner") for o in kube.hours() if o["status"]["phase"] == "Sending"]
    assert (["operator-AKIDPOD1"] if ambiguous else []) == owners  # left alone within the grace
    clock.advance(minutes=5)  # past the grace of the dead pod's claim
    second.engine.tick()
    records = hour10(emu)
    assert [(r["dimension"], r["quantity"]) for r in records] == [("gb", "1.5"), ("users", "4")]
    statuses = {
        o["spec"]["dimension"]: o["status"] for o in kube.hours() if "T10" in o["spec"]["hour"]
    }
    assert {"Sent"} == {s["phase"] for s in statuses.values()}
    assert {r["metering_record_id"] for r in records} == {
        s["meteringRecordId"] for s in statuses.values()
    }
    resent = {s.get("resent", False) for s in statuses.values()}
    # only the dimension in flight at the crash is ambiguous; the other was never claimed
    assert ambiguous == (True in resent)
    assert (1.0 if ambiguous else 0.0) == sum(
        second.metrics.ambiguous_resends.value(dimension=d) for d in ("gb", "users")
    )
    second.engine.tick()  # later ticks never send an hour again
    assert len(records) == len(hour10(emu))


def test_ambiguous_resend_with_caller_scoped_tokens_is_the_residual_risk(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """If AWS scoped ClientTokens per caller, the ambiguous resend bills twice: it is flagged."""
    emu.set_scenario(
        {
            "products": {"prod-paid": {"dimensions": ["users", "gb"]}},
            "throttle": None,
            "client_token_scope": "caller",
        }
    )
    run_until_crash(kube, emu, clock, "after_call")
    clock.advance(minutes=7)  # the Lease expired and the claim's grace is over: a crash
    second = runtime(kube, emu, clock, "AKIDPOD2")
    watch_all(second.engine)
    second.engine.tick()
    records = hour10(emu)
    twice = [
        r["dimension"]
        for r in records
        if r["caller"] == "AKIDPOD2"
        and r["dimension"] in {x["dimension"] for x in records if x["caller"] == "AKIDPOD1"}
    ]
    assert len(twice) == 1
    flagged = [o for o in kube.hours() if o["status"].get("resent")]
    assert [twice[0]] == [o["spec"]["dimension"] for o in flagged]
    assert second.metrics.ambiguous_resends.value(dimension=twice[0]) == 1.0


def test_a_crashed_send_found_after_the_window_is_expired_as_unknown(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """An hour left Sending by a crash and found only after the window is Expired without a
    resend, and its audit trail says it may have been billed (it was), not "not sent"."""
    run_until_crash(kube, emu, clock, "after_call")
    clock.advance(hours=6)
    second = runtime(kube, emu, clock, "AKIDPOD2")
    second.engine.tick()
    [sent] = hour10(emu)  # the first dimension's call went through just before the crash
    messages = {
        o["spec"]["dimension"]: o["status"]["message"]
        for o in kube.hours()
        if o["spec"]["hour"].startswith("2026-11-28T10")
    }
    assert messages[sent["dimension"]].startswith("outcome unknown: operator-AKIDPOD1 crashed")
    [other] = set(messages) - {sent["dimension"]}  # still Pending at the crash: truly unsent
    assert messages[other].startswith("not sent within the 6-hour window")


def checkpointed_then_dead(kube: Kube, emu: Emulator, clock: FakeClock, minutes: float) -> None:
    """Pod 1 meters WEB (6 users) from now, checkpoints `minutes` later, then dies."""
    first = runtime(kube, emu, clock, "AKIDPOD1").engine
    first.observe(WEB, {DIMENSIONS_KEY: '{"users": 6}'}, {}, gone=False)
    first.tick()
    clock.advance(minutes=minutes)
    first.tick()


def test_restart_mid_hour_loses_only_the_gap(kube: Kube, emu: Emulator, clock: FakeClock) -> None:
    """A restart mid-hour keeps the checkpoint; only checkpoint-to-restart is not counted."""
    checkpointed_then_dead(kube, emu, clock, minutes=20)  # 10:20 checkpoint; dies at 10:25
    clock.advance(minutes=10)
    second = runtime(kube, emu, clock, "AKIDPOD2").engine
    second.observe(WEB, {DIMENSIONS_KEY: '{"users": 6}'}, {}, gone=False)
    second.tick()  # 10:30: the Lease renewed at 10:20 expired; resume from that checkpoint
    clock.advance(minutes=35)
    second.tick()  # 11:05: close and send
    records = hour10(emu)
    # 10:00-10:20 (2.0) + 10:30-11:00 (3.0); 10:20-10:30 is the restart's loss
    assert [(r["dimension"], r["quantity"], r["caller"]) for r in records] == [
        ("users", "5", "AKIDPOD2")
    ]


def test_a_second_crash_keeps_the_first_gap_out(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """The gap of a first crash stays with the hour (its ledger objects keep it, `unobserved`),
    so a second crash before the hour closes leaves both gaps out, and only them."""
    checkpointed_then_dead(kube, emu, clock, minutes=10)  # 10:10 checkpoint; the pod dies
    clock.advance(minutes=5)
    second = runtime(kube, emu, clock, "AKIDPOD2").engine
    second.observe(WEB, {DIMENSIONS_KEY: '{"users": 6}'}, {}, gone=False)
    second.tick()  # 10:15: resumes, 10:10-10:15 unobserved
    clock.advance(minutes=10)
    second.tick()  # 10:25: checkpoint (nothing changed: only the hour object is written)
    (hour,) = kube.hours()
    assert hour["status"]["unobserved"] == ["2026-11-28T10:10:00Z/2026-11-28T10:15:00Z"]
    clock.advance(minutes=5)  # the second pod dies at 10:30
    third = runtime(kube, emu, clock, "AKIDPOD3").engine
    third.observe(WEB, {DIMENSIONS_KEY: '{"users": 6}'}, {}, gone=False)
    third.tick()  # 10:30: resumes, 10:25-10:30 unobserved
    clock.advance(minutes=33)
    third.tick()  # 11:03
    # 6 users for the 50 minutes somebody watched
    assert [(r["quantity"], r["caller"]) for r in hour10(emu)] == [("5", "AKIDPOD3")]


def test_an_outage_longer_than_the_window_is_alerted_never_silent(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """Down for 7 hours: the checkpointed hour ends Expired, the unobserved time is counted and
    an ObservationGap Event says which usage was not billed; nothing is sent late."""
    checkpointed_then_dead(kube, emu, clock, minutes=30)  # 10:30 checkpoint; dies at 10:31
    clock.advance(hours=7)
    second = runtime(kube, emu, clock, "AKIDPOD2")
    second.engine.observe(WEB, {DIMENSIONS_KEY: '{"users": 6}'}, {}, gone=False)
    second.engine.tick()  # 17:30
    phases = [(o["spec"]["hour"][11:13], o["status"]["phase"]) for o in kube.hours()]
    assert phases == [("10", "Expired"), ("17", "Accumulating")]
    events = {e.reason: e.message for e in kube.events()}
    assert sorted(events) == ["HourExpired", "ObservationGap"]
    assert "from 2026-11-28T10:30:00Z to 2026-11-28T17:30:00Z (7.0 h)" in events["ObservationGap"]
    assert second.metrics.unobserved.value() == 7 * 3600
    assert emu.records()["meter_usage"] == []


def test_a_quick_restart_is_counted_without_an_alert(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """A restart inside GAP_ALERT only adds its gap to the unobserved-time counter."""
    checkpointed_then_dead(kube, emu, clock, minutes=1)  # 10:01 checkpoint; the pod dies
    clock.advance(minutes=2)
    second = runtime(kube, emu, clock, "AKIDPOD2")
    second.engine.tick()  # 10:03: the Lease renewed at 10:01 expired at 10:02
    assert second.metrics.leader.value() == 1.0
    assert second.metrics.unobserved.value() == 120.0
    assert kube.events() == []


def test_graceful_restart_loses_only_the_downtime(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """On SIGTERM the pod checkpoints and releases the Lease: the next pod resumes at once."""
    first = runtime(kube, emu, clock, "AKIDPOD1").engine
    first.observe(WEB, {DIMENSIONS_KEY: '{"users": 6}'}, {}, gone=False)
    first.tick()  # 10:00
    clock.advance(minutes=25)
    first.shutdown()  # 10:25, nothing checkpointed since 10:00 until now
    clock.advance(minutes=1)
    second = runtime(kube, emu, clock, "AKIDPOD2")
    second.engine.observe(WEB, {DIMENSIONS_KEY: '{"users": 6}'}, {}, gone=False)
    second.engine.tick()  # 10:26: the Lease was released, no need to wait for its expiry
    assert second.metrics.leader.value() == 1.0
    clock.advance(minutes=37)
    second.engine.tick()  # 11:03
    # 10:00-10:25 (2.5) + 10:26-11:00 (3.4): only the minute of downtime is missing
    assert [(r["quantity"], r["caller"]) for r in hour10(emu)] == [("5.9", "AKIDPOD2")]


def test_tag_keys_changed_mid_hour_still_bill_the_hour(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """A restart with other TAG_KEYS mid-hour (checkpointed tags + new ones: more than 5 keys)
    still bills the hour once, keeping the user tag keys that carry the most quantity."""
    first = runtime(kube, emu, clock, "AKIDPOD1", tag_keys=("a", "b", "c")).engine
    old = '{"a": "1", "b": "2", "c": "3"}'
    first.observe(WEB, {DIMENSIONS_KEY: '{"users": 1}', TAGS_KEY: old}, {}, gone=False)
    first.tick()
    clock.advance(minutes=20)
    first.observe(WEB, {}, {}, gone=True)  # deleted at 10:20, its a/b/c tags checkpointed
    first.tick()
    first.shutdown()
    second = runtime(kube, emu, clock, "AKIDPOD2", tag_keys=("d",)).engine
    db = WorkloadRef("shop", "StatefulSet", "db")
    second.observe(db, {DIMENSIONS_KEY: '{"users": 3}', TAGS_KEY: '{"d": "4"}'}, {}, gone=False)
    second.tick()
    clock.advance(minutes=45)
    second.tick()  # 11:05: close and send 10:00
    (record,) = hour10(emu)
    assert record["quantity"] == "2.333333"  # 1 x 20 min + 3 x 40 min
    keys = {key for allocation in record["allocations"] for key in allocation["tags"]}
    assert keys == {"namespace", "workload", "a", "b", "d"}


def test_an_empty_object_left_by_a_crash_is_settled(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """An hour object created but never checkpointed (crash in between) ends Skipped once its
    hour is over, instead of being listed as open forever; nothing is sent for it."""
    bare = ledger.new_object(PRODUCT, "users", clock() - timedelta(hours=1), LEDGER_NS)
    k8s.CustomObjectsApi(kube.api).create_namespaced_custom_object(
        ledger.GROUP, ledger.VERSION, LEDGER_NS, ledger.PLURAL, bare
    )
    rt = runtime(kube, emu, clock, "AKIDPOD1")
    rt.engine.tick()
    (obj,) = kube.hours()
    assert (obj["status"]["phase"], obj["metadata"]["labels"][ledger.OPEN_LABEL]) == (
        "Skipped",
        "false",
    )
    assert rt.metrics.hours.value(phase="Accumulating") == 0.0
    assert emu.records()["meter_usage"] == []
