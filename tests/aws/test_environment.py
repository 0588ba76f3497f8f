"""Region resolution and the identity botocore will sign with."""

from __future__ import annotations

import pytest

from entitlement_sidecar.aws.environment import (
    detect_identity,
    is_local_endpoint,
    metering_endpoint,
    region_and_source,
    resolve_region,
)
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
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/v1/credentials",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": (
                    "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"
                ),
            },
            "pod-identity",
            False,
        ),
        (
            {
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/v1/credentials",
                "KUBERNETES_SERVICE_HOST": "10.100.0.1",
            },
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
        "eks-pod-identity-token-file",
        "container-credentials-in-a-kubernetes-pod",
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


def test_region_source_is_named() -> None:
    """The region comes with the name of the variable (or metadata) it was taken from."""
    assert region_and_source(None, {"AWS_DEFAULT_REGION": "eu-west-1"}) == (
        "eu-west-1",
        "AWS_DEFAULT_REGION",
    )
    assert region_and_source(None, {}, "ap-south-1") == ("ap-south-1", "ECS task metadata")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {},
            ("https://metering.marketplace.eu-west-1.amazonaws.com", "the default for the Region"),
        ),
        (
            {"AWS_ENDPOINT_URL": "https://proxy.example:8443"},
            ("https://proxy.example:8443", "AWS_ENDPOINT_URL"),
        ),
        (
            {
                "AWS_ENDPOINT_URL": "https://general.example",
                "AWS_ENDPOINT_URL_MARKETPLACE_METERING": "http://127.0.0.1:9",
            },
            ("http://127.0.0.1:9", "AWS_ENDPOINT_URL_MARKETPLACE_METERING"),
        ),
    ],
    ids=["default", "general-override", "service-override-wins"],
)
def test_metering_endpoint_follows_botocore_variables(
    environ: dict[str, str], expected: tuple[str, str]
) -> None:
    """The service-specific endpoint variable, then the general one, then AWS's default host."""
    assert metering_endpoint("eu-west-1", environ) == expected


@pytest.mark.parametrize(
    ("environ", "local"),
    [
        ({}, False),
        ({"AWS_ENDPOINT_URL_MARKETPLACE_METERING": "http://127.0.0.1:4566"}, True),
        ({"AWS_ENDPOINT_URL": "http://localhost:4566"}, True),
        ({"AWS_ENDPOINT_URL_MARKETPLACE_METERING": "https://vpce-1.example.amazonaws.com"}, False),
    ],
    ids=["aws", "loopback", "localhost", "vpc-endpoint"],
)
def test_local_endpoint_is_recognised(environ: dict[str, str], local: bool) -> None:
    """Only a loopback endpoint counts as local (where any credentials are fine)."""
    assert is_local_endpoint(environ) is local
