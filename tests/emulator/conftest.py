"""Fixtures for the emulator suite: one shared emulator per session, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from entitlement_sidecar.emulator import Emulator


@pytest.fixture(scope="session")
def shared_emulator() -> Iterator[Emulator]:
    """One running emulator for the whole session (key generation happens once)."""
    with Emulator() as emu:
        yield emu


@pytest.fixture
def emulator(shared_emulator: Emulator) -> Emulator:
    """The shared emulator with the default scenario and no records."""
    shared_emulator.set_scenario(None)
    shared_emulator.reset()
    return shared_emulator
