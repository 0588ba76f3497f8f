"""The sidecar alerts, as the chart renders them, behave as their runbooks say (promtool)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.delivery.helm import Helm
from tests.monitoring.promtool import check_alerts, rule_groups, series

NOT_ENTITLED = "EntitlementPodNotEntitled"
ROTATION = "EntitlementPublicKeyRotation"


def groups(helm: Helm, chart: Path, **rule: Any) -> list[dict[str, Any]]:
    """The sidecar rule groups rendered by the vendor chart with prometheusRule enabled."""
    values = {"entitlement": {"prometheusRule": {"enabled": True, **rule}}}
    return rule_groups(helm.template(chart, values=values))


def pod(name: str) -> dict[str, str]:
    """The target labels of one scraped sidecar."""
    return {"job": "pods", "namespace": "shop", "instance": f"{name}:9841", "pod": name}


def state(target: dict[str, str], entitled: str, info: dict[str, str], values: str) -> list[Any]:
    """The two series a sidecar exports about its state: entitled, and the reason info."""
    return [
        series("entitlement_sidecar_entitled", target, entitled),
        series("entitlement_sidecar_reason_info", {**target, **info}, values),
    ]


def key_series(target: dict[str, str], seen: str) -> list[Any]:
    """A sidecar's key-rotation flag and its info series (product prod-x, key version 1)."""
    info = {"product_code": "prod-x", "public_key_version": "1", "instance_kind": "pod"}
    return [
        series("entitlement_sidecar_public_key_rotation_seen", target, seen),
        series("entitlement_sidecar_info", {**target, **info}, "1x5"),
    ]


def test_a_denied_pod_alerts_after_the_window_with_its_reason(
    helm: Helm, example_chart: Path, tmp_path: Path
) -> None:
    """A pod denied for 15 minutes (the default window) alerts with its state and reason; an
    entitled pod and one that was pending for 10 minutes never do."""
    denied, entitled, slow = pod("app-1"), pod("app-2"), pod("app-3")
    reason = {"state": "denied", "reason": "CustomerNotEntitledException"}
    inputs = [
        *state(denied, "0x30", reason, "1x30"),
        *state(entitled, "1x30", {"state": "entitled", "reason": ""}, "1x30"),
        *state(
            slow, "0x10 1x20", {"state": "pending", "reason": "ThrottlingException"}, "1x10 stale"
        ),
        series(
            "entitlement_sidecar_reason_info",
            {**slow, "state": "entitled", "reason": ""},
            "_x10 1x20",
        ),
    ]
    firing = [{**denied, **reason}]
    check_alerts(
        tmp_path,
        groups(helm, example_chart),
        inputs,
        [("14m", NOT_ENTITLED, []), ("16m", NOT_ENTITLED, firing), ("29m", NOT_ENTITLED, firing)],
    )


def test_the_window_and_extra_labels_come_from_values(
    helm: Helm, example_chart: Path, tmp_path: Path
) -> None:
    """prometheusRule.notEntitledMinutes sets the window and alertLabels reach every alert."""
    rules = groups(helm, example_chart, notEntitledMinutes=5, alertLabels={"team": "billing"})
    target = pod("app-1")
    reason = {"state": "unavailable", "reason": "ThrottlingException"}
    firing = [{**target, **reason, "team": "billing"}]
    inputs = state(target, "0x10", reason, "1x10")
    check_alerts(tmp_path, rules, inputs, [("4m", NOT_ENTITLED, []), ("6m", NOT_ENTITLED, firing)])


def test_a_key_rotation_alerts_once_per_product_and_key_version(
    helm: Helm, example_chart: Path, tmp_path: Path
) -> None:
    """When AWS reports a key rotation to two pods of one product, one alert names the product
    and the expired key version; a pod without a rotation adds nothing."""
    inputs = [
        *key_series(pod("app-1"), "1x5"),
        *key_series(pod("app-2"), "1x5"),
        *key_series(pod("app-3"), "0x5"),
    ]
    firing = [{"namespace": "shop", "product_code": "prod-x", "public_key_version": "1"}]
    check_alerts(tmp_path, groups(helm, example_chart), inputs, [("1m", ROTATION, firing)])


def test_no_rotation_no_alert(helm: Helm, example_chart: Path, tmp_path: Path) -> None:
    """Sidecars that saw no rotation raise no key alert."""
    inputs = key_series(pod("app-1"), "0x5")
    check_alerts(tmp_path, groups(helm, example_chart), inputs, [("5m", ROTATION, [])])
