"""The charts and the programs agree on every setting: one table, run through both.

Each row is a chart value with one valid or invalid value. The chart side renders it with the
real helm (`values.schema.json`, then the template guards); the program side gives the value, as
the chart renders it into the environment, to the real settings model (`SidecarSettings`,
`OperatorSettings`) plus the start-up checks that refuse before any AWS call (the region). Both
must accept it or both must refuse it. The only disagreements are listed in DELIBERATE, each with
its reason; a row there must really disagree, so the list cannot go stale.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from entitlement_sidecar.aws import environment, rules
from entitlement_sidecar.errors import ConfigurationError
from entitlement_sidecar.operator.settings import OperatorSettings
from entitlement_sidecar.sidecar.settings import SidecarSettings
from tests.delivery.helm import OPERATOR_CHART, Helm, HelmError, find, merged

SIDECAR_BASE: dict[str, Any] = {"productCode": "prod-x"}
OPERATOR_BASE: dict[str, Any] = {"productCode": "prod-x", "dimensions": ["nodes"]}
OK, BAD = True, False


def dims(n: int) -> list[str]:
    """`n` distinct dimension names."""
    return [f"d{i}" for i in range(n)]


# (chart, values path, value, env variable, valid)
SIDECAR_ROWS: list[tuple[str, Any, str, bool]] = [
    ("productCode", "prod-x", "PRODUCT_CODE", OK),
    ("productCode", "a" * rules.PRODUCT_CODE_MAX, "PRODUCT_CODE", OK),
    ("productCode", "a/b=c:d_e.f@g-h", "PRODUCT_CODE", OK),
    ("productCode", "a" * (rules.PRODUCT_CODE_MAX + 1), "PRODUCT_CODE", BAD),
    ("productCode", "has space", "PRODUCT_CODE", BAD),
    ("productCode", "prod-x\n", "PRODUCT_CODE", BAD),
    ("productCode", "", "PRODUCT_CODE", BAD),
    ("sidecar.publicKeyVersion", 1, "PUBLIC_KEY_VERSION", OK),
    ("sidecar.publicKeyVersion", rules.PUBLIC_KEY_VERSION_MAX, "PUBLIC_KEY_VERSION", OK),
    ("sidecar.publicKeyVersion", 0, "PUBLIC_KEY_VERSION", BAD),
    ("sidecar.publicKeyVersion", rules.PUBLIC_KEY_VERSION_MAX + 1, "PUBLIC_KEY_VERSION", BAD),
    ("sidecar.port", 1, "PORT", OK),
    ("sidecar.port", 65535, "PORT", OK),
    ("sidecar.port", 0, "PORT", BAD),
    ("sidecar.port", 65536, "PORT", BAD),
    ("sidecar.startupTimeoutSeconds", 1, "STARTUP_TIMEOUT", OK),
    ("sidecar.startupTimeoutSeconds", rules.REGISTER_WINDOW_SECONDS, "STARTUP_TIMEOUT", OK),
    ("sidecar.startupTimeoutSeconds", 0, "STARTUP_TIMEOUT", BAD),
    ("sidecar.startupTimeoutSeconds", rules.REGISTER_WINDOW_SECONDS + 1, "STARTUP_TIMEOUT", BAD),
    ("sidecar.herdSize", 1, "HERD_SIZE", OK),
    ("sidecar.herdSize", 100_000, "HERD_SIZE", OK),
    ("sidecar.herdSize", 0, "HERD_SIZE", BAD),
    ("sidecar.herdSize", 100_001, "HERD_SIZE", BAD),
    ("region", "us-east-1", "REGION", OK),
    ("region", "us-gov-west-1", "REGION", OK),
    ("region", "eu-central-2", "REGION", OK),
    ("region", "US-EAST-1", "REGION", BAD),
    ("region", "moon", "REGION", BAD),
    ("region", "us-east-1\n", "REGION", BAD),
    ("logLevel", "DEBUG", "LOG_LEVEL", OK),
    ("logLevel", "CRITICAL", "LOG_LEVEL", OK),
    ("logLevel", "TRACE", "LOG_LEVEL", BAD),
    ("logFormat", "text", "LOG_FORMAT", OK),
    ("logFormat", "xml", "LOG_FORMAT", BAD),
]
OPERATOR_ROWS: list[tuple[str, Any, str, bool]] = [
    ("productCode", "prod-x", "PRODUCT_CODE", OK),
    ("productCode", "a" * (rules.PRODUCT_CODE_MAX + 1), "PRODUCT_CODE", BAD),
    ("productCode", "has space", "PRODUCT_CODE", BAD),
    ("productCode", "", "PRODUCT_CODE", BAD),
    ("dimensions", ["nodes"], "DIMENSIONS", OK),
    ("dimensions", dims(rules.DIMENSIONS_PER_PRODUCT), "DIMENSIONS", OK),
    ("dimensions", dims(rules.DIMENSIONS_PER_PRODUCT + 1), "DIMENSIONS", BAD),
    ("dimensions", ["x" * rules.DIMENSION_MAX], "DIMENSIONS", OK),
    ("dimensions", ["x" * (rules.DIMENSION_MAX + 1)], "DIMENSIONS", BAD),
    ("dimensions", [], "DIMENSIONS", BAD),
    ("tagKeys", [], "TAG_KEYS", OK),
    ("tagKeys", ["team", "cost center", "a+b=c.d_e:f/g@h-i"], "TAG_KEYS", OK),
    ("tagKeys", ["a", "b", "c", "d"], "TAG_KEYS", BAD),
    ("tagKeys", ["namespace"], "TAG_KEYS", BAD),
    ("tagKeys", ["workload"], "TAG_KEYS", BAD),
    ("tagKeys", ["bad#key"], "TAG_KEYS", BAD),
    ("tagKeys", ["k" * rules.TAG_KEY_MAX], "TAG_KEYS", OK),
    ("tagKeys", ["k" * (rules.TAG_KEY_MAX + 1)], "TAG_KEYS", BAD),
    ("namespaces", ["team-a", "b"], "NAMESPACES", OK),
    ("namespaces", ["a" * 63], "NAMESPACES", OK),
    ("namespaces", ["a" * 64], "NAMESPACES", BAD),
    ("namespaces", ["Team_A"], "NAMESPACES", BAD),
    ("namespaces", ["-a"], "NAMESPACES", BAD),
    ("ledgerNamespace", "billing", "LEDGER_NAMESPACE", OK),
    ("ledgerNamespace", "Billing", "LEDGER_NAMESPACE", BAD),
    ("ledgerNamespace", "b" * 64, "LEDGER_NAMESPACE", BAD),
    ("sendJitterSeconds", 0, "SEND_JITTER_SECONDS", OK),
    ("sendJitterSeconds", 1800, "SEND_JITTER_SECONDS", OK),
    ("sendJitterSeconds", -1, "SEND_JITTER_SECONDS", BAD),
    ("sendJitterSeconds", 1801, "SEND_JITTER_SECONDS", BAD),
    ("checkpointSeconds", 5, "CHECKPOINT_SECONDS", OK),
    ("checkpointSeconds", 600, "CHECKPOINT_SECONDS", OK),
    ("checkpointSeconds", 4, "CHECKPOINT_SECONDS", BAD),
    ("checkpointSeconds", 601, "CHECKPOINT_SECONDS", BAD),
    ("tickSeconds", 1, "TICK_SECONDS", OK),
    ("tickSeconds", 300, "TICK_SECONDS", OK),
    ("tickSeconds", 0, "TICK_SECONDS", BAD),
    ("tickSeconds", 301, "TICK_SECONDS", BAD),
    ("safetyMarginSeconds", 60, "SAFETY_MARGIN_SECONDS", OK),
    ("safetyMarginSeconds", 3600, "SAFETY_MARGIN_SECONDS", OK),
    ("safetyMarginSeconds", 59, "SAFETY_MARGIN_SECONDS", BAD),
    ("safetyMarginSeconds", 3601, "SAFETY_MARGIN_SECONDS", BAD),
    ("retentionDays", 0, "RETENTION_DAYS", OK),
    ("retentionDays", 3650, "RETENTION_DAYS", OK),
    ("retentionDays", -1, "RETENTION_DAYS", BAD),
    ("metricsPort", 9842, "METRICS_PORT", OK),
    ("metricsPort", 65535, "METRICS_PORT", OK),
    ("metricsPort", 65536, "METRICS_PORT", BAD),
    ("metricsPort", 0, "METRICS_PORT", BAD),
    ("leaseName", "billing-operator", "LEASE_NAME", OK),
    ("leaseName", "Billing", "LEASE_NAME", BAD),
    ("region", "ap-southeast-3", "REGION", OK),
    ("region", "moon", "REGION", BAD),
    ("logLevel", "WARNING", "LOG_LEVEL", OK),
    ("logLevel", "TRACE", "LOG_LEVEL", BAD),
]
# Rows where the chart and the program disagree on purpose: (chart, path, value) -> why.
DELIBERATE: dict[tuple[str, str, str], str] = {
    ("sidecar", "region", "us-east-1\n"): (
        "the program strips blanks around a region from any source (AWS_REGION too) and uses "
        "us-east-1; the chart, which never needs them, refuses the stray newline"
    ),
    ("operator", "metricsPort", "0"): (
        "0 asks the OS for a free port (the operator prints it; tests use it), while a "
        "containerPort and a Service need a fixed 1-65535"
    ),
}


def row_id(path: str, value: Any) -> str:
    """A short readable id for a row."""
    text = repr(value) if not isinstance(value, list) else f"{len(value)}:{value[:1]!r}"
    return f"{path}={text[:24]}"


def set_path(values: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """`values` with the dotted `path` set to `value`."""
    *parents, leaf = path.split(".")
    patch: dict[str, Any] = {leaf: value}
    for parent in reversed(parents):
        patch = {parent: patch}
    return merged(values, patch)


def env_value(value: Any) -> str:
    """A value as the charts render it into the environment (lists joined by commas)."""
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def chart_accepts(helm: Helm, chart: Path, values: dict[str, Any]) -> tuple[bool, str]:
    """(accepted, stderr) of `helm template` with these values (schema and template guards)."""
    try:
        helm.template(chart, values=values)
    except HelmError as error:
        return False, error.stderr
    return True, ""


def program_accepts(
    model: Callable[[], Any], env: Mapping[str, str], region_variable: str
) -> tuple[bool, str]:
    """(accepted, message) of the settings model on `env`, plus the region check at start."""
    saved = dict(os.environ)
    try:
        for name in [n for n in os.environ if n.startswith("ENTITLEMENT_")]:
            del os.environ[name]
        os.environ.update(env)
        settings = model()
        if settings.region is not None:
            environment.resolve_region(settings.region, {}, override_variable=region_variable)
    except ConfigurationError as error:
        return False, str(error)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return True, ""


def check_row(
    helm: Helm, chart: Path, which: str, base: dict[str, Any], row: tuple[str, Any, str, bool]
) -> None:
    """Run one row through both sides and compare with the table (and DELIBERATE)."""
    path, value, variable, valid = row
    prefix = "ENTITLEMENT_OPERATOR_" if which == "operator" else "ENTITLEMENT_"
    chart_path = path if which == "operator" else f"entitlement.{path}"
    values = set_path(base, chart_path, value)
    chart_ok, chart_says = chart_accepts(helm, chart, values)
    env = {f"{prefix}{k}": env_value(v) for k, v in ENV_BASE[which].items()}
    env[prefix + variable] = env_value(value)
    model = OperatorSettings.load if which == "operator" else SidecarSettings.load
    program_ok, program_says = program_accepts(model, env, prefix + "REGION")
    deliberate = DELIBERATE.get((which, path, env_value(value)))
    if deliberate:
        assert chart_ok != program_ok, f"no longer a disagreement, drop it: {deliberate}"
        return
    assert (chart_ok, program_ok) == (valid, valid), (
        f"{path}={value!r}: table {valid}, chart {chart_ok} ({chart_says.strip()[-160:]}), "
        f"program {program_ok} ({program_says})"
    )


ENV_BASE: dict[str, dict[str, Any]] = {
    "sidecar": {"PRODUCT_CODE": "prod-x"},
    "operator": {"PRODUCT_CODE": "prod-x", "DIMENSIONS": "nodes", "LEDGER_NAMESPACE": "billing"},
}


@pytest.mark.parametrize("row", SIDECAR_ROWS, ids=[row_id(r[0], r[1]) for r in SIDECAR_ROWS])
def test_sidecar_chart_and_settings_agree(
    helm: Helm, example_chart: Path, row: tuple[str, Any, str, bool]
) -> None:
    """The sidecar's chart value and its ENTITLEMENT_ variable are both accepted or both
    refused, as the table says."""
    check_row(helm, example_chart, "sidecar", {"entitlement": SIDECAR_BASE}, row)


@pytest.mark.parametrize("row", OPERATOR_ROWS, ids=[row_id(r[0], r[1]) for r in OPERATOR_ROWS])
def test_operator_chart_and_settings_agree(helm: Helm, row: tuple[str, Any, str, bool]) -> None:
    """The operator's chart value and its ENTITLEMENT_OPERATOR_ variable are both accepted or
    both refused, as the table says (DELIBERATE lists the reasoned exceptions)."""
    check_row(helm, OPERATOR_CHART, "operator", OPERATOR_BASE, row)


def test_accepted_values_reach_the_environment_as_the_table_renders_them(helm: Helm) -> None:
    """The env strings the table gives the settings models are the ones the chart renders."""
    values = {**OPERATOR_BASE, "dimensions": ["a", "b"], "tagKeys": ["team"], "tickSeconds": 30}
    docs = helm.template(OPERATOR_CHART, values=values)
    container = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ENTITLEMENT_OPERATOR_DIMENSIONS"] == env_value(["a", "b"])
    assert env["ENTITLEMENT_OPERATOR_TAG_KEYS"] == env_value(["team"])
    assert env["ENTITLEMENT_OPERATOR_TICK_SECONDS"] == env_value(30)
