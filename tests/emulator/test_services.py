"""A second AWS JSON 1.1 service plugs into the same port: routing, SigV4, errors, faults, counts.

The toy service stands in for the License Manager work: it is one more `JsonApi` entry, and the
pipeline (authentication, credential scope, faults, throttling, body, error rendering) is shared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.emulator.apis import JSON_APIS, JsonApi
from entitlement_sidecar.emulator.protocol import ApiError
from entitlement_sidecar.emulator.state import Call, World
from tests.emulator.helpers import GOOD, send, signed


def echo(world: World, call: Call) -> dict[str, Any]:
    """Answer who called, from which account, with what."""
    if call.body.get("Fail"):
        raise ApiError("ToyFailureException", "asked to fail")
    return {"Caller": call.caller.access_key_id, "Account": call.account, "Body": call.body}


TOY = JsonApi(
    target_prefix="AWSToyService",
    signing_name="toy",
    error_namespace="com.amazonaws.toy",
    handlers={"Echo": echo},
)


@pytest.fixture(scope="module")
def two_services() -> Iterator[Emulator]:
    """An emulator serving Metering and the toy service on one port."""
    with Emulator(apis={**JSON_APIS, TOY.target_prefix: TOY}) as emu:
        yield emu


def toy_call(emu: Emulator, body: dict[str, Any], **signing: Any) -> tuple[int, Any, Any]:
    """POST AWSToyService.Echo signed for the `toy` signing name."""
    raw = json.dumps(body).encode()
    headers = signed(emu.url + "/", raw, "AWSToyService.Echo", service="toy", **signing)
    return send(emu, raw, headers)


def test_both_services_answer_on_one_port(two_services: Emulator) -> None:
    """The target prefix picks the service; Metering still works next to it."""
    two_services.set_scenario(None)
    status, _, answer = toy_call(two_services, {"Hello": 1}, access_key_id="AKIDTOY")
    assert (status, answer) == (
        200,
        {"Caller": "AKIDTOY", "Account": "123456789012", "Body": {"Hello": 1}},
    )
    assert two_services.client().register_usage(ProductCode="prod-paid", PublicKeyVersion=1)


def test_the_credential_scope_must_name_the_service(two_services: Emulator) -> None:
    """A request for the toy target signed for `aws-marketplace` is refused at the signature."""
    two_services.set_scenario(None)
    raw = b"{}"
    headers = signed(two_services.url + "/", raw, "AWSToyService.Echo", service="aws-marketplace")
    status, _, answer = send(two_services, raw, headers)
    assert (status, answer["__type"]) == (403, "InvalidSignatureException")


def test_callers_protect_every_service(two_services: Emulator) -> None:
    """With callers in the scenario, the second service verifies HMACs with the same secrets."""
    two_services.set_scenario({"callers": {"AKIDTOY": {"secret": "s", "account": "111122223333"}}})
    ok = toy_call(two_services, {}, access_key_id="AKIDTOY", secret="s")
    bad = toy_call(two_services, {}, access_key_id="AKIDTOY", secret="t")
    assert (ok[0], ok[2]["Account"]) == (200, "111122223333")
    assert (bad[0], bad[2]["__type"]) == (403, "InvalidSignatureException")


def test_errors_name_the_services_namespace(two_services: Emulator) -> None:
    """A modeled error of the second service carries its own x-amzn-ErrorType namespace."""
    two_services.set_scenario(None)
    status, headers, answer = toy_call(two_services, {"Fail": True})
    assert (status, answer["__type"]) == (400, "ToyFailureException")
    assert headers["x-amzn-ErrorType"] == (
        "ToyFailureException:http://internal.amazon.com/coral/com.amazonaws.toy/"
    )


def test_faults_and_counts_apply_to_every_service(two_services: Emulator) -> None:
    """Faults without `op` hit the second service too, and its calls are counted."""
    two_services.set_scenario({"faults": [{"kind": "throttle", "count": 1}]})
    two_services.reset()
    assert toy_call(two_services, {})[2]["__type"] == "ThrottlingException"
    assert toy_call(two_services, {})[0] == 200
    assert two_services.records()["requests"] == {"Echo": 2}


def test_an_unknown_prefix_is_an_unknown_operation(two_services: Emulator) -> None:
    """A target naming no registered service answers UnknownOperationException."""
    headers = signed(two_services.url + "/", GOOD, "AWSNoSuchService.Echo")
    assert send(two_services, GOOD, headers)[2]["__type"] == "UnknownOperationException"
