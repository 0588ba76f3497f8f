"""`doctor` on a sidecar with the usage intake on also proves the MeterUsage permission."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from entitlement_sidecar.emulator import Emulator
from tests.doctor import fakes
from tests.doctor.conftest import doctor, pod_env, register


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """The emulator's default scenario: prod-paid entitled, dimensions users and gb."""
    with Emulator() as emu:
        yield emu


def test_a_metered_pod_gets_a_meter_usage_dry_run(emulator: Emulator, tmp_path: Path) -> None:
    """The extra `usage-permission` check is a DryRun for a usage dimension: nothing recorded."""
    env = pod_env(emulator, tmp_path / "status", ENTITLEMENT_USAGE_DIMENSIONS="gb,users")
    register(env)
    result = doctor(env)
    assert result.code == 0, result.checks
    line = result.checks["usage-permission"]
    assert line["status"] == "ok"
    assert "for dimension 'gb'" in line["found"]
    assert emulator.records()["meter_usage"] == []


def test_a_role_without_meter_usage_fails_the_metered_pod(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The role may register but not meter: the usage check fails and names the action."""
    env = pod_env(emulator, tmp_path / "status", ENTITLEMENT_USAGE_DIMENSIONS="gb")
    register(env)
    with fakes.serve({}, fakes.aws_error("AccessDeniedException")) as denied:
        env["AWS_ENDPOINT_URL_MARKETPLACE_METERING"] = denied
        result = doctor(env)
    assert result.code == 1
    line = result.checks["usage-permission"]
    assert line["status"] == "fail"
    assert "grant aws-marketplace:MeterUsage to the pod's IAM role" in line["fix"]


def test_without_the_intake_there_is_no_meter_usage_check(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A pod that only registers is not asked for a permission it does not need."""
    env = pod_env(emulator, tmp_path / "status")
    register(env)
    assert "usage-permission" not in doctor(env).checks
