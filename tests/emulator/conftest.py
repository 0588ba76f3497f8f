"""Fixtures for the emulator suite: one shared emulator per session, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from entitlement_sidecar.emulator import Emulator
from tests.emulator.helpers import FIXED_NOW


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


@pytest.fixture(scope="session")
def shared_clocked() -> Iterator[Emulator]:
    """A second emulator whose clock is fixed at FIXED_NOW."""
    with Emulator(now=lambda: FIXED_NOW) as emu:
        yield emu


@pytest.fixture
def clocked(shared_clocked: Emulator) -> Emulator:
    """The fixed-clock emulator with the default scenario and no records."""
    return _fresh(shared_clocked)
