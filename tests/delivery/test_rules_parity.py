"""The charts' copies of AWS's rules (schemas and template guards) equal `aws/rules.py`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from entitlement_sidecar.aws import rules
from entitlement_sidecar.operator.annotations import RESERVED_TAG_KEYS
from entitlement_sidecar.operator.settings import MAX_USER_TAG_KEYS

CHARTS = Path(__file__).parents[2] / "charts"
SIDECAR, OPERATOR = CHARTS / "entitlement-sidecar", CHARTS / "entitlement-operator"
KUBERNETES_VERSION = "^1[.][0-9]+([.][0-9]+)?$"  # sidecar.minKubernetesVersion, not an AWS rule
BOTH = pytest.mark.parametrize("chart", [SIDECAR, OPERATOR], ids=[SIDECAR.name, OPERATOR.name])


def schema(chart: Path = SIDECAR) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((chart / "values.schema.json").read_text())
    return loaded


@BOTH
def test_product_code_rule_in_the_schema(chart: Path) -> None:
    """values.schema.json checks productCode with AWS's pattern (empty: the templates fail)."""
    product = schema(chart)["properties"]["productCode"]
    assert product["pattern"] == f"^({rules.PRODUCT_CODE})?$"
    assert product["maxLength"] == rules.PRODUCT_CODE_MAX


@BOTH
def test_template_guards_use_the_same_patterns(chart: Path) -> None:
    """Every `regexMatch` in the templates (for `helm template` without the schema) is a rule
    (or the one Kubernetes version pattern, which is not AWS's)."""
    known = {rules.anchored(value) for value in vars(rules).values() if isinstance(value, str)}
    known.add(KUBERNETES_VERSION)
    found = {
        match.group(1)
        for path in (chart / "templates").rglob("*.*")
        for match in re.finditer(r'regexMatch "([^"]+)"', path.read_text())
    }
    assert found
    assert found <= known


@BOTH
def test_region_rule_in_the_schema(chart: Path) -> None:
    """The optional region override follows AWS's Region names."""
    assert schema(chart)["properties"]["region"]["pattern"] == f"^({rules.REGION})?$"


def test_operator_limits_in_the_schema() -> None:
    """Dimensions and tag keys are limited in the schema as the operator's settings limit them."""
    operator = schema(OPERATOR)["properties"]
    dimensions, tag_keys = operator["dimensions"], operator["tagKeys"]
    assert dimensions["maxItems"] == rules.DIMENSIONS_PER_PRODUCT
    assert dimensions["items"]["maxLength"] == rules.DIMENSION_MAX
    assert tag_keys["maxItems"] == MAX_USER_TAG_KEYS
    assert tag_keys["items"]["pattern"] == rules.anchored(rules.TAG_KEY)
    assert set(tag_keys["items"]["not"]["enum"]) == RESERVED_TAG_KEYS


def test_startup_budget_limit_in_the_schema() -> None:
    """startupTimeoutSeconds stops where AWS's 6-hour registration window ends."""
    timeout = schema()["properties"]["sidecar"]["properties"]["startupTimeoutSeconds"]
    assert timeout["maximum"] == rules.REGISTER_WINDOW_SECONDS
