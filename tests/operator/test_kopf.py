"""The real kopf operator (our handlers) against kmock: watches in, one record per dimension out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import kmock
import kopf
import pytest
from kubernetes import client as k8s

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.operator import handlers  # registers the handlers
from entitlement_sidecar.operator.annotations import DIMENSIONS_KEY, PER_REPLICA_KEY, TAGS_KEY
from entitlement_sidecar.operator.store import LEASE_NAME, watchable
from entitlement_sidecar.operator.wiring import Runtime
from tests.operator.harness import LEDGER_NS, FakeClock, Kube, runtime, wait_for

assert handlers.startup is not None  # registers the kopf handlers
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


@contextmanager
def operator(
    kube: Kube, rt: Runtime, namespaces: tuple[str, ...] = (), *, drive_ticks: bool = False
) -> Iterator[None]:
    """Run kopf with our handlers in a thread; the test drives `tick()` itself unless asked."""
    stop, ready = threading.Event(), threading.Event()
    connection = kopf.ConnectionInfo(server=kube.url)
    memo = kopf.Memo(
        runtime=rt, connection=connection, drive_ticks=drive_ticks, namespaces=list(namespaces)
    )
    thread = threading.Thread(
        target=kopf.run,
        kwargs={
            "standalone": True,
            "clusterwide": not namespaces,
            "namespaces": list(namespaces),
            "memo": memo,
            "stop_flag": stop,
            "ready_flag": ready,
        },
        daemon=True,
    )
    thread.start()
    assert ready.wait(20), "kopf did not start"
    try:
        yield
    finally:
        stop.set()
        thread.join(20)


def records(emu: Emulator) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = emu.records()["meter_usage"]
    return sorted(found, key=lambda r: r["dimension"])


def test_watched_workloads_are_billed_once_per_dimension(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """Annotated Deployments, StatefulSets and DaemonSets end as one record per dimension."""
    rt = runtime(kube, emu, clock, "AKIDPOD1")
    kube.apply_workload("Deployment", "shop", "web", {DIMENSIONS_KEY: '{"users": 5}'})
    kube.apply_workload(
        "StatefulSet",
        "shop",
        "db",
        {DIMENSIONS_KEY: '{"users": 1, "gb": 2}', PER_REPLICA_KEY: "true"},
        {"readyReplicas": 2},
    )
    kube.apply_workload("Deployment", "shop", "plain", {"app": "x"})
    with operator(kube, rt):
        wait_for(lambda: len(rt.engine.current_rates()) == 2)
        wait_for(rt.engine.ready)  # every kind listed: only then is the Lease taken
        rt.engine.tick()
        assert rt.metrics.leader.value() == 1.0
        clock.advance(minutes=30)
        kube.apply_workload(
            "DaemonSet",
            "ops",
            "agent",
            {DIMENSIONS_KEY: '{"gb": 1}', TAGS_KEY: '{"team": "infra"}'},
        )
        kube.delete_workload("Deployment", "shop", "web")
        wait_for(
            lambda: set(rt.engine.current_rates()) == {"shop/StatefulSet/db", "ops/DaemonSet/agent"}
        )
        clock.advance(minutes=33)
        rt.engine.tick()
        rt.engine.tick()
    # users: web 5 x 0.5h + db 1 x 2 replicas; gb: db 2 x 2 + agent 1 x 0.5h
    assert [(r["dimension"], r["quantity"]) for r in records(emu)] == [
        ("gb", "4.5"),
        ("users", "4.5"),
    ]
    gb = {
        a["tags"]["workload"]: (a["quantity"], a["tags"].get("team"))
        for a in records(emu)[0]["allocations"]
    }
    assert gb == {"StatefulSet/db": ("4", None), "DaemonSet/agent": ("0.5", "infra")}
    assert {"Sent"} == {o["status"]["phase"] for o in kube.hours() if "T10" in o["spec"]["hour"]}


def test_nothing_is_written_to_customer_workloads(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """Workloads keep exactly their own annotations: no finalizers, no kopf bookkeeping."""
    rt = runtime(kube, emu, clock, "AKIDPOD1")
    notes = {DIMENSIONS_KEY: '{"users": 1}'}
    kube.apply_workload("Deployment", "shop", "web", notes)
    with operator(kube, rt):
        wait_for(lambda: len(rt.engine.current_rates()) == 1)
        rt.engine.tick()
    obj = kube.mock.objects[kmock.resource("apps/v1/deployments"), "shop", "web"]
    assert notes == obj["metadata"]["annotations"]
    assert "finalizers" not in obj["metadata"]
    writes = [
        r
        for r in kube.mock
        if r.method in {"PATCH", "PUT", "POST"}
        and r.resource is not None
        and r.resource.group == "apps"
    ]
    assert len(writes) == 1  # the test's own creation


def test_bad_annotation_gets_one_warning_event(kube: Kube, emu: Emulator, clock: FakeClock) -> None:
    """A bad annotation produces one Warning Event on the workload; the operator keeps metering."""
    rt = runtime(kube, emu, clock, "AKIDPOD1")
    kube.apply_workload(
        "Deployment", "shop", "bad", {DIMENSIONS_KEY: '{"users": "lots", "cpu": 1}'}
    )
    kube.apply_workload("Deployment", "shop", "good", {DIMENSIONS_KEY: '{"users": 1}'})
    with operator(kube, rt):
        wait_for(lambda: len(kube.events()) == 1)
        kube.apply_workload(
            "Deployment",
            "shop",
            "bad",
            {DIMENSIONS_KEY: '{"users": "lots", "cpu": 1}'},
            {"readyReplicas": 1},
        )
        wait_for(lambda: rt.metrics.invalid_annotations.value(kind="Deployment") == 2.0)
        assert list(rt.engine.current_rates()) == ["shop/Deployment/good"]
    (event,) = kube.events()
    assert (event.type, event.reason, event.involved_object.name, event.involved_object.kind) == (
        "Warning",
        "InvalidMeteringAnnotation",
        "bad",
        "Deployment",
    )
    assert "'users'" in event.message
    assert "'cpu'" in event.message
    assert "\n" not in event.message


def test_forbidden_namespace_is_reported_and_left_out(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """A namespace the operator may not list (403) gets one clear line and is not watched."""
    forbidden = kmock.KubernetesError(status=403, reason="Forbidden", message="RBAC: no access")
    kube.mock[kmock.namespace("secret")] << forbidden
    allowed, problems = watchable(kube.api, ["shop", "secret"])
    assert allowed == ["shop"]
    assert len(problems) == 1
    assert "namespace 'secret' (403 Forbidden)" in problems[0]
    assert "NOT metered" in problems[0]


def test_operator_keeps_metering_allowed_namespaces(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """With the forbidden namespace left out, kopf runs and meters the allowed one."""
    kube.mock[kmock.namespace("secret")] << kmock.KubernetesError(status=403, reason="Forbidden")
    rt = runtime(kube, emu, clock, "AKIDPOD1", namespaces=("shop", "secret"))
    allowed, _ = watchable(kube.api, ["shop", "secret"])
    kube.apply_workload("Deployment", "shop", "web", {DIMENSIONS_KEY: '{"users": 1}'})
    with operator(kube, rt, namespaces=tuple(allowed)):
        wait_for(lambda: len(rt.engine.current_rates()) == 1)
        kube.apply_workload("Deployment", "shop", "api", {DIMENSIONS_KEY: '{"users": 1}'})
        wait_for(lambda: len(rt.engine.current_rates()) == 2)
    assert sorted(rt.engine.current_rates()) == ["shop/Deployment/api", "shop/Deployment/web"]


def test_cluster_wide_without_permission_is_refused(kube: Kube) -> None:
    """Cluster-wide mode without list permission leaves nothing to watch (the CLI exits 2)."""
    kube.mock[kmock.resource("apps/v1/deployments")] << kmock.KubernetesError(
        status=403, reason="Forbidden"
    )
    allowed, problems = watchable(kube.api, [])
    assert allowed == []
    assert "the cluster (all namespaces)" in problems[0]


def test_background_loop_ticks_and_shutdown_releases_the_lease(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """In production the loop ticks by itself; on stop it checkpoints and gives the Lease up."""
    rt = runtime(kube, emu, clock, "AKIDPOD1", tick_seconds=1)
    kube.apply_workload("Deployment", "shop", "web", {DIMENSIONS_KEY: '{"users": 1}'})
    with operator(kube, rt, drive_ticks=True):
        wait_for(lambda: rt.metrics.leader.value() == 1.0)
        wait_for(lambda: len(rt.engine.current_rates()) == 1)
        clock.advance(minutes=2)  # a checkpoint is due
        wait_for(lambda: rt.metrics.checkpoints.value(dimension="users") >= 1.0)
        clock.advance(minutes=28)
    (hour,) = kube.hours()
    assert hour["status"]["observedUntil"] == "2026-11-28T10:30:00Z"  # the final checkpoint
    lease = k8s.CoordinationV1Api(kube.api).read_namespaced_lease(LEASE_NAME, LEDGER_NS)
    assert lease.spec is not None
    assert lease.spec.holder_identity is None


def test_the_cli_runs_the_operator_until_sigterm(kube: Kube, emu: Emulator, tmp_path: Path) -> None:
    """`entitlement-sidecar operator` meters through kmock, serves metrics, exits 0 on SIGTERM."""
    kube.apply_workload("Deployment", "shop", "web", {DIMENSIONS_KEY: '{"users": 1}'})
    config = kube.kubeconfig(tmp_path / "kubeconfig")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "KUBECONFIG": str(config),
        **emu.env(access_key_id="AKIDCLI"),
        "ENTITLEMENT_OPERATOR_PRODUCT_CODE": "prod-paid",
        "ENTITLEMENT_OPERATOR_DIMENSIONS": "users,gb",
        "ENTITLEMENT_OPERATOR_METRICS_PORT": "0",
        "ENTITLEMENT_OPERATOR_TICK_SECONDS": "1",
        "POD_NAMESPACE": LEDGER_NS,
        "POD_NAME": "operator-0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "entitlement_sidecar", "operator"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        port = _metrics_port(process.stderr)
        wait_for(lambda: 'entitlement_operator_workloads{dimension="users"} 1.0' in _get(port), 30)
        lease = k8s.CoordinationV1Api(kube.api).read_namespaced_lease(LEASE_NAME, LEDGER_NS)
        assert lease.spec is not None
        assert (lease.spec.holder_identity or "").startswith("operator-0-")
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    assert code == 0


def _metrics_port(stream: IO[str]) -> int:
    for line in stream:
        if "serving /metrics" in line:
            return int(json.loads(line)["port"])
    raise AssertionError("the operator never served its metrics")


def _get(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            return str(answer.read().decode())
    except OSError:
        return ""
