"""Every error code the botocore model lists can be produced and arrives as its modeled class."""

from __future__ import annotations

import functools
from collections.abc import Callable

import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.model import ServiceModel

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.emulator.model import MODELED_ERRORS
from tests.emulator.helpers import PAID, recent

OPERATIONS = ("RegisterUsage", "MeterUsage")


def service_model() -> ServiceModel:
    """The installed botocore model, read through botocore's own session (not our loader)."""
    return botocore.session.get_session().get_service_model("meteringmarketplace")


def modeled(operation: str) -> list[str]:
    """The error codes the installed botocore model declares for `operation`."""
    return [shape.name for shape in service_model().operation_model(operation).error_shapes]


CASES = [(op, code) for op in OPERATIONS for code in modeled(op)]


def test_emulator_knows_every_modeled_error() -> None:
    """The emulator's table of error codes is exactly the model's."""
    every = {
        shape.name
        for op in service_model().operation_names
        for shape in service_model().operation_model(op).error_shapes
    }
    assert every == MODELED_ERRORS


@pytest.mark.parametrize(("operation", "code"), CASES, ids=[f"{o}-{c}" for o, c in CASES])
def test_error_fault_reaches_boto3_as_modeled_class(
    emulator: Emulator, operation: str, code: str
) -> None:
    """An `error` fault with a modeled code raises `client.exceptions.<Code>` with its status."""
    emulator.set_scenario(
        {
            "products": {PAID: {"dimensions": ["users"]}},
            "faults": [{"op": operation, "kind": "error", "code": code, "count": 1}],
        }
    )
    client = emulator.client()
    call: Callable[[], object] = functools.partial(
        client.meter_usage, ProductCode=PAID, Timestamp=recent(), UsageDimension="users"
    )
    if operation == "RegisterUsage":
        call = functools.partial(client.register_usage, ProductCode=PAID, PublicKeyVersion=1)
    with pytest.raises(getattr(client.exceptions, code)) as caught:
        call()
    assert isinstance(caught.value, ClientError)
    status = caught.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert status == (500 if code == "InternalServiceErrorException" else 400)


@pytest.mark.parametrize("code", modeled("RegisterUsage"), ids=str)
def test_product_error_reaches_register_usage(emulator: Emulator, code: str) -> None:
    """A product's `error` key answers any modeled code on that product's first RegisterUsage."""
    emulator.set_scenario({"products": {"prod-x": {"error": code}}})
    client = emulator.client()
    with pytest.raises(getattr(client.exceptions, code)):
        client.register_usage(ProductCode="prod-x", PublicKeyVersion=1)
