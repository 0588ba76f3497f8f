"""AWS's patterns and limits live in `aws/rules.py` only, and mean what AWS means."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from entitlement_sidecar.aws import rules

PACKAGE = Path(rules.__file__).parents[1]
PATTERNS = {
    name: value
    for name, value in vars(rules).items()
    if name.isupper() and isinstance(value, str) and any(c in value for c in "[]{}()")
}


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_each_pattern_literal_is_written_once_in_the_package(name: str) -> None:
    """No module repeats an AWS pattern: it imports it from `aws/rules.py`."""
    literal = PATTERNS[name]
    holders = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if literal in path.read_text(encoding="utf-8")
    )
    assert holders == ["aws/rules.py"]


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        (rules.PRODUCT_CODE, "prod-abc/1=2:3_4.5@6", True),
        (rules.PRODUCT_CODE, "", False),
        (rules.PRODUCT_CODE, "a" * 255, True),
        (rules.PRODUCT_CODE, "a" * 256, False),
        (rules.PRODUCT_CODE, "prod\n", False),
        (rules.PRODUCT_CODE, "has space", False),
        (rules.TAG_KEY, "team name+1=2", True),
        (rules.TAG_KEY, "k" * 101, False),
        (rules.TAG_KEY, "bang!", False),
        (rules.TAG_VALUE, "v" * 256, True),
        (rules.TAG_VALUE, "v" * 257, False),
        (rules.QUANTITY_DECIMAL, "0", True),
        (rules.QUANTITY_DECIMAL, "9999999999.999999", True),
        (rules.QUANTITY_DECIMAL, "1.0000001", False),
        (rules.QUANTITY_DECIMAL, "01", False),
        (rules.QUANTITY_DECIMAL, "-1", False),
        (rules.REGION, "us-east-1", True),
        (rules.REGION, "ap-southeast-12", True),
        (rules.REGION, "us-east-1\n", False),
        (rules.REGION, "us-east-\u0661", False),  # an Arabic-Indic digit is not a Region
        (rules.ACCOUNT_ID, "123456789012", True),
        (rules.ACCOUNT_ID, "12345678901", False),
    ],
    ids=lambda v: repr(v)[:24] if isinstance(v, str) else str(v),
)
def test_patterns_accept_and_refuse_what_aws_does(pattern: str, value: str, matches: bool) -> None:
    """Whole-value matches: length limits, character sets, no trailing newline."""
    assert (re.fullmatch(pattern, value) is not None) is matches


def test_anchored_form_is_for_engines_that_search() -> None:
    """JSON Schema, Go and Rust see the same rule with `^` and `$`."""
    assert rules.anchored(rules.PRODUCT_CODE) == "^[-a-zA-Z0-9/=:_.@]{1,255}$"


def test_quantity_rule_is_the_botocore_model_pattern() -> None:
    """Our decimal rule is the model's `UsageQuantityAsDecimalString` pattern, anchors aside."""
    from botocore.loaders import create_loader

    shapes = create_loader().load_service_model("meteringmarketplace", "service-2")["shapes"]
    assert shapes["UsageQuantityAsDecimalString"]["pattern"] == rules.anchored(
        rules.QUANTITY_DECIMAL
    )
    assert shapes["UsageAllocations"]["max"] == rules.ALLOCATIONS_PER_REQUEST
    assert shapes["TagList"]["max"] == rules.TAGS_PER_ALLOCATION
    assert shapes["ClientToken"]["max"] == rules.CLIENT_TOKEN_MAX
    assert shapes["Nonce"]["max"] == rules.NONCE_MAX
    assert shapes["ProductCode"]["max"] == rules.PRODUCT_CODE_MAX
    assert shapes["UsageDimension"]["max"] == rules.DIMENSION_MAX
    assert shapes["TagKey"]["max"] == rules.TAG_KEY_MAX
    assert shapes["TagValue"]["max"] == rules.TAG_VALUE_MAX


def test_the_spelt_out_product_code_characters_are_the_pattern_s() -> None:
    """The lean processes' character set accepts exactly the characters the pattern accepts."""
    from entitlement_sidecar.sidecar.envlite import is_product_code

    for code in range(0x110):
        character = chr(code)
        expected = re.fullmatch(rules.PRODUCT_CODE, character) is not None
        assert (character in rules.PRODUCT_CODE_CHARACTERS) == expected, repr(character)
        assert is_product_code(character) == expected
    assert is_product_code("a" * 255)
    assert not is_product_code("a" * 256)


def test_license_manager_rules_are_the_botocore_models() -> None:
    """ARN and time patterns, limits and enums come from the license-manager and sts models."""
    from botocore.loaders import create_loader

    loader = create_loader()
    shapes = loader.load_service_model("license-manager", "service-2")["shapes"]
    assert shapes["Arn"]["pattern"] == rules.anchored(rules.LICENSE_ARN)
    assert shapes["ISO8601DateTime"]["pattern"] == rules.anchored(rules.ISO8601_DATETIME)
    assert shapes["ClientToken"]["max"] == rules.LICENSE_CLIENT_TOKEN_MAX
    assert shapes["TokenString"]["max"] == rules.GET_ACCESS_TOKEN_MAX
    assert tuple(shapes["LicenseStatus"]["enum"]) == rules.LICENSE_STATUSES
    assert tuple(shapes["CheckoutType"]["enum"]) == rules.CHECKOUT_TYPES
    sts = loader.load_service_model("sts", "service-2")["shapes"]
    session = sts["roleSessionNameType"]
    assert session["pattern"] == f"[{rules.ROLE_SESSION_CHARS}]*"
    assert (session["min"], session["max"]) == (2, 64)
    duration = sts["roleDurationSecondsType"]
    assert (duration["min"], duration["max"]) == (rules.ROLE_DURATION_MIN, rules.ROLE_DURATION_MAX)


def test_the_marketplace_issuer_fingerprint_is_written_once_in_the_package() -> None:
    """Pinned in aws/rules.py only: nothing else can carry (or change) another issuer."""
    holders = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if rules.MARKETPLACE_ISSUER_FINGERPRINT in path.read_text(encoding="utf-8")
    )
    assert holders == ["aws/rules.py"]


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        (rules.PRODUCT_SKU, "2205b290-19e6-4c76-9eea-377d6bf71a47", True),
        (rules.PRODUCT_SKU, "prod-abc 1", False),
        (rules.PRODUCT_SKU, "a,b", False),
        (rules.ENTITLEMENT_NAME, "AWS::Marketplace::Usage", True),
        (rules.ENTITLEMENT_NAME, "seats=1", False),
        (rules.ROLE_ARN, "arn:aws:iam::123456789012:role/path/name", True),
        (rules.ROLE_ARN, "arn:aws:iam::123456789012:user/name", False),
    ],
    ids=["uuid-sku", "sku-blank", "sku-comma", "usage-name", "name-with-equals", "role", "user"],
)
def test_license_manager_patterns(pattern: str, value: str, matches: bool) -> None:
    """Our License Manager rules take product IDs and API names, and refuse our separators."""
    assert (re.fullmatch(pattern, value) is not None) is matches
