"""Every panel of both Grafana dashboards shows data: its query returns series from a real
Prometheus server scraping the demo's sidecars and a real operator (tests/monitoring/stack.py).

Grafana itself is not installable here; what it would send is the panel's PromQL with the
dashboard variables filled in (all namespaces, a `$__rate_interval` of a few scrapes).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.delivery.helm import OPERATOR_CHART, SIDECAR_CHART
from tests.monitoring.stack import (
    INSTALL_HINT,
    Stack,
    concrete,
    dashboard_queries,
    prometheus_binary,
    running_stack,
)

DASHBOARDS = {
    "sidecars": SIDECAR_CHART / "files" / "dashboard.json",
    "metering": OPERATOR_CHART / "files" / "dashboard.json",
}
QUERIES = [
    (name, title, legend, expr)
    for name, path in DASHBOARDS.items()
    for title, legend, expr in dashboard_queries(path)
]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """The demo's sidecars and the operator story, scraped by Prometheus (about 25 s)."""
    if prometheus_binary() is None:
        pytest.skip(INSTALL_HINT)
    with running_stack() as running:
        yield running


@pytest.mark.parametrize(
    ("dashboard", "title", "legend", "expr"),
    QUERIES,
    ids=[f"{q[0]}:{q[1]}:{q[2]}" for q in QUERIES],
)
def test_every_panel_query_returns_series(
    stack: Stack, dashboard: str, title: str, legend: str, expr: str
) -> None:
    """The panel's query, as Grafana would send it, returns at least one series with numbers."""
    series = stack.query_range(concrete(expr))
    assert series, f"{dashboard} / {title} / {legend}: no series for {expr}"
    values = [float(v) for s in series for _, v in s["values"]]
    assert any(not math.isnan(v) for v in values)


def test_the_namespace_variable_finds_the_namespaces(stack: Stack) -> None:
    """Each dashboard's namespace variable lists the namespaces its metrics come from."""
    for path, namespace in ((DASHBOARDS["sidecars"], "shop"), (DASHBOARDS["metering"], "billing")):
        variable = next(
            v
            for v in json.loads(path.read_text())["templating"]["list"]
            if v["name"] == "namespace"
        )
        metric = variable["query"]["query"].split("(")[1].split(",")[0]
        assert namespace in stack.label_values("namespace", metric)


def test_the_story_shows_in_the_operator_metrics(stack: Stack) -> None:
    """The operator story really happened: the second instance sent hours, resent the one the
    crash left unrecorded, saw the gap, and ended with one hour waiting before its deadline."""

    def last(expr: str) -> float:
        [series] = stack.query_range(expr)
        return float(series["values"][-1][1])

    # operator-b's own counters (operator-a may have finished before its first scrape)
    assert last('sum(entitlement_operator_sends_total{result="Sent", pod="operator-b"})') >= 4
    assert last("sum(entitlement_operator_ambiguous_resends_total)") == 1
    assert last("sum(entitlement_operator_unobserved_seconds_total)") >= 600
    assert 0 < last("min(entitlement_operator_oldest_unsent_hour_deadline_seconds)") < 6 * 3600


@pytest.mark.parametrize("path", DASHBOARDS.values(), ids=DASHBOARDS.keys())
def test_dashboard_layout_is_consistent(path: Path) -> None:
    """Panel ids are unique, panels fit Grafana's 24-column grid, and every target is PromQL on
    the dashboard's Prometheus data source variable."""
    dashboard = json.loads(path.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
