"""Run Prometheus's own `promtool test rules` on the alert rules the charts render.

The rules under test are the `spec.groups` of the PrometheusRule a chart renders with the real
helm binary, so what is tested is what a cluster would get. promtool comes from Debian's
`prometheus` package (`.ci/run` installs it); without it these tests skip and say how to get it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.delivery.helm import Doc, find

INSTALL_HINT = (
    "promtool not found: install Debian's prometheus package "
    "(`apt-get update && apt-get install -y prometheus`, as .ci/run does)"
)


def promtool() -> str:
    """The promtool binary, or skip the test saying how to install it."""
    found = shutil.which("promtool")
    if found is None:
        pytest.skip(INSTALL_HINT)
    return found


def rule_groups(docs: list[Doc]) -> list[dict[str, Any]]:
    """The rule groups of the one PrometheusRule rendered."""
    groups: list[dict[str, Any]] = find(docs, "PrometheusRule")["spec"]["groups"]
    return groups


def expand(template: str, labels: dict[str, str]) -> str:
    """An alert annotation as Prometheus expands it (the rules use only `$labels.<name>`)."""
    return re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


def expected_alert(groups: list[dict[str, Any]], alert: str, labels: dict[str, str]) -> Any:
    """promtool's `exp_alerts` entry: the alert's labels plus its expanded annotations."""
    rule = next(r for g in groups for r in g["rules"] if r.get("alert") == alert)
    all_labels = {**labels, **rule.get("labels", {})}
    annotations = {k: expand(v, all_labels) for k, v in rule.get("annotations", {}).items()}
    return {"exp_labels": all_labels, "exp_annotations": annotations}


def run_rule_tests(
    workdir: Path, groups: list[dict[str, Any]], tests: list[dict[str, Any]]
) -> None:
    """Write the rules and a promtool test file, run `promtool test rules`, fail with its output."""
    binary = promtool()
    (workdir / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    spec = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}
    (workdir / "tests.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    for command in (["check", "rules", "rules.yaml"], ["test", "rules", "tests.yaml"]):
        proc = subprocess.run(
            [binary, *command], cwd=workdir, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def check_alerts(
    workdir: Path,
    groups: list[dict[str, Any]],
    inputs: list[dict[str, str]],
    expectations: list[tuple[str, str, list[dict[str, str]]]],
) -> None:
    """One promtool test case: the input series, then (eval_time, alertname, labels of each
    expected alert) checks; annotations are expected expanded from the rule."""
    checks = [
        {
            "eval_time": at,
            "alertname": alert,
            "exp_alerts": [expected_alert(groups, alert, labels) for labels in firing],
        }
        for at, alert, firing in expectations
    ]
    case = {"interval": "1m", "input_series": inputs, "alert_rule_test": checks}
    run_rule_tests(workdir, groups, [case])


def series(metric: str, labels: dict[str, str], values: str) -> dict[str, str]:
    """One promtool input series in its expanding notation (`1x10 stale`)."""
    text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{metric}{{{text}}}", "values": values}
