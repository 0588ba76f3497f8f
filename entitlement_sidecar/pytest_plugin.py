"""pytest plugin (entry point `pytest11`): the `metering_emulator` fixture for sellers' own tests.

Installing the package makes the fixture available to every pytest run; `-p
no:entitlement_sidecar_emulator` turns the plugin off. The scenario comes from the
`metering_scenario` marker (a mapping, or a YAML/JSON file path relative to the test file), or
from overriding the `metering_scenario` fixture for a module or directory; without either, the
default scenario. Loading the plugin imports only pytest and the standard library: the emulator
(boto3, cryptography, pydantic) is imported when a test first asks for the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from entitlement_sidecar.emulator.harness import MeteringEmulator


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker (so --strict-markers accepts it)."""
    config.addinivalue_line(
        "markers",
        "metering_scenario(scenario): the metering_emulator fixture's scenario: a mapping, or a "
        "YAML/JSON file path relative to the test file",
    )


@pytest.fixture
def metering_scenario(request: pytest.FixtureRequest) -> Any:
    """The scenario for `metering_emulator`: the `metering_scenario` marker's argument, or None
    (the default scenario). Override this fixture to give a module or directory its own."""
    marker = request.node.get_closest_marker("metering_scenario")
    if marker is None:
        return None
    value = marker.args[0] if marker.args else marker.kwargs.get("scenario")
    if isinstance(value, str | Path):
        path = Path(value)
        return path if path.is_absolute() else Path(request.node.path).parent / path
    return value


@pytest.fixture
def metering_emulator(metering_scenario: Any) -> Iterator[MeteringEmulator]:
    """A Metering emulator on a free loopback port for this test; stopped afterwards."""
    from entitlement_sidecar.emulator.harness import MeteringEmulator

    with MeteringEmulator(metering_scenario) as emulator:
        yield emulator
