"""ECS task definitions and IAM policies: valid for AWS's own models, and wired as documented."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.model import StructureShape
from botocore.validate import ParamValidator

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.testing import free_port
from tests.delivery.helm import REPO

ECS = REPO / "manifests" / "ecs"
IAM = REPO / "manifests" / "iam"
RUN = ECS / "task-definition.json"
ONE_SHOT = ECS / "task-definition-register.json"
SIDECAR = "entitlement-sidecar"
STATUS_DIR = "/var/run/entitlement"
STARTUP_TIMEOUT = 1800
LAST_CALL_SLACK = 60  # process start plus the last in-flight AWS call (connect + read timeouts)


def passes(command: list[str], environ: dict[str, str]) -> bool:
    """True when the command exits 0."""
    return subprocess.run(command, env=environ, capture_output=True, check=False).returncode == 0


def register_task_definition_shape() -> StructureShape:
    """botocore's own input model of ECS RegisterTaskDefinition."""
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    assert shape is not None
    return shape


def load(path: Path) -> dict[str, Any]:
    """A JSON file as a dict."""
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def containers(task: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Container definitions by name."""
    return {c["name"]: c for c in task["containerDefinitions"]}


def env(container: dict[str, Any]) -> dict[str, str]:
    """A container's environment as a dict."""
    return {e["name"]: e["value"] for e in container.get("environment", [])}


@pytest.mark.parametrize("path", [RUN, ONE_SHOT], ids=["run", "one-shot"])
def test_task_definition_passes_botocore_register_task_definition_model(path: Path) -> None:
    """The file is a valid RegisterTaskDefinition input per botocore's own ECS model."""
    shape = register_task_definition_shape()
    report = ParamValidator().validate(load(path), shape)
    assert not report.has_errors(), report.generate_report()


def test_botocore_validator_catches_a_bad_task_definition() -> None:
    """The validator used above rejects an unknown field and a wrong type (it is not a no-op)."""
    shape = register_task_definition_shape()
    task = load(RUN)
    task["containerDefinitions"][0]["healthcheck"] = {}
    task["containerDefinitions"][0]["essential"] = "yes"
    report = ParamValidator().validate(task, shape).generate_report()
    assert 'Unknown parameter in containerDefinitions[0]: "healthcheck"' in report
    assert "containerDefinitions[0].essential" in report


@pytest.mark.parametrize("path", [RUN, ONE_SHOT], ids=["run", "one-shot"])
def test_dependencies_name_existing_containers(path: Path) -> None:
    """Every dependsOn names a container of the same task, and the app depends on the sidecar."""
    by_name = containers(load(path))
    for container in by_name.values():
        for dep in container.get("dependsOn", []):
            assert dep["containerName"] in by_name
    assert [d["containerName"] for d in by_name["app"]["dependsOn"]] == [SIDECAR]


@pytest.mark.parametrize("path", [RUN, ONE_SHOT], ids=["run", "one-shot"])
def test_status_volume_is_shared_read_write_then_read_only(path: Path) -> None:
    """The task volume is mounted read-write in the sidecar and read-only in the app."""
    task = load(path)
    volumes = {v["name"] for v in task["volumes"]}
    by_name = containers(task)
    for name, read_only in ((SIDECAR, False), ("app", True)):
        mounts = [m for m in by_name[name]["mountPoints"] if m["containerPath"] == STATUS_DIR]
        assert len(mounts) == 1, name
        assert mounts[0]["readOnly"] is read_only
        assert mounts[0]["sourceVolume"] in volumes
    assert env(by_name[SIDECAR])["ENTITLEMENT_STATUS_DIR"] == STATUS_DIR


@pytest.mark.parametrize("path", [RUN, ONE_SHOT], ids=["run", "one-shot"])
def test_sidecar_is_hardened_with_task_role_and_awslogs(path: Path) -> None:
    """The sidecar runs as 65532, read-only root, no capabilities, with awslogs and a task role."""
    task = load(path)
    sidecar = containers(task)[SIDECAR]
    assert task["taskRoleArn"].startswith("arn:aws:iam::")
    assert sidecar["user"] == "65532"
    assert sidecar["readonlyRootFilesystem"] is True
    assert sidecar["linuxParameters"]["capabilities"] == {"drop": ["ALL"]}
    assert sidecar["logConfiguration"]["logDriver"] == "awslogs"
    assert containers(task)["app"]["readonlyRootFilesystem"] is True
    assert env(sidecar)["ENTITLEMENT_PRODUCT_CODE"]


def test_run_shape_gates_the_app_on_a_healthy_sidecar() -> None:
    """Long-running shape: an essential sidecar health-checked by `entitlement-sidecar check`."""
    by_name = containers(load(RUN))
    sidecar = by_name[SIDECAR]
    assert sidecar["essential"] is True
    assert sidecar["command"] == ["run"]
    assert sidecar["healthCheck"]["command"] == ["CMD", "entitlement-sidecar", "check"]
    assert by_name["app"]["dependsOn"] == [{"containerName": SIDECAR, "condition": "HEALTHY"}]


def test_health_check_budget_covers_the_startup_timeout() -> None:
    """ECS marks the sidecar unhealthy only after its 1800 s retry budget (plus slack) is over."""
    sidecar = containers(load(RUN))[SIDECAR]
    check = sidecar["healthCheck"]
    assert str(STARTUP_TIMEOUT) == env(sidecar)["ENTITLEMENT_STARTUP_TIMEOUT"]
    budget = unhealthy_after(check["startPeriod"], check["interval"], check["retries"])
    assert budget >= STARTUP_TIMEOUT + LAST_CALL_SLACK
    # ECS limits: startPeriod <= 300, retries <= 10, so the interval is the smallest that fits.
    assert (check["startPeriod"], check["retries"]) == (300, 10)
    assert unhealthy_after(300, check["interval"] - 1, 10) < STARTUP_TIMEOUT + LAST_CALL_SLACK


@pytest.mark.parametrize(
    ("start_period", "interval", "retries", "expected"),
    [(300, 160, 10, 1760), (300, 170, 10, 1870), (0, 30, 3, 90), (300, 100, 10, 1200)],
    ids=["160s-inside-budget", "170s", "no-start-period", "period-on-the-grid"],
)
def test_unhealthy_after_follows_dockers_probe_grid(
    start_period: int, interval: int, retries: int, expected: int
) -> None:
    """Probes run every interval from start; only those after the start period count."""
    assert unhealthy_after(start_period, interval, retries) == expected


def unhealthy_after(start_period: int, interval: int, retries: int) -> int:
    """Seconds from start until Docker (and so ECS) marks a never-passing check unhealthy: the
    `retries`-th probe on the `interval` grid not before `start_period` (a probe due exactly at
    its end runs a little late, so it counts: the earlier, safe side)."""
    first_counted = max(1, math.ceil(start_period / interval))
    return (first_counted + retries - 1) * interval


def test_one_shot_shape_gates_the_app_on_register_success() -> None:
    """The one-shot shape: a non-essential `register` container the app waits on with SUCCESS."""
    by_name = containers(load(ONE_SHOT))
    sidecar = by_name[SIDECAR]
    assert sidecar["essential"] is False
    assert sidecar["command"] == ["register"]
    assert "healthCheck" not in sidecar
    assert by_name["app"]["dependsOn"] == [{"containerName": SIDECAR, "condition": "SUCCESS"}]


@pytest.mark.parametrize(
    ("name", "action"),
    [("policy-sidecar.json", "RegisterUsage"), ("policy-operator.json", "MeterUsage")],
    ids=["sidecar", "operator"],
)
def test_iam_policy_allows_exactly_its_action_on_any_resource(name: str, action: str) -> None:
    """Each shipped IAM policy parses and allows only its Marketplace action, on `*`."""
    policy = load(IAM / name)
    assert policy["Version"] == "2012-10-17"
    [statement] = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == [f"aws-marketplace:{action}"]
    assert statement["Resource"] == "*"


@pytest.mark.parametrize("path", [RUN, ONE_SHOT], ids=["run", "one-shot"])
def test_task_definition_command_env_and_health_check_work(path: Path, tmp_path: Path) -> None:
    """The sidecar's ECS command and env register against the emulator; its health check passes."""
    sidecar = containers(load(path))[SIDECAR]
    entrypoint = str(Path(sys.executable).parent / "entitlement-sidecar")
    status = tmp_path / "status"  # the task volume
    status.mkdir()
    with Emulator(public_key_dir=tmp_path / "keys") as emu:
        environ = {
            k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ENTITLEMENT_"))
        }
        environ |= env(sidecar) | emu.env(access_key_id="AKIDTASK1")
        environ |= {
            "ENTITLEMENT_PRODUCT_CODE": "prod-paid",  # the emulator's entitled product
            "ENTITLEMENT_STATUS_DIR": str(status),
            "ENTITLEMENT_PUBLIC_KEYS": str(emu.public_key_dir),  # baked into the seller image
            "ENTITLEMENT_PORT": str(free_port()),
            "ENTITLEMENT_INSTANCE_ID": "task-0001",  # ECS: the task ARN from the metadata endpoint
        }
        command = [entrypoint, *sidecar["command"]]
        if sidecar["command"] == ["register"]:
            assert subprocess.run(command, env=environ, check=False, timeout=60).returncode == 0
        else:
            health = sidecar["healthCheck"]["command"]
            assert health[0] == "CMD"
            probe = [entrypoint, *health[2:]] if health[1] == SIDECAR else health[1:]
            with subprocess.Popen(command, env=environ, stdout=subprocess.DEVNULL) as proc:
                try:
                    deadline = time.monotonic() + 60
                    while subprocess.run(
                        probe, env=environ, capture_output=True, check=False
                    ).returncode:
                        assert time.monotonic() < deadline, "health check never passed"
                        time.sleep(0.1)
                finally:
                    proc.terminate()
        assert passes([entrypoint, "check", "--verify"], environ)
