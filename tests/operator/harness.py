"""Test harness for the operator: kmock in a background thread, a fake clock, runtimes.

kmock is an in-memory Kubernetes API on a real loopback socket; it runs in its own event loop
thread so tests (and kopf, in its own thread) talk to it over HTTP like to a real API server.
`apiserver.VersionedKubernetes` adds the two API-server rules kmock lacks and the ledger relies on:
resourceVersion preconditions (409 on a stale write) and label selectors.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import kmock
from kubernetes import client as k8s

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.operator.ledger import GROUP, OPEN_LABEL, PLURAL, VERSION
from entitlement_sidecar.operator.metrics import Metrics
from entitlement_sidecar.operator.sender import Hook, no_hook
from entitlement_sidecar.operator.settings import OperatorSettings
from entitlement_sidecar.operator.wiring import Runtime, build
from tests.operator.apiserver import VersionedKubernetes

LEDGER_NS = "metering"
PRODUCT = "prod-paid"
START = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


class FakeClock:
    """A settable, thread-safe UTC clock."""

    def __init__(self, start: datetime = START) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now


class Crash(BaseException):
    """Raised by a crash hook: the process dies there (a BaseException: nothing may catch it)."""


def crash_at(point: str) -> Hook:
    """A hook that crashes the sequence the first time it reaches `point`."""

    def hook(reached: str, name: str) -> None:
        if reached == point:
            raise Crash(f"crash at {point} ({name})")

    return hook


class Kube:
    """A kmock KubernetesEmulator serving on 127.0.0.1 from a background event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.mock: VersionedKubernetes = self._run(self._start())
        self.url = str(self._server.url).rstrip("/")
        self.api = k8s.ApiClient(k8s.Configuration(host=self.url))

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _start(self) -> VersionedKubernetes:
        mock = VersionedKubernetes()
        await mock.__aenter__()
        self._server = kmock.Server(mock)
        await self._server.__aenter__()
        info = kmock.ResourceInfo
        mock.resources["v1/namespaces"] = info(
            kind="Namespace", namespaced=False, verbs={"list", "watch", "get"}
        )
        mock.resources["v1/events"] = info(
            kind="Event", namespaced=True, verbs={"create", "list", "get"}
        )
        for plural, kind in (
            ("deployments", "Deployment"),
            ("statefulsets", "StatefulSet"),
            ("daemonsets", "DaemonSet"),
        ):
            mock.resources[f"apps/v1/{plural}"] = info(
                kind=kind,
                namespaced=True,
                verbs={"get", "list", "watch", "create", "patch", "delete"},
            )
        mock.resources[f"{GROUP}/{VERSION}/{PLURAL}"] = info(
            kind="HourlyUsage",
            namespaced=True,
            verbs={"get", "list", "watch", "create", "patch", "delete"},
            subresources={"status"},
        )
        mock.resources["coordination.k8s.io/v1/leases"] = info(
            kind="Lease", namespaced=True, verbs={"get", "create", "update", "patch"}
        )
        return mock

    def close(self) -> None:
        async def stop() -> None:
            await self._server.__aexit__(None, None, None)
            await self.mock.__aexit__(None, None, None)

        self._run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.api.close()  # type: ignore[no-untyped-call]

    def forget_requests(self) -> None:
        """Empty kmock's request log. kmock looks through every request it served for each new
        one (to find the reaction that applies), so a long test or benchmark slows down
        quadratically; what is asserted about requests afterwards sees only newer ones."""

        async def forget() -> None:
            self.mock._requests.clear()

        self._run(forget())

    # -- conveniences over the real API (so watches see the changes) --

    def hours(self) -> list[dict[str, Any]]:
        """The hour objects of the ledger (not its checkpoint shards or allocation parts)."""
        return [o for o in self.ledger() if OPEN_LABEL in (o["metadata"].get("labels") or {})]

    def ledger(self) -> list[dict[str, Any]]:
        """Every HourlyUsage object, by name."""
        answer = k8s.CustomObjectsApi(self.api).list_namespaced_custom_object(
            GROUP, VERSION, LEDGER_NS, PLURAL
        )
        items: list[dict[str, Any]] = cast(dict[str, Any], answer)["items"]
        return sorted(items, key=lambda obj: obj["metadata"]["name"])

    def kubeconfig(self, path: Path) -> Path:
        """Write a kubeconfig for this server at `path` (for the command line)."""
        cluster = {"name": "kmock", "cluster": {"server": self.url}}
        context = {"name": "kmock", "context": {"cluster": "kmock", "user": "test"}}
        user = {"name": "test", "user": {"token": "not-a-secret"}}
        document = {"apiVersion": "v1", "kind": "Config", "current-context": "kmock"}
        path.write_text(
            json.dumps({**document, "clusters": [cluster], "users": [user], "contexts": [context]})
        )
        return path

    def events(self) -> list[Any]:
        """Every Event in the cluster (kubernetes client models)."""
        return list(k8s.CoreV1Api(self.api).list_event_for_all_namespaces().items)

    def apply_workload(
        self,
        kind: str,
        namespace: str,
        name: str,
        notes: dict[str, str],
        status: dict[str, int] | None = None,
    ) -> None:
        plural = kind.lower() + "s"
        body = {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "annotations": notes,
                "uid": f"uid-{name}",
            },
            "status": status or {},
        }
        api = k8s.CustomObjectsApi(self.api)
        try:
            api.get_namespaced_custom_object("apps", "v1", namespace, plural, name)
        except k8s.ApiException:
            api.create_namespaced_custom_object("apps", "v1", namespace, plural, body)
            return
        api.patch_namespaced_custom_object(
            "apps",
            "v1",
            namespace,
            plural,
            name,
            body,
            _content_type="application/merge-patch+json",
        )

    def delete_workload(self, kind: str, namespace: str, name: str) -> None:
        k8s.CustomObjectsApi(self.api).delete_namespaced_custom_object(
            "apps", "v1", namespace, kind.lower() + "s", name
        )


def settings(**overrides: Any) -> OperatorSettings:
    values: dict[str, Any] = {
        "product_code": PRODUCT,
        "dimensions": ("gb", "users"),
        "tag_keys": ("team",),
        "ledger_namespace": LEDGER_NS,
        "send_jitter_seconds": 300,
        "checkpoint_seconds": 60,
    }
    values.update(overrides)
    return OperatorSettings.model_validate(values)


def runtime(
    kube: Kube,
    emu: Emulator,
    clock: FakeClock,
    caller: str,
    *,
    hook: Hook = no_hook,
    **overrides: Any,
) -> Runtime:
    """A fresh operator instance (as a new pod would be): own identity, own AWS caller."""
    return build(
        settings(**overrides),
        kube.api,
        emu.client(access_key_id=caller),
        now=clock,
        rng=lambda: 0.5,
        identity=f"operator-{caller}",
        metrics=Metrics(),
        hook=hook,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@contextmanager
def kube_server() -> Iterator[Kube]:
    kube = Kube()
    try:
        yield kube
    finally:
        kube.close()
