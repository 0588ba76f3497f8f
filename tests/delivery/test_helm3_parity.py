"""Helm 3 parity: vendors still on Helm 3 get the same objects and the same refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.delivery.helm import (
    KUBE_VERSIONS,
    OPERATOR_CHART,
    SIDECAR_CHART,
    Doc,
    Helm,
    HelmError,
    vendored_addon,
)
from tests.delivery.test_addon_rules import ADDON_VALUES

OPERATOR = {"productCode": "prod-x", "dimensions": ["nodes"]}
ALL_OPERATOR_OBJECTS = {
    **OPERATOR,
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "dashboard": {"enabled": True},
}
ALL_SIDECAR_OBJECTS = {
    "metrics": {"podMonitor": {"enabled": True}, "scrapeAnnotations": True},
    "prometheusRule": {"enabled": True},
    "dashboard": {"enabled": True},
}

CASES = [
    (shape, version)
    for version in ("1.28.0", *KUBE_VERSIONS)
    for shape in ("auto", "native", "classic", "init")
    if not (shape == "native" and version == "1.28.0")  # refused on both, tested elsewhere
]


def strict_validate(docs: list[Doc], version: str) -> None:
    """Every built-in object passes that version's strict schema (custom resources skipped)."""
    for doc in docs:
        if not doc["apiVersion"].startswith("monitoring.coreos.com/"):
            kubernetes_validate.validate(doc, version, strict=True)


@pytest.fixture(scope="module")
def both(
    helm: Helm, helm3: Helm, example_chart: Path, example_chart3: Path
) -> tuple[tuple[Helm, Path], tuple[Helm, Path]]:
    """(Helm 4, its vendored example chart) and (Helm 3, its vendored example chart)."""
    return (helm, example_chart), (helm3, example_chart3)


def test_helm3_lints_both_charts(helm3: Helm, example_chart3: Path) -> None:
    """`helm lint --strict` with Helm 3.17 passes for every chart."""
    for chart in (SIDECAR_CHART, OPERATOR_CHART, example_chart3):
        assert "0 chart(s) failed" in helm3.run("lint", "--strict", str(chart))


@pytest.mark.parametrize(("shape", "version"), CASES, ids=[f"{s}-{v}" for s, v in CASES])
def test_helm3_renders_what_helm4_renders(
    both: tuple[tuple[Helm, Path], tuple[Helm, Path]], shape: str, version: str
) -> None:
    """Helm 3 and Helm 4 render identical objects for every shape, with every sidecar monitoring
    object on, and they pass the version's strict schema (Helm 3 honours `.Subcharts`)."""
    values = {"entitlement": {"sidecar": {"shape": shape}, **ALL_SIDECAR_OBJECTS}}
    (helm4, chart4), (helm3, chart3) = both
    four = helm4.template(chart4, kube_version=version, values=values)
    assert helm3.template(chart3, kube_version=version, values=values) == four
    strict_validate(four, version)


@pytest.mark.parametrize("version", KUBE_VERSIONS, ids=KUBE_VERSIONS)
def test_helm3_renders_the_operator_like_helm4(helm: Helm, helm3: Helm, version: str) -> None:
    """The operator's objects, every optional one on, are identical under Helm 3 and Helm 4
    and pass the version's strict schema."""
    three = helm3.template(OPERATOR_CHART, kube_version=version, values=ALL_OPERATOR_OBJECTS)
    four = helm.template(OPERATOR_CHART, kube_version=version, values=ALL_OPERATOR_OBJECTS)
    assert three == four
    strict_validate(three, version)


@pytest.mark.parametrize(
    ("chart", "values", "key"),
    [
        (SIDECAR_CHART, {"sidecar": {"shape": "sidecar"}}, "sidecar.shape"),
        (SIDECAR_CHART, {"sidecar": {"port": -1}}, "sidecar.port"),
        (OPERATOR_CHART, {**OPERATOR, "productCode": "a b"}, "productCode"),
        (SIDECAR_CHART, {"sidecar": {"securityContext": {"runAsUser": 0}}}, "runAsUser"),
        (OPERATOR_CHART, {**OPERATOR, "tagKeys": ["a", "b", "c", "d"]}, "tagKeys"),
        (SIDECAR_CHART, {"sidecar": {"startupTimeoutSeconds": 21601}}, "startupTimeoutSeconds"),
    ],
    ids=[
        "wrong-shape",
        "negative-port",
        "operator-bad-product-code",
        "root-sidecar",
        "four-tag-keys",
        "startup-beyond-6h",
    ],
)
def test_helm3_schema_refuses_bad_values(
    helm3: Helm, chart: Path, values: dict[str, Any], key: str
) -> None:
    """Helm 3's schema validation refuses the same bad values and names the key."""
    with pytest.raises(HelmError) as err:
        helm3.template(chart, values=values)
    assert "values don't meet the specifications of the schema" in err.value.stderr
    assert key in err.value.stderr


def test_helm3_passes_the_addon_validator_commands(
    helm3: Helm, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """AWS's add-on lint and template commands pass with Helm 3 too (its CLI installs Helm 3)."""
    addon = vendored_addon(helm3, tmp_path_factory.mktemp("addon3"), ADDON_VALUES)
    out = helm3.run("lint", "--strict", "--with-subcharts", str(addon))
    assert "3 chart(s) linted, 0 chart(s) failed" in out
    for version in KUBE_VERSIONS:
        docs = helm3.template(
            addon,
            kube_version=version,
            namespace="acme-product",
            extra=("--set", f"k8version={version}", "--include-crds", "--no-hooks"),
        )
        strict_validate(docs, version)
