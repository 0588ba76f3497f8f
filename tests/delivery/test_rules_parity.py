"""The chart's copies of AWS's rules (schema and template guards) equal `aws/rules.py`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from entitlement_sidecar.aws import rules
from entitlement_sidecar.operator.annotations import RESERVED_TAG_KEYS
from entitlement_sidecar.operator.settings import MAX_USER_TAG_KEYS

CHART = Path(__file__).parents[2] / "charts" / "entitlement-sidecar"


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return loaded


def test_product_code_rule_in_the_schema() -> None:
    """values.schema.json checks productCode with AWS's pattern (empty: the templates fail)."""
    product = schema()["properties"]["productCode"]
    assert product["pattern"] == f"^({rules.PRODUCT_CODE})?$"
    assert product["maxLength"] == rules.PRODUCT_CODE_MAX


def test_template_guards_use_the_same_patterns() -> None:
    """Every `regexMatch` in the templates (for `helm template` without the schema) is a rule."""
    known = {rules.anchored(value) for value in vars(rules).values() if isinstance(value, str)}
    found = {
        match.group(1)
        for path in (CHART / "templates").iterdir()
        for match in re.finditer(r'regexMatch "([^"]+)"', path.read_text())
    }
    assert found
    assert found <= known


def test_region_rule_in_the_schema() -> None:
    """The optional region override follows AWS's Region names."""
    assert schema()["properties"]["region"]["pattern"] == f"^({rules.REGION})?$"


def test_operator_limits_in_the_schema() -> None:
    """Dimensions and tag keys are limited in the schema as the operator's settings limit them."""
    operator = schema()["properties"]["operator"]["properties"]
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
