"""Opt-in end-to-end tests of the metering operator on a real Kubernetes API server.

Runs only with `pytest --with-e2e tests/e2e` and a reachable KUBECONFIG (kind, k3d, minikube, EKS);
never in CI here (no cluster). No image is needed: the operator runs in this process (real kopf
watches, the real ledger CRD and Lease on the cluster) with a fake clock, and sends to the local
Metering emulator, so an hour passes in a second. What kmock cannot show is checked here: the CRD
is accepted (structural schema, status subresource, printer columns), status patches do not touch
spec, and a claim with a stale resourceVersion is refused with 409.
Each test gets its own namespace, deleted afterwards; the CRD is left installed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import kopf
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.operator import handlers, ledger
from entitlement_sidecar.operator.annotations import DIMENSIONS_KEY
from entitlement_sidecar.operator.ledger import GROUP, PLURAL, VERSION
from entitlement_sidecar.operator.metrics import Metrics
from entitlement_sidecar.operator.settings import OperatorSettings
from entitlement_sidecar.operator.store import LedgerStore
from entitlement_sidecar.operator.wiring import Runtime, build
from tests.operator.harness import START as HOUR10
from tests.operator.harness import Crash, FakeClock, crash_at

pytestmark = pytest.mark.e2e
assert handlers.startup is not None  # registers the kopf handlers

CRD = (
    Path(__file__).resolve().parents[2]
    / "charts/entitlement-operator/files/hourlyusages.metering.entitlement-sidecar.io.yaml"
)
SCENARIO = {"products": {"prod-paid": {"dimensions": ["users", "gb"]}}, "throttle": None}


@pytest.fixture(scope="module")
def api() -> Iterator[k8s.ApiClient]:
    """An API client for the cluster in KUBECONFIG, with the ledger CRD installed."""
    client: k8s.ApiClient = k8s_config.new_client_from_config()  # type: ignore[no-untyped-call]
    crds = k8s.ApiextensionsV1Api(client)
    body = yaml.safe_load(CRD.read_text())
    try:
        crds.create_custom_resource_definition(body)
    except k8s.ApiException as error:
        if error.status != 409:  # already installed is fine
            raise
    wait(lambda: _established(crds, body["metadata"]["name"]), 60)
    yield client
    client.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def namespace(api: k8s.ApiClient) -> Iterator[str]:
    name = f"es-op-e2e-{uuid.uuid4().hex[:8]}"
    core = k8s.CoreV1Api(api)
    core.create_namespace(cast(Any, {"metadata": {"name": name}}))
    yield name
    core.delete_namespace(name)


def _established(crds: k8s.ApiextensionsV1Api, name: str) -> bool:
    crd = crds.read_custom_resource_definition(name)
    conditions = crd.status.conditions if crd.status else None
    return any(c.type == "Established" and c.status == "True" for c in conditions or [])


def wait(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.5)


def runtime(
    api: k8s.ApiClient, namespace: str, emu: Emulator, clock: FakeClock, caller: str, **hook: Any
) -> Runtime:
    settings = OperatorSettings.model_validate(
        {
            "product_code": "prod-paid",
            "dimensions": ("gb", "users"),
            "ledger_namespace": namespace,
            "namespaces": (namespace,),
        }
    )
    return build(
        settings,
        api,
        emu.client(access_key_id=caller),
        now=clock,
        rng=lambda: 0.5,
        identity=f"e2e-{caller}",
        metrics=Metrics(),
        **hook,
    )


def deploy(api: k8s.ApiClient, namespace: str, name: str, notes: dict[str, str]) -> None:
    labels = {"app": name}
    body = {
        "metadata": {"name": name, "annotations": notes},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]},
            },
        },
    }
    k8s.AppsV1Api(api).create_namespaced_deployment(namespace, cast(Any, body))


def hours(api: k8s.ApiClient, namespace: str) -> list[dict[str, Any]]:
    """The hour objects (not the checkpoint shards or allocation parts)."""
    answer = k8s.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, label_selector=ledger.OPEN_LABEL
    )
    return cast(list[dict[str, Any]], cast(dict[str, Any], answer)["items"])


def created(store: LedgerStore, dimension: str) -> str:
    """Create the 10:00 HourlyUsage of `dimension`; return its name."""
    obj = ledger.new_object("prod-paid", dimension, HOUR10, store.namespace)
    store.create(obj)
    return str(obj["metadata"]["name"])


def run_kopf(rt: Runtime, namespace: str) -> tuple[threading.Thread, threading.Event]:
    stop, ready = threading.Event(), threading.Event()
    memo = kopf.Memo(runtime=rt, drive_ticks=False)
    thread = threading.Thread(
        target=kopf.run,
        daemon=True,
        kwargs={
            "standalone": True,
            "namespaces": [namespace],
            "memo": memo,
            "stop_flag": stop,
            "ready_flag": ready,
        },
    )
    thread.start()
    assert ready.wait(60)
    return thread, stop


def test_crd_shows_the_audit_columns(api: k8s.ApiClient, namespace: str) -> None:
    """The API server accepts the CRD and serves the printer columns for `kubectl get hu`."""
    store = LedgerStore(api, namespace)
    name = created(store, "users")
    obj = store.patch_status(
        name, {"phase": "Sent", "quantity": "4.5", "meteringRecordId": "rec-1"}, ""
    )
    assert obj is not None
    assert obj["spec"]["dimension"] == "users"
    answer = api.call_api(
        *api.param_serialize(
            "GET",
            f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}",
            header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        )
    )
    table = yaml.safe_load(answer.read())  # type: ignore[no-untyped-call]
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns[:6] == ["Name", "Dimension", "Hour", "Quantity", "Phase", "Record"]
    assert table["rows"][0]["cells"][1:6] == [
        "users",
        "2026-11-28T10:00:00Z",
        "4.5",
        "Sent",
        "rec-1",
    ]


def test_hour_is_billed_once_across_a_crash(api: k8s.ApiClient, namespace: str) -> None:
    """Watched Deployments give one record per dimension, even across a crash after the call."""
    clock = FakeClock()
    with Emulator(now=clock, scenario=SCENARIO) as emu:
        deploy(api, namespace, "web", {DIMENSIONS_KEY: '{"users": 3, "gb": "1.5"}'})
        first = runtime(api, namespace, emu, clock, "AKIDE2E1", hook=crash_at("after_call"))
        thread, stop = run_kopf(first, namespace)
        try:
            wait(lambda: len(first.engine.current_rates()) == 1)
            wait(first.engine.ready)  # every kind listed: only then is the Lease taken
            first.engine.tick()
            clock.advance(hours=1, minutes=3)
            with pytest.raises(Crash):
                first.engine.tick()
        finally:
            stop.set()
            thread.join(30)
        clock.advance(minutes=7)  # the Lease expired and the dead pod's claim is past its grace
        second = runtime(api, namespace, emu, clock, "AKIDE2E2")
        thread, stop = run_kopf(second, namespace)
        try:
            wait(lambda: len(second.engine.current_rates()) == 1)
            wait(second.engine.ready)  # every kind listed: only then is the Lease taken
            second.engine.tick()
        finally:
            stop.set()
            thread.join(30)
        records = emu.records()["meter_usage"]
    assert sorted((r["dimension"], r["quantity"]) for r in records) == [
        ("gb", "1.5"),
        ("users", "3"),
    ]
    done = [o for o in hours(api, namespace) if o["spec"]["hour"] == "2026-11-28T10:00:00Z"]
    assert {o["status"]["phase"] for o in done} == {"Sent"}
    assert [o["spec"]["dimension"] for o in done if o["status"].get("resent")] != []
    meta = k8s.AppsV1Api(api).read_namespaced_deployment("web", namespace).metadata
    assert meta is not None
    assert not meta.finalizers
    assert set(meta.annotations or {}) <= {
        DIMENSIONS_KEY,
        "deployment.kubernetes.io/revision",
    }


def test_stale_claim_is_refused_by_the_api_server(api: k8s.ApiClient, namespace: str) -> None:
    """A status write carrying an outdated resourceVersion gets 409 and changes nothing."""
    store = LedgerStore(api, namespace)
    name = created(store, "gb")
    first = store.patch_status(name, {"phase": "Pending"}, "")
    assert first is not None
    stale = first["metadata"]["resourceVersion"]
    assert store.patch_status(name, {"attempts": 1}, stale) is not None
    assert store.patch_status(name, {"phase": "Sending"}, stale) is None
    assert store.get(name)["status"]["phase"] == "Pending"  # type: ignore[index]
