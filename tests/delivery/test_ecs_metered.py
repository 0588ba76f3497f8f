"""ECS task definitions of a metered product (awsvpc, bridge) and the sidecar's metered policy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from botocore.validate import ParamValidator

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.sidecar.usage.client import request
from entitlement_sidecar.testing import free_port
from tests.delivery.helm import REPO
from tests.delivery.test_ecs_iam import (
    IAM,
    SIDECAR,
    STATUS_DIR,
    containers,
    env,
    load,
    register_task_definition_shape,
)

ECS = REPO / "manifests" / "ecs"
AWSVPC = ECS / "task-definition-metered.json"
BRIDGE = ECS / "task-definition-metered-bridge.json"
BOTH = pytest.mark.parametrize("path", [AWSVPC, BRIDGE], ids=["awsvpc", "bridge"])
ECS_MAX_STOP_TIMEOUT = 120


@BOTH
def test_metered_task_definitions_pass_botocore_model(path: Path) -> None:
    """Valid RegisterTaskDefinition input per botocore's own ECS model."""
    report = ParamValidator().validate(load(path), register_task_definition_shape())
    assert not report.has_errors(), report.generate_report()


def test_awsvpc_shares_the_loopback_intake_with_the_app() -> None:
    """awsvpc (Fargate too): one network namespace, the app posts to 127.0.0.1:9843."""
    task = load(AWSVPC)
    assert task["networkMode"] == "awsvpc"
    by_name = containers(task)
    sidecar = env(by_name[SIDECAR])
    assert sidecar["ENTITLEMENT_USAGE_PORT"] == "9843"
    assert env(by_name["app"])["USAGE_URL"] == "http://127.0.0.1:9843/v1/usage"
    assert all(p["containerPort"] != 9843 for p in by_name[SIDECAR]["portMappings"])


def test_bridge_mode_takes_usage_on_a_socket_in_the_task_volume() -> None:
    """bridge: no shared loopback, so the intake is a Unix socket on the status volume (EC2)."""
    task = load(BRIDGE)
    assert (task["networkMode"], task["requiresCompatibilities"]) == ("bridge", ["EC2"])
    by_name = containers(task)
    path = env(by_name[SIDECAR])["ENTITLEMENT_USAGE_SOCKET"]
    assert path.startswith(STATUS_DIR + "/")
    assert env(by_name["app"])["USAGE_SOCKET"] == path
    mounts = {m["containerPath"]: m["readOnly"] for m in by_name["app"]["mountPoints"]}
    assert mounts[STATUS_DIR] is True  # connecting to a socket needs no write access to the mount


@BOTH
def test_stop_timeout_leaves_time_to_send_the_partial_hour(path: Path) -> None:
    """ECS stops the app first (it depends on the sidecar), then gives the sidecar stopTimeout."""
    by_name = containers(load(path))
    sidecar = by_name[SIDECAR]
    shutdown = float(env(sidecar)["ENTITLEMENT_USAGE_SHUTDOWN_TIMEOUT"])
    assert shutdown + 10 <= sidecar["stopTimeout"] <= ECS_MAX_STOP_TIMEOUT
    assert by_name["app"]["dependsOn"] == [{"containerName": SIDECAR, "condition": "HEALTHY"}]


def test_the_metered_policy_allows_register_and_meter_usage_only() -> None:
    """The task role of a metered task needs both actions (no managed policy grants both)."""
    policy = load(IAM / "policy-sidecar-metered.json")
    [statement] = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == ["aws-marketplace:RegisterUsage", "aws-marketplace:MeterUsage"]
    assert statement["Resource"] == "*"
    assert load(AWSVPC)["taskRoleArn"] == load(BRIDGE)["taskRoleArn"]


@BOTH
def test_the_sidecar_command_takes_usage_and_sends_it_at_stop(path: Path, tmp_path: Path) -> None:
    """The task's sidecar command and env: usage posted the way the app would, sent at SIGTERM."""
    sidecar = containers(load(path))[SIDECAR]
    status = tmp_path / "status"  # the task volume
    status.mkdir()
    scenario = {"products": {"prod-paid": {"dimensions": ["gb_scanned", "jobs"]}}}
    with Emulator(scenario) as emu:
        environ = {
            k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ENTITLEMENT_"))
        }
        environ |= env(sidecar) | emu.env(access_key_id="AKIDTASKMETERED")
        socket_path = environ.get("ENTITLEMENT_USAGE_SOCKET", "").replace(STATUS_DIR, str(status))
        port = free_port()
        environ |= {
            "ENTITLEMENT_PRODUCT_CODE": "prod-paid",
            "ENTITLEMENT_STATUS_DIR": str(status),
            "ENTITLEMENT_PUBLIC_KEYS": str(emu.public_key_dir),
            "ENTITLEMENT_PORT": str(free_port()),
            "ENTITLEMENT_USAGE_PORT": str(port),
            "ENTITLEMENT_INSTANCE_ID": "task-metered-0001",
        }
        if socket_path:
            environ["ENTITLEMENT_USAGE_SOCKET"] = socket_path
        entrypoint = str(Path(sys.executable).parent / "entitlement-sidecar")
        body = json.dumps({"dimension": "jobs", "quantity": "3", "id": "job-1"}).encode()
        with subprocess.Popen([entrypoint, *sidecar["command"]], env=environ) as proc:
            try:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        reply = request(
                            "POST", "/v1/usage", body, port=port, unix=socket_path or None
                        )
                        break
                    except OSError:
                        assert time.monotonic() < deadline, "the intake never opened"
                        time.sleep(0.05)
                assert reply.status == 202
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=60) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
        [record] = emu.records()["meter_usage"]
        assert (record["dimension"], record["quantity"]) == ("jobs", "3")
