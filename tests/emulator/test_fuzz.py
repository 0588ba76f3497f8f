"""Garbage in, AWS-style errors out: random and model-shaped bodies never crash the emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from botocore.model import ListShape, Shape, StructureShape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entitlement_sidecar.emulator.model import OPERATIONS
from entitlement_sidecar.emulator.request import Request
from entitlement_sidecar.emulator.service import Service
from entitlement_sidecar.emulator.validation import service_model
from tests.emulator.helpers import FIXED_NOW

AUTH = (
    "AWS4-HMAC-SHA256 Credential=AKIDFUZZ/20260310/us-east-1/aws-marketplace/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
)
SCENARIO = {
    "throttle": None,
    "products": {"prod-paid": {"dimensions": ["users", "gb"]}, "prod-lapsed": {"entitled": False}},
    "customers": {"token-abc": {"customer_aws_account_id": "123456789012", "product": "prod-paid"}},
}
STRINGS = ["prod-paid", "prod-lapsed", "users", "gb", "1", "2.5", "0", "", "a b", "team", "#", "?"]
STRINGS += ["token-abc", "123456789012", "x" * 300]
JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10), st.just([])
)
RELAXED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    """A socket-less emulator core on the fixed test clock."""
    core = Service(SCENARIO, now=lambda: FIXED_NOW)
    yield core
    core.close()


def shaped(shape: Shape, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values shaped like the model's `shape`, mostly plausible, sometimes junk."""
    if isinstance(shape, StructureShape):
        members = {name: shaped(member, depth + 1) for name, member in shape.members.items()}
        required = {name: members.pop(name) for name in shape.required_members}
        return st.fixed_dictionaries(required, optional=members)
    if isinstance(shape, ListShape):
        return st.lists(shaped(shape.member, depth + 1), max_size=3 if depth else 5)
    plausible: st.SearchStrategy[Any] = {
        "string": st.sampled_from(STRINGS) | st.text(max_size=8),
        "integer": st.integers(min_value=-2, max_value=2**31 + 1),
        "boolean": st.booleans(),
        "timestamp": st.integers(min_value=-30 * 3600, max_value=3600).map(
            lambda s: (FIXED_NOW + timedelta(seconds=s)).timestamp()
        ),
    }.get(shape.type_name, JUNK)
    return st.integers(0, 19).flatmap(lambda roll: JUNK if roll == 0 else plausible)


def answer(service: Service, operation: str, raw: bytes) -> tuple[int, bytes]:
    """Status and body for one request through the emulator core."""
    headers = (
        ("X-Amz-Target", f"AWSMPMeteringService.{operation}"),
        ("Content-Type", "application/x-amz-json-1.1"),
        ("Authorization", AUTH),
    )
    outcome = service.handle(Request("POST", "/", "", headers, raw))
    return outcome.status, outcome.body


def assert_client_error_or_success(status: int, body: bytes) -> None:
    """200, or a 4xx with a JSON `__type`: never the emulator's own 500."""
    assert status == 200 or 400 <= status < 500, body
    if status != 200:
        assert json.loads(body)["__type"]


@pytest.mark.parametrize("operation", OPERATIONS, ids=str)
def test_model_shaped_bodies_never_crash(service: Service, operation: str) -> None:
    """Bodies shaped after the operation's input (with junk mixed in) answer success or a 4xx."""
    input_shape = service_model().operation_model(operation).input_shape
    assert input_shape is not None

    @settings(RELAXED, max_examples=150)
    @given(body=shaped(input_shape))
    def check(body: dict[str, Any]) -> None:
        assert_client_error_or_success(*answer(service, operation, json.dumps(body).encode()))

    check()


@settings(RELAXED, max_examples=100)
@given(raw=st.binary(max_size=200))
def test_random_bytes_never_crash(service: Service, raw: bytes) -> None:
    """Arbitrary bytes as a body answer a 4xx."""
    status, body = answer(service, "MeterUsage", raw)
    assert 400 <= status < 500, body
