"""Fixtures of the operator suite: kmock, the Metering emulator on a fake clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from entitlement_sidecar.emulator import Emulator
from tests.operator.harness import FakeClock, Kube, kube_server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def kube() -> Iterator[Kube]:
    with kube_server() as server:
        yield server


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[Emulator]:
    with Emulator(
        now=clock,
        scenario={"products": {"prod-paid": {"dimensions": ["users", "gb"]}}, "throttle": None},
    ) as emulator:
        yield emulator
