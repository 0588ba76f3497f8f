"""The usage alerts of the sidecar chart behave as their runbooks say (promtool)."""

from __future__ import annotations

from pathlib import Path

from tests.delivery.helm import Helm
from tests.monitoring.promtool import check_alerts, series
from tests.monitoring.test_sidecar_alerts import groups, pod

NEAR, NOT_BILLED, FULL = (
    "EntitlementUsageNearDeadline",
    "EntitlementUsageNotBilled",
    "EntitlementUsageJournalFull",
)


def test_unsent_usage_alerts_an_hour_before_aws_refuses_it(
    helm: Helm, example_chart: Path, tmp_path: Path
) -> None:
    """The oldest unsent hour's deadline falls below an hour: critical; a pod with time left
    and one with nothing unsent (no series) stay quiet."""
    late, fine = pod("app-1"), pod("app-2")
    inputs = [
        series("entitlement_sidecar_usage_oldest_unsent_hour_deadline_seconds", late, "7200-60x90"),
        series("entitlement_sidecar_usage_oldest_unsent_hour_deadline_seconds", fine, "20000x90"),
    ]
    check_alerts(
        tmp_path, groups(helm, example_chart), inputs, [("50m", NEAR, []), ("70m", NEAR, [late])]
    )


def test_a_failed_or_expired_send_alerts_for_an_hour(
    helm: Helm, example_chart: Path, tmp_path: Path
) -> None:
    """One Failed send of gb raises one alert naming the dimension and result; Sent does not."""
    target = pod("app-1")
    metric = "entitlement_sidecar_usage_sends_total"
    inputs = [
        series(metric, {**target, "dimension": "gb", "result": "Failed"}, "0x10 1x50"),
        series(metric, {**target, "dimension": "gb", "result": "Sent"}, "0+1x60"),
        series(metric, {**target, "dimension": "jobs", "result": "Expired"}, "0x60"),
    ]
    firing = [{"namespace": "shop", "pod": "app-1", "dimension": "gb", "result": "Failed"}]
    check_alerts(
        tmp_path,
        groups(helm, example_chart),
        inputs,
        [("5m", NOT_BILLED, []), ("15m", NOT_BILLED, firing)],
    )


def test_a_full_journal_alerts_after_five_minutes(
    helm: Helm, example_chart: Path, tmp_path: Path
) -> None:
    """Refusing usage for 5 minutes (the app buffers or drops it) raises a warning."""
    target = pod("app-1")
    inputs = [series("entitlement_sidecar_usage_journal_full", target, "0x5 1x20")]
    check_alerts(
        tmp_path,
        groups(helm, example_chart),
        inputs,
        [("8m", FULL, []), ("12m", FULL, [target])],
    )
