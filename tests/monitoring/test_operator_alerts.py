"""The operator alerts, as the chart renders them, behave as their runbooks say (promtool)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.delivery.helm import OPERATOR_CHART, Helm, HelmError
from tests.monitoring.promtool import check_alerts, rule_groups, series

OPERATOR = {"job": "operator", "namespace": "billing", "instance": "10.0.0.9:9842"}
NEAR_DEADLINE = "EntitlementUnsentHourNearDeadline"
NOT_BILLED = "EntitlementHourNotBilled"
RESENT = "EntitlementHourResentAfterCrash"
GAP = "EntitlementObservationGap"
NOT_TICKING = "EntitlementOperatorNotTicking"


def groups(helm: Helm, **rule: Any) -> list[dict[str, Any]]:
    """The operator rule groups rendered with prometheusRule enabled."""
    values = {
        "productCode": "prod-x",
        "dimensions": ["users"],
        "prometheusRule": {"enabled": True, **rule},
    }
    return rule_groups(helm.template(OPERATOR_CHART, values=values))


def sends(result: str, values: str, dimension: str = "users") -> dict[str, str]:
    """The operator's sends_total series for one dimension and result."""
    labels = {**OPERATOR, "dimension": dimension, "result": result}
    return series("entitlement_operator_sends_total", labels, values)


def test_an_unsent_hour_alerts_within_an_hour_of_its_deadline(helm: Helm, tmp_path: Path) -> None:
    """The oldest unsent hour alerts once less than 1 h of its 6-hour window is left."""
    deadline = series(
        "entitlement_operator_oldest_unsent_hour_deadline_seconds", OPERATOR, "7200-60x90"
    )
    firing = [{"namespace": "billing"}]
    check_alerts(
        tmp_path,
        groups(helm),
        [deadline],
        [("60m", NEAR_DEADLINE, []), ("61m", NEAR_DEADLINE, firing)],
    )


def test_a_first_failed_hour_alerts_for_an_hour(helm: Helm, tmp_path: Path) -> None:
    """A Failed hour alerts even when it is the counter's first increment (a fresh series), for
    the hour after it; Transient retries and Sent hours do not alert."""
    inputs = [
        sends("Failed", "_x10 1x100"),
        sends("Transient", "0+1x100"),
        sends("Sent", "0+1x100"),
    ]
    firing = [{"namespace": "billing", "dimension": "users", "result": "Failed"}]
    check_alerts(
        tmp_path,
        groups(helm),
        inputs,
        [
            ("9m", NOT_BILLED, []),
            ("11m", NOT_BILLED, firing),
            ("60m", NOT_BILLED, firing),
            ("80m", NOT_BILLED, []),
        ],
    )


def test_an_expired_hour_on_a_running_counter_alerts(helm: Helm, tmp_path: Path) -> None:
    """An Expired hour counted on an existing series alerts through its increase."""
    inputs = [sends("Expired", "0x90 1x30", dimension="gb")]
    firing = [{"namespace": "billing", "dimension": "gb", "result": "Expired"}]
    check_alerts(
        tmp_path, groups(helm), inputs, [("89m", NOT_BILLED, []), ("95m", NOT_BILLED, firing)]
    )


def test_a_resend_after_a_crash_alerts(helm: Helm, tmp_path: Path) -> None:
    """An ambiguous resend (new operator pod, first increment) alerts with its dimension."""
    labels = {**OPERATOR, "dimension": "users"}
    inputs = [series("entitlement_operator_ambiguous_resends_total", labels, "_x5 1x30")]
    firing = [{"namespace": "billing", "dimension": "users"}]
    check_alerts(tmp_path, groups(helm), inputs, [("4m", RESENT, []), ("6m", RESENT, firing)])


@pytest.mark.parametrize(("gap", "alerts"), [(900, True), (300, False)], ids=["15min", "5min"])
def test_an_observation_gap_of_ten_minutes_alerts(
    helm: Helm, tmp_path: Path, gap: int, alerts: bool
) -> None:
    """A resumed operator that found 10 minutes or more unobserved alerts; 5 minutes do not."""
    inputs = [series("entitlement_operator_unobserved_seconds_total", OPERATOR, f"_x3 {gap}x30")]
    firing = [{"namespace": "billing"}] if alerts else []
    check_alerts(tmp_path, groups(helm), inputs, [("5m", GAP, firing)])


@pytest.mark.parametrize(
    ("after_last", "label"), [("600x20", "stuck"), ("stale", "gone")], ids=["stuck", "gone"]
)
def test_a_loop_that_stops_alerts_after_the_threshold(
    helm: Helm, tmp_path: Path, after_last: str, label: str
) -> None:
    """A loop stamped every minute until 10:00 alerts once its last stamp is more than 300 s old,
    whether the gauge stays (a wedged loop) or disappears (the operator is gone)."""
    stamp = series(
        "entitlement_operator_last_tick_timestamp_seconds", OPERATOR, f"0+60x10 {after_last}"
    )
    firing = [{"namespace": "billing"}]
    check_alerts(
        tmp_path,
        groups(helm),
        [stamp],
        [("10m", NOT_TICKING, []), ("15m", NOT_TICKING, []), ("16m", NOT_TICKING, firing)],
    )


def test_the_not_ticking_threshold_comes_from_values(helm: Helm, tmp_path: Path) -> None:
    """prometheusRule.notTickingSeconds replaces the 300 s threshold; alertLabels reach it."""
    rules = groups(helm, notTickingSeconds=120, alertLabels={"team": "billing"})
    stamp = series("entitlement_operator_last_tick_timestamp_seconds", OPERATOR, "0+60x10 600x10")
    firing = [{"namespace": "billing", "team": "billing"}]
    check_alerts(tmp_path, rules, [stamp], [("12m", NOT_TICKING, []), ("13m", NOT_TICKING, firing)])


def test_a_threshold_within_two_ticks_is_refused(helm: Helm) -> None:
    """A not-ticking threshold of two tick intervals or less would fire on a healthy loop."""
    values = {
        "productCode": "prod-x",
        "dimensions": ["users"],
        "tickSeconds": 60,
        "prometheusRule": {"enabled": True, "notTickingSeconds": 120},
    }
    with pytest.raises(HelmError, match="more than two tickSeconds"):
        helm.template(OPERATOR_CHART, values=values)
