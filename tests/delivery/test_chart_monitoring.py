"""Monitoring objects of both charts: PodMonitor, scrape annotations, rules, dashboards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.delivery.helm import (
    KUBE_VERSIONS,
    OPERATOR_CHART,
    REPO,
    SIDECAR_CHART,
    Doc,
    Helm,
    container,
    find,
)

MONITORING_KINDS = {"PodMonitor", "PrometheusRule", "ConfigMap"}


def entitlement(**values: Any) -> dict[str, Any]:
    """example-app values for its `entitlement` dependency."""
    return {"entitlement": values}


def pod_annotations(docs: list[Doc]) -> dict[str, str]:
    """The example Deployment's pod template annotations."""
    meta = find(docs, "Deployment")["spec"]["template"]["metadata"]
    annotations: dict[str, str] = meta.get("annotations", {})
    return annotations


def test_monitoring_is_off_by_default(helm: Helm, example_chart: Path) -> None:
    """By default a vendor chart gets no monitoring object and no scrape annotation."""
    docs = helm.template(example_chart)
    assert MONITORING_KINDS.isdisjoint({d["kind"] for d in docs})
    assert pod_annotations(docs) == {}


def test_pod_monitor_scrapes_the_sidecar_port_of_the_release_pods(
    helm: Helm, example_chart: Path
) -> None:
    """The PodMonitor selects the release's pods and scrapes the port the sidecar declares."""
    values = entitlement(metrics={"podMonitor": {"enabled": True, "labels": {"release": "kps"}}})
    docs = helm.template(example_chart, values=values, release="shop")
    monitor = find(docs, "PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/instance": "shop"}}
    template = find(docs, "Deployment")["spec"]["template"]
    assert template["metadata"]["labels"]["app.kubernetes.io/instance"] == "shop"
    sidecar = container(template["spec"]["initContainers"], "entitlement-sidecar")
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == sidecar["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    custom = entitlement(metrics={"podMonitor": {"enabled": True, "selector": {"app": "x"}}})
    monitor = find(helm.template(example_chart, values=custom), "PodMonitor")
    assert monitor["spec"]["selector"] == {"matchLabels": {"app": "x"}}


@pytest.mark.parametrize("shape", ["native", "classic", "init"])
def test_scrape_annotations_point_at_the_sidecar(
    helm: Helm, example_chart: Path, shape: str
) -> None:
    """Scrape annotations name the sidecar's port and /metrics; the init shape has none."""
    values = entitlement(
        metrics={"scrapeAnnotations": True}, sidecar={"shape": shape, "port": 19841}
    )
    annotations = pod_annotations(helm.template(example_chart, values=values))
    if shape == "init":
        assert annotations == {}
        return
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "19841",
        "prometheus.io/path": "/metrics",
    }


def test_prometheus_rule_is_the_shipped_rule_file(helm: Helm, example_chart: Path) -> None:
    """The PrometheusRule carries files/prometheus-rules.yaml, with the window and extra labels
    from values, so the plain file and the chart never differ otherwise."""
    values = entitlement(prometheusRule={"enabled": True, "notEntitledMinutes": 7})
    rule = find(helm.template(example_chart, values=values), "PrometheusRule")
    shipped = yaml.safe_load((SIDECAR_CHART / "files" / "prometheus-rules.yaml").read_text())
    for rendered, original in zip(rule["spec"]["groups"], shipped["groups"], strict=True):
        for a, b in zip(rendered["rules"], original["rules"], strict=True):
            if a["alert"] == "EntitlementPodNotEntitled":
                assert (a.pop("for"), b.pop("for")) == ("7m", "15m")
            assert a == b


@pytest.mark.parametrize("version", KUBE_VERSIONS, ids=KUBE_VERSIONS)
def test_dashboard_configmap_carries_the_dashboard(
    helm: Helm, example_chart: Path, version: str
) -> None:
    """The dashboard ConfigMap has the discovery label, a valid ConfigMap for each version, and
    the dashboard JSON with a query in every panel."""
    values = entitlement(dashboard={"enabled": True, "namespace": "monitoring"})
    config_map = find(
        helm.template(example_chart, kube_version=version, values=values), "ConfigMap"
    )
    kubernetes_validate.validate(config_map, version, strict=True)
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    [(name, text)] = config_map["data"].items()
    assert name.endswith(".json")
    dashboard = json.loads(text)
    assert dashboard == json.loads((SIDECAR_CHART / "files" / "dashboard.json").read_text())
    assert dashboard["uid"] == "entitlement-sidecars"
    assert all(target["expr"] for panel in dashboard["panels"] for target in panel["targets"])


OPERATOR = {"productCode": "prod-x", "dimensions": ["nodes"]}


def test_operator_monitoring_is_off_by_default(helm: Helm) -> None:
    """The operator chart renders no PrometheusRule, dashboard or ServiceMonitor by default."""
    kinds = {d["kind"] for d in helm.template(OPERATOR_CHART, values=OPERATOR)}
    assert kinds.isdisjoint({"PrometheusRule", "ConfigMap", "ServiceMonitor"})


def test_operator_rule_is_the_shipped_rule_file(helm: Helm) -> None:
    """The operator's PrometheusRule is files/prometheus-rules.yaml, with the not-ticking
    threshold and the extra alert labels from values."""
    rule_values = {"enabled": True, "notTickingSeconds": 600, "alertLabels": {"team": "x"}}
    values = {**OPERATOR, "prometheusRule": rule_values}
    rule = find(helm.template(OPERATOR_CHART, values=values), "PrometheusRule")
    shipped = yaml.safe_load((OPERATOR_CHART / "files" / "prometheus-rules.yaml").read_text())
    [rendered], [original] = rule["spec"]["groups"], shipped["groups"]
    names = [r["alert"] for r in rendered["rules"]]
    assert names == [
        "EntitlementUnsentHourNearDeadline",
        "EntitlementHourNotBilled",
        "EntitlementHourResentAfterCrash",
        "EntitlementObservationGap",
        "EntitlementOperatorNotTicking",
    ]
    for a, b in zip(rendered["rules"], original["rules"], strict=True):
        assert a.pop("labels") == {**b.pop("labels"), "team": "x"}
        if a["alert"] == "EntitlementOperatorNotTicking":
            assert a.pop("expr").rstrip().endswith("> 600")
            assert b.pop("expr").rstrip().endswith("> 300")
        assert a == b


def test_operator_dashboard_configmap_carries_the_dashboard(helm: Helm) -> None:
    """The operator's dashboard ConfigMap holds files/dashboard.json under the discovery label."""
    values = {**OPERATOR, "dashboard": {"enabled": True}}
    config_map = find(helm.template(OPERATOR_CHART, values=values), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    [text] = config_map["data"].values()
    dashboard = json.loads(text)
    assert dashboard == json.loads((OPERATOR_CHART / "files" / "dashboard.json").read_text())
    assert dashboard["uid"] == "entitlement-metering"


@pytest.mark.parametrize("chart", [SIDECAR_CHART, OPERATOR_CHART], ids=lambda c: c.name)
def test_every_alert_has_a_runbook_paragraph_in_the_readme(chart: Path) -> None:
    """Each alert links its README runbook, and the README has that paragraph."""
    readme = (REPO / "README.md").read_text()
    rules = yaml.safe_load((chart / "files" / "prometheus-rules.yaml").read_text())
    for rule in (r for g in rules["groups"] for r in g["rules"]):
        name = rule["alert"]
        assert f"\n##### {name}\n" in readme, name
        assert rule["annotations"]["runbook_url"].endswith(f"README.md#{name.lower()}")
