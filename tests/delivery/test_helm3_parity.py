"""Helm 3 parity: vendors still on Helm 3 get the same objects and the same refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.delivery.helm import OPERATOR_CHART, SIDECAR_CHART, Helm, HelmError

OPERATOR = {"productCode": "prod-x", "dimensions": ["nodes"]}


CASES = [
    (shape, version)
    for version in ("1.28.0", "1.33.0")
    for shape in ("auto", "native", "classic", "init")
    if not (shape == "native" and version == "1.28.0")  # refused on both, tested elsewhere
]


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
    """Helm 3 and Helm 4 render identical objects for every shape (Helm 3 honours `.Subcharts`)."""
    values = {"entitlement": {"sidecar": {"shape": shape}}}
    (helm4, chart4), (helm3, chart3) = both
    four = helm4.template(chart4, kube_version=version, values=values)
    assert helm3.template(chart3, kube_version=version, values=values) == four


def test_helm3_renders_the_operator_like_helm4(helm: Helm, helm3: Helm) -> None:
    """The operator's objects are identical under Helm 3 and Helm 4."""
    assert helm3.template(OPERATOR_CHART, values=OPERATOR) == helm.template(
        OPERATOR_CHART, values=OPERATOR
    )


@pytest.mark.parametrize(
    ("chart", "values", "key"),
    [
        (SIDECAR_CHART, {"sidecar": {"shape": "sidecar"}}, "sidecar.shape"),
        (SIDECAR_CHART, {"sidecar": {"port": -1}}, "sidecar.port"),
        (OPERATOR_CHART, {**OPERATOR, "productCode": "a b"}, "productCode"),
    ],
    ids=["wrong-shape", "negative-port", "operator-bad-product-code"],
)
def test_helm3_schema_refuses_bad_values(
    helm3: Helm, chart: Path, values: dict[str, Any], key: str
) -> None:
    """Helm 3's schema validation refuses the same bad values and names the key."""
    with pytest.raises(HelmError) as err:
        helm3.template(chart, values=values)
    assert "values don't meet the specifications of the schema" in err.value.stderr
    assert key in err.value.stderr
