"""Region resolution and the identity botocore will sign with."""

from __future__ import annotations

import pytest

from entitlement_sidecar.aws.environment import detect_identity, resolve_region
from entitlement_sidecar.errors import ConfigurationError


@pytest.mark.parametrize(
    ("override", "environ", "ecs", "expected"),
    [
        ("eu-west-1", {"AWS_REGION": "us-east-1"}, "ap-south-1", "eu-west-1"),
        (None, {"AWS_REGION": "us-east-2", "AWS_DEFAULT_REGION": "us-west-2"}, None, "us-east-2"),
        (None, {"AWS_DEFAULT_REGION": "us-west-2"}, "ap-south-1", "us-west-2"),
        (None, {}, "ap-south-1", "ap-south-1"),
        ("  ", {"AWS_REGION": ""}, "us-gov-west-1", "us-gov-west-1"),
    ],
    ids=["override-wins", "aws-region-before-default", "default-before-ecs", "ecs-last", "blank"],
)
def test_region_precedence(
    override: str | None, environ: dict[str, str], ecs: str | None, expected: str
) -> None:
    """The override, then AWS_REGION, then AWS_DEFAULT_REGION, then ECS metadata."""
    assert expected == resolve_region(override, environ, ecs)


def test_missing_region_names_the_variables() -> None:
    """No region anywhere is a configuration error that says what to set."""
    with pytest.raises(ConfigurationError, match="ENTITLEMENT_REGION, AWS_REGION"):
        resolve_region(None, {})


def test_malformed_region_names_its_source() -> None:
    """A value that is not a region name is refused with the variable it came from."""
    with pytest.raises(ConfigurationError) as info:
        resolve_region(None, {"AWS_REGION": "moon-base"})
    assert info.value.variable == "AWS_REGION"


@pytest.mark.parametrize(
    ("environ", "kind", "supported"),
    [
        (
            {"AWS_ROLE_ARN": "arn:aws:iam::1:role/r", "AWS_WEB_IDENTITY_TOKEN_FILE": "/t"},
            "irsa",
            True,
        ),
        ({"AWS_ROLE_ARN": "arn:aws:iam::1:role/r"}, "irsa-incomplete", False),
        ({"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x"}, "ecs-task-role", True),
        (
            {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/creds"},
            "ecs-task-role",
            True,
        ),
        (
            {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials"},
            "pod-identity",
            False,
        ),
        (
            {
                "AWS_ACCESS_KEY_ID": "AKID",
                "AWS_ROLE_ARN": "arn:aws:iam::1:role/r",
                "AWS_WEB_IDENTITY_TOKEN_FILE": "/t",
            },
            "static-keys",
            False,
        ),
        ({"AWS_PROFILE": "dev"}, "profile", False),
        ({}, "node-or-default", False),
    ],
    ids=[
        "irsa",
        "irsa-half",
        "ecs-relative",
        "ecs-full-uri",
        "eks-pod-identity",
        "static-keys-shadow-irsa",
        "profile",
        "node-role",
    ],
)
def test_identity_follows_botocore_chain_order(
    environ: dict[str, str], kind: str, supported: bool
) -> None:
    """The identity named is the one botocore would use, and only IRSA/task role are supported."""
    identity = detect_identity(environ)
    assert (kind, supported) == (identity.kind, identity.supported)
    assert identity.detail
