"""The operator's Kubernetes API requests are exactly what docs/design.md's table grants.

The chart's RBAC is built from (and tested against) that table, so this closes the loop: what the
code calls (recorded by kmock) <= the table == the chart's Roles.
"""

from __future__ import annotations

import re
from collections import defaultdict

from kubernetes import client as k8s

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.operator.annotations import DIMENSIONS_KEY, WorkloadRef
from entitlement_sidecar.operator.metrics import Metrics
from entitlement_sidecar.operator.wiring import build
from tests.delivery.test_chart_operator import design_access_table
from tests.operator.harness import FakeClock, Kube, settings

AGENT = "entitlement-operator-under-test"
PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)"
    r"(?:/namespaces/[^/]+)?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)


def verb(method: str, named: bool, watch: bool) -> str:
    """The RBAC verb of one HTTP request."""
    if method == "GET":
        return "get" if named else ("watch" if watch else "list")
    return {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}[method]


def operator_access(kube: Kube) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource[/subresource]) -> verbs of the requests made with AGENT."""
    used: dict[tuple[str, str], set[str]] = defaultdict(set)
    for request in kube.mock:
        if request.headers.get("User-Agent") != AGENT:
            continue
        match = PATH.match(request.url.path)
        assert match is not None, request.url
        resource = match["resource"] + (f"/{match['sub']}" if match["sub"] else "")
        watch = request.url.query.get("watch") in {"true", "1"}
        used[(match["group"] or "", resource)].add(
            verb(str(request.method.value).upper(), bool(match["name"]), watch)
        )
    return dict(used)


def test_operator_requests_stay_within_the_design_access_table(
    kube: Kube, emu: Emulator, clock: FakeClock
) -> None:
    """A full life (Lease, checkpoint, write-ahead, send, failure Event, retention, release) uses
    only verbs the design table (and so the chart's RBAC) grants."""
    emu.set_scenario(
        {
            "products": {"prod-paid": {"dimensions": ["users", "gb"]}},
            "throttle": None,
            "faults": [
                {"op": "MeterUsage", "kind": "error", "code": "InvalidTagException", "count": 1}
            ],
        }
    )
    api = k8s.ApiClient(k8s.Configuration(host=kube.url))
    api.user_agent = AGENT
    rt = build(
        settings(retention_days=1),
        api,
        emu.client(access_key_id="AKIDPOD1"),
        now=clock,
        rng=lambda: 0.5,
        identity="operator-AKIDPOD1",
        metrics=Metrics(),
    )
    web = WorkloadRef("shop", "Deployment", "web")
    assert rt.engine.observe(web, {DIMENSIONS_KEY: '{"users": 1}'}, {}, gone=False) == ()
    rt.engine.tick()
    for _ in range(3):  # 10:00 fails (Event), 11:00 and 12:00 are sent
        clock.advance(hours=1)
        rt.engine.tick()
        clock.advance(minutes=4)
        rt.engine.tick()
    rt.engine.observe(web, {}, {}, gone=True)
    clock.advance(days=2)  # past retention: finished hours are deleted
    rt.engine.tick()
    rt.engine.shutdown()  # releases the Lease
    api.close()  # type: ignore[no-untyped-call]
    used = operator_access(kube)
    phases = {o["metadata"]["name"][:14]: o["status"]["phase"] for o in kube.hours()}
    assert {e.reason for e in kube.events()} == {"HourFailed", "HourExpired"}  # 13:00: too late
    assert "users-20261128" not in phases  # the sent and failed hours were deleted by retention
    # apps workloads are read by kopf's watches (get/list/watch), not by this loop
    granted = {key: verbs for key, verbs in design_access_table().items() if key[0] != "apps"}
    assert used == granted  # nothing beyond the table, and nothing in it unused
