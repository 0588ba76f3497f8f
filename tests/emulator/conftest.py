"""Fixtures for the emulator suite: one shared emulator per session, reset before each test."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.emulator.server import DUMMY_SECRET

if TYPE_CHECKING:
    from mypy_boto3_meteringmarketplace import MarketplaceMeteringClient

PAID = "prod-paid"


@pytest.fixture(scope="session")
def shared_emulator() -> Iterator[Emulator]:
    """One running emulator for the whole session (key generation happens once)."""
    with Emulator() as emu:
        yield emu


def _fresh(emu: Emulator) -> Emulator:
    emu.set_scenario(None)
    emu.reset()
    return emu


@pytest.fixture
def emulator(shared_emulator: Emulator) -> Emulator:
    """The shared emulator with the default scenario and no records."""
    return _fresh(shared_emulator)


def loose_client(
    emu: Emulator, access_key_id: str = "AKIDPOD1", region: str = "us-east-1", **config: Any
) -> MarketplaceMeteringClient:
    """A boto3 client without client-side parameter validation, so bad input reaches the wire."""
    merged: dict[str, Any] = {"retries": {"total_max_attempts": 1}, "parameter_validation": False}
    merged.update(config)
    return boto3.session.Session().client(
        "meteringmarketplace",
        region_name=region,
        endpoint_url=emu.url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=DUMMY_SECRET,
        config=Config(**merged),
    )


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError."""
    response: dict[str, Any] = getattr(exc, "response", {})
    return str(response.get("Error", {}).get("Code", ""))


def jws_part(token: str, index: int) -> dict[str, Any]:
    """Decode the JSON header (0) or payload (1) of a compact JWS."""
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def recent(minutes: float = 1) -> datetime:
    """A timestamp a little in the past (inside every acceptance window)."""
    return datetime.now(UTC) - timedelta(minutes=minutes)


FIXED_NOW = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)


@pytest.fixture(scope="session")
def shared_clocked() -> Iterator[Emulator]:
    """A second emulator whose clock is fixed at FIXED_NOW."""
    with Emulator(now=lambda: FIXED_NOW) as emu:
        yield emu


@pytest.fixture
def clocked(shared_clocked: Emulator) -> Emulator:
    """The fixed-clock emulator with the default scenario and no records."""
    return _fresh(shared_clocked)


@contextmanager
def aws_error(code: str) -> Iterator[None]:
    """Expect a botocore ClientError carrying the AWS error `code`."""
    with pytest.raises(ClientError) as caught:
        yield
    assert error_code(caught.value) == code
