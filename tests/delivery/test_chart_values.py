"""Chart values: documented, typed by the schema, and bad values refused with a clear message."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.delivery.helm import EXAMPLE_CHART, OPERATOR_CHART, SIDECAR_CHART, Helm, HelmError

CHARTS = (SIDECAR_CHART, OPERATOR_CHART, EXAMPLE_CHART)
CHART_IDS = ("entitlement-sidecar", "entitlement-operator", "example-app")
OPERATOR = {"dimensions": ["nodes"], "productCode": "prod-x"}
# Keys the schemas accept but values.yaml leaves out on purpose: Helm's globals (declared where a
# chart reads them), `k8version` (AWS's EKS add-on validator sets it with --set) and `enabled`
# (a parent chart's dependency `condition:`); the charts ignore the last two.
NOT_IN_VALUES = {"global", "k8version", "enabled"}
# The hardened securityContexts declare optional fields (privileged, capabilities.add, AppArmor)
# only to refuse weaker values: they need not appear in values.yaml.


def value_paths(values: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of every key (maps are walked; lists and scalars are leaves)."""
    paths: set[str] = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        paths.add(path)
        if isinstance(value, dict) and value:
            paths |= value_paths(value, path + ".")
    return paths


def schema_properties(schema: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Dotted path -> sub-schema of every property the schema declares, at any depth."""
    found: dict[str, dict[str, Any]] = {}
    for key, sub in schema.get("properties", {}).items():
        found[f"{prefix}{key}"] = sub
        found |= schema_properties(sub, f"{prefix}{key}.")
    return found


def is_open_map(sub: dict[str, Any]) -> bool:
    """An object open to unlisted keys (resources, securityContext, a dependency's values)."""
    return sub.get("type") == "object" and sub.get("additionalProperties", True) is not False


def load(chart: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(values.yaml, values.schema.json) of a chart."""
    values = yaml.safe_load((chart / "values.yaml").read_text())
    schema = json.loads((chart / "values.schema.json").read_text())
    return values, schema


@pytest.mark.parametrize("chart", CHARTS, ids=CHART_IDS)
def test_helm_lint_strict_passes(helm: Helm, example_chart: Path, chart: Path) -> None:
    """`helm lint --strict` passes for every chart on its defaults (example-app vendored)."""
    target = example_chart if chart == EXAMPLE_CHART else chart
    out = helm.run("lint", "--strict", str(target))
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("chart", CHARTS, ids=CHART_IDS)
def test_every_value_is_in_the_schema_and_back(chart: Path) -> None:
    """Every values.yaml key is declared in the schema, and every schema property is in values."""
    values, schema = load(chart)
    in_values = value_paths(values)
    declared = schema_properties(schema)
    in_schema = set(declared)
    open_maps = {path for path, sub in declared.items() if is_open_map(sub)}
    under_free_form = {p for p in in_values if any(p.startswith(f + ".") for f in open_maps)}
    assert set() == (in_values - under_free_form) - in_schema, "values keys missing in the schema"
    hardening = {p for p in in_schema if "securityContext" in p.split(".")[:-1]}
    missing = in_schema - in_values - NOT_IN_VALUES - hardening
    assert set() == missing, "schema properties missing in values.yaml"


@pytest.mark.parametrize("chart", CHARTS, ids=CHART_IDS)
def test_every_value_key_has_a_doc_comment(chart: Path) -> None:
    """Every key of values.yaml has a `# --` comment (keys in a documented default map aside)."""
    lines = (chart / "values.yaml").read_text().splitlines()
    missing = []
    in_doc_block = False  # inside a value whose `# --` comment covers its nested defaults
    doc_indent = 0
    for index, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w.-]*):", line)
        if not match:
            continue
        indent = len(match.group(1))
        if in_doc_block and indent > doc_indent:
            continue
        in_doc_block = False
        before = [entry.strip() for entry in lines[:index] if entry.strip()]
        comment_block = []
        for entry in reversed(before):
            if not entry.startswith("#"):
                break
            comment_block.append(entry)
        if any(entry.startswith("# --") for entry in comment_block):
            in_doc_block, doc_indent = True, indent
        else:
            missing.append(match.group(2))
    assert missing == []


@pytest.mark.parametrize("chart", [SIDECAR_CHART, OPERATOR_CHART], ids=CHART_IDS[:2])
def test_schema_describes_every_property(chart: Path) -> None:
    """Every property in the sidecar's and the operator's schema carries a description."""
    _, schema = load(chart)

    def undocumented(node: dict[str, Any], prefix: str = "") -> list[str]:
        out = []
        for key, sub in node.get("properties", {}).items():
            if "description" not in sub:
                out.append(prefix + key)
            out += undocumented(sub, f"{prefix}{key}.")
        return out

    assert undocumented(schema) == []


def test_image_tag_follows_app_version() -> None:
    """The sidecar's default image tag equals its appVersion (the operator's tag defaults to it)."""
    chart = yaml.safe_load((SIDECAR_CHART / "Chart.yaml").read_text())
    values, _ = load(SIDECAR_CHART)
    assert chart["appVersion"] == values["image"]["tag"]
    assert load(OPERATOR_CHART)[0]["image"]["tag"] == ""


SCHEMA_REJECTIONS = [
    (SIDECAR_CHART, {"sidecar": {"shape": "sidecar"}}, r"/sidecar/shape.*(must be one of|enum)"),
    (SIDECAR_CHART, {"sidecar": {"port": -1}}, r"/sidecar/port.*minimum"),
    (SIDECAR_CHART, {"sidecar": {"port": 70000}}, r"/sidecar/port.*maximum"),
    (SIDECAR_CHART, {"productCode": "has spaces"}, r"/productCode.*does not match pattern"),
    (SIDECAR_CHART, {"sidecar": {"publicKeyVersion": 0}}, r"/sidecar/publicKeyVersion.*minimum"),
    (SIDECAR_CHART, {"image": {"digest": "sha256:short"}}, r"/image/digest.*does not match"),
    (SIDECAR_CHART, {"sidecar": {"bogus": 1}}, r"/sidecar.*additional properties 'bogus'"),
    (SIDECAR_CHART, {"logFormat": "xml"}, r"/logFormat"),
    (OPERATOR_CHART, {**OPERATOR, "metricsPort": 0}, r"/metricsPort.*minimum"),
    (OPERATOR_CHART, {**OPERATOR, "productCode": "a b"}, r"/productCode.*does not match"),
    (OPERATOR_CHART, {**OPERATOR, "serviceAccount": {"roleArn": "my-role"}}, r"/roleArn"),
    (OPERATOR_CHART, {**OPERATOR, "operator": {"enabled": True}}, r"properties 'operator'"),
]


@pytest.mark.parametrize(
    ("chart", "values", "message"),
    SCHEMA_REJECTIONS,
    ids=[
        "wrong-shape",
        "negative-port",
        "port-too-big",
        "bad-product-code",
        "key-version-zero",
        "bad-digest",
        "unknown-key",
        "bad-log-format",
        "operator-zero-metrics-port",
        "operator-bad-product-code",
        "operator-bad-role-arn",
        "operator-old-values-layout",
    ],
)
def test_schema_rejects_bad_values(
    helm: Helm, chart: Path, values: dict[str, Any], message: str
) -> None:
    """Each chart's schema refuses bad values and names the offending key."""
    with pytest.raises(HelmError) as err:
        helm.template(chart, values=values)
    assert "values don't meet the specifications of the schema" in err.value.stderr
    assert re.search(message, err.value.stderr), err.value.stderr


def test_vendor_chart_without_product_code_is_rejected(helm: Helm, example_chart: Path) -> None:
    """The example vendor chart's schema refuses an empty product code for its sidecar."""
    with pytest.raises(HelmError, match=r"/entitlement/productCode.*minLength"):
        helm.template(example_chart, values={"entitlement": {"productCode": ""}})


def test_vendor_chart_passes_its_values_to_the_sidecar_schema(
    helm: Helm, example_chart: Path
) -> None:
    """A wrong shape set through the vendor chart is refused by the sidecar chart's schema."""
    expected = r"entitlement:\n- at ./sidecar/shape.: value must be one of"
    with pytest.raises(HelmError, match=expected):
        helm.template(example_chart, values={"entitlement": {"sidecar": {"shape": "sidecar"}}})


TEMPLATE_FAILURES = [
    ({"entitlement": {"productCode": ""}}, "productCode is required"),
    ({"entitlement": {"productCode": "a b"}}, "is not a valid product code"),
    ({"entitlement": {"sidecar": {"shape": "sidecar"}}}, 'sidecar.shape "sidecar" is not one of'),
    ({"entitlement": {"sidecar": {"port": -5}}}, "sidecar.port -5 is not a port"),
    (
        {"entitlement": {"image": {"tag": "", "digest": ""}}},
        "image.tag or image.digest must be set",
    ),
]


@pytest.mark.parametrize(
    ("values", "message"),
    TEMPLATE_FAILURES,
    ids=["no-product-code", "bad-product-code", "bad-shape", "bad-port", "no-tag"],
)
def test_templates_fail_when_the_schema_is_skipped(
    helm: Helm, example_chart: Path, values: dict[str, Any], message: str
) -> None:
    """Rules that matter still fail rendering under --skip-schema-validation."""
    with pytest.raises(HelmError) as err:
        helm.template(example_chart, values=values, extra=("--skip-schema-validation",))
    assert message in err.value.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"productCode": "prod-x"}, "dimensions is required"),
        ({"dimensions": ["nodes"]}, "productCode is required"),
    ],
    ids=["no-dimensions", "no-product-code"],
)
def test_operator_template_fails_without_required_values(
    helm: Helm, values: dict[str, Any], message: str
) -> None:
    """The operator refuses to render without a product code or dimensions (the schema allows
    the empty defaults, so that `helm lint --with-subcharts` passes inside a vendor chart)."""
    with pytest.raises(HelmError, match=message):
        helm.template(OPERATOR_CHART, values=values)
