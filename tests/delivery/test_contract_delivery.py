"""Contract pricing delivery: the IAM policy and the ECS task definition for License Manager."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from botocore.validate import ParamValidator

from entitlement_sidecar.aws import license_manager
from tests.delivery.test_ecs_iam import (
    IAM,
    SIDECAR,
    containers,
    env,
    load,
    register_task_definition_shape,
)

CONTRACT = Path(__file__).parents[2] / "manifests" / "ecs" / "task-definition-contract.json"
# Operations the sidecar calls with its credentials (GetAccessToken goes unsigned).
SIGNED_CALLS = {
    "CheckoutLicense",
    "CheckInLicense",
    "ExtendLicenseConsumption",
    "GetLicense",
    "GetLicenseUsage",  # `doctor` only: free seats of a counted license
    "ListReceivedLicenses",
}


def called_operations() -> set[str]:
    """License Manager operations the boundary module calls (`client.snake_case(`)."""
    source = Path(license_manager.__file__).read_text()
    names = set(re.findall(r"client\.([a-z_]+)\(", source))
    return {"".join(part.title() for part in name.split("_")) for name in names}


def test_the_policy_allows_exactly_what_the_sidecar_calls_signed() -> None:
    """One Allow on `*` for every signed License Manager call of the boundary module, no more."""
    policy = load(IAM / "policy-sidecar-license-manager.json")
    [statement] = policy["Statement"]
    assert (statement["Effect"], statement["Resource"]) == ("Allow", "*")
    assert called_operations() - {"GetAccessToken"} == SIGNED_CALLS
    assert set(statement["Action"]) == {f"license-manager:{op}" for op in SIGNED_CALLS}


def test_contract_task_definition_passes_the_botocore_model() -> None:
    """The contract task definition is a valid RegisterTaskDefinition input."""
    report = ParamValidator().validate(load(CONTRACT), register_task_definition_shape())
    assert not report.has_errors(), report.generate_report()


def test_contract_task_leaves_time_to_return_the_seat() -> None:
    """License Manager mode, a long-running sidecar, and stopTimeout above the check-in budget."""
    sidecar = containers(load(CONTRACT))[SIDECAR]
    settings = env(sidecar)
    assert settings["ENTITLEMENT_PRODUCT_SKU"]
    assert "ENTITLEMENT_PRODUCT_CODE" not in settings
    assert sidecar["command"] == ["run"]
    assert sidecar["stopTimeout"] > int(settings["ENTITLEMENT_LICENSE_CHECKIN_SECONDS"]) + 5
    assert sidecar["healthCheck"]["command"] == ["CMD", "entitlement-sidecar", "check"]


@pytest.mark.parametrize("name", ["ENTITLEMENT_LICENSE_POLICY", "ENTITLEMENT_TRUSTED_PRODUCT_SKUS"])
def test_seller_decisions_are_not_in_the_task_definition(name: str) -> None:
    """The policy and the SKU allow-list belong in the seller image, not the buyer's task."""
    assert name not in env(containers(load(CONTRACT))[SIDECAR])
