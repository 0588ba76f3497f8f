"""The local AWS Marketplace Metering emulator: real HTTP, AWS JSON 1.1, PS256 tokens, faults.

`Emulator` runs it in-process (tests, the demo, benchmarks); `entitlement-sidecar emulator` runs
it as a process (`cli.py`). See the README section "Metering emulator" for the scenario format.
"""

from entitlement_sidecar.emulator.scenario import (
    DEFAULT_SCENARIO,
    Scenario,
    ScenarioError,
    load_scenario,
)
from entitlement_sidecar.emulator.server import Emulator

__all__ = ["DEFAULT_SCENARIO", "Emulator", "Scenario", "ScenarioError", "load_scenario"]
