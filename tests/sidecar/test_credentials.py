"""The AWS identities AWS Marketplace accepts: IRSA (via moto's STS) and the ECS task role."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.errors import TransientError
from entitlement_sidecar.sidecar import instance, status
from entitlement_sidecar.testing import clean_env

from .conftest import PRODUCT, cli

ROLE_ARN = "arn:aws:iam::123456789012:role/marketplace-metering"
TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/shop-cluster/0f3a9c1d2e4b4a5f8a7b6c5d4e3f2a1b"
ECS_KEY = "ASIAECSTASKROLE00001"


def _base_env(emu: Emulator, status_dir: Path) -> dict[str, str]:
    return clean_env(
        AWS_ENDPOINT_URL_MARKETPLACE_METERING=emu.url,
        AWS_EC2_METADATA_DISABLED="true",
        ENTITLEMENT_PRODUCT_CODE=PRODUCT,
        ENTITLEMENT_PUBLIC_KEYS=str(emu.public_key_dir),
        ENTITLEMENT_STATUS_DIR=str(status_dir),
        ENTITLEMENT_STARTUP_TIMEOUT="20",
    )


@pytest.fixture
def moto_sts() -> Iterator[str]:
    """moto in server mode on a loopback port (STS AssumeRoleWithWebIdentity)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_irsa_credentials_from_sts_sign_the_call(
    emulator: Emulator, moto_sts: str, tmp_path: Path
) -> None:
    """With IRSA, the key STS hands out signs RegisterUsage; the pod UID binds the nonce."""
    from moto.sts.models import sts_backends

    token_file = tmp_path / "token"
    token_file.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2ln")
    env = _base_env(emulator, tmp_path)
    env.update(
        AWS_ROLE_ARN=ROLE_ARN,
        AWS_WEB_IDENTITY_TOKEN_FILE=str(token_file),
        AWS_ENDPOINT_URL_STS=moto_sts,
        AWS_REGION="us-east-1",
        POD_UID="7c9e6679-7425-40de-944b-e07fc1f90ae7",
    )
    result = cli("register", env=env)
    assert result.returncode == 0, result.stderr
    assert '"identity": "irsa"' in result.stderr
    issued = {role.access_key_id for role in sts_backends["123456789012"]["aws"].assumed_roles}
    caller = emulator.records()["registrations"][0]["caller"]
    assert caller in issued
    doc = status.read(str(tmp_path)) or {}
    assert doc["nonce"].startswith("7c9e6679-7425-40de-944b-e07fc1f90ae7:")


class _EcsAgent(BaseHTTPRequestHandler):
    """The ECS agent's two loopback endpoints: task-role credentials and task metadata v4."""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        if self.path == "/creds":
            expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            body: dict[str, Any] = {
                "AccessKeyId": ECS_KEY,
                "SecretAccessKey": "ecs-secret",
                "Token": "ecs-session-token",
                "Expiration": expires,
                "RoleArn": "arn:aws:iam::123456789012:role/task",
            }
        elif self.path == "/v4/task":
            body = {
                "TaskARN": TASK_ARN,
                "Cluster": "shop-cluster",
                "AvailabilityZone": "us-east-1a",
            }
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def ecs_agent() -> Iterator[str]:
    """A loopback stand-in for the ECS agent."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EcsAgent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_ecs_task_role_and_task_arn(emulator: Emulator, ecs_agent: str, tmp_path: Path) -> None:
    """On ECS: task-role key signs the call, region and task ARN come from task metadata."""
    env = _base_env(emulator, tmp_path)
    env.update(
        AWS_CONTAINER_CREDENTIALS_FULL_URI=f"{ecs_agent}/creds",
        ECS_CONTAINER_METADATA_URI_V4=f"{ecs_agent}/v4",
    )
    result = cli("register", env=env)
    assert result.returncode == 0, result.stderr
    assert '"identity": "ecs-task-role"' in result.stderr
    assert emulator.records()["registrations"][0]["caller"] == ECS_KEY
    doc = status.read(str(tmp_path)) or {}
    assert (doc["instance"], doc["instance_kind"]) == (TASK_ARN, "ecs-task")
    assert doc["nonce"].startswith(TASK_ARN + ":")
    assert cli("check", "--verify", env=env).returncode == 0
    assert cli("check", "--verify", env={**env, "POD_UID": "someone-else"}).returncode == 1


@pytest.mark.parametrize(
    "identity",
    [
        {"AWS_ACCESS_KEY_ID": "AKIDSTATIC", "AWS_SECRET_ACCESS_KEY": "x"},
        {"AWS_PROFILE": "default"},
        {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials"},
        {},
    ],
    ids=["static-keys", "profile", "pod-identity", "node-role"],
)
def test_an_identity_aws_refuses_is_warned_about_before_the_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, identity: dict[str, str]
) -> None:
    """Against AWS's own endpoint, an identity AWS Marketplace refuses is named in a warning."""
    from entitlement_sidecar.sidecar.caller import identify
    from entitlement_sidecar.sidecar.outcome import REAL_CLOCK
    from entitlement_sidecar.sidecar.settings import SidecarSettings

    settings = SidecarSettings(product_code=PRODUCT, status_dir=tmp_path, verify_signature=False)
    environ = {"POD_UID": "p1", "AWS_REGION": "us-east-1", **identity}
    with caplog.at_level("INFO"):
        identify(settings, environ, REAL_CLOCK)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("not accepted by AWS Marketplace" in w for w in warnings), warnings


def test_the_local_emulator_gets_no_identity_warning(emulator: Emulator, tmp_path: Path) -> None:
    """Static keys against the emulator on loopback: registered, and no identity warning."""
    env = {**_base_env(emulator, tmp_path), **emulator.env(), "POD_UID": "p1"}
    result = cli("register", env=env)
    assert result.returncode == 0
    assert "not accepted by AWS Marketplace" not in result.stderr
    assert '"identity": "static-keys"' in result.stderr  # still said, at INFO


@pytest.mark.parametrize(
    "platform",
    [
        {},
        {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials"},
    ],
    ids=["node-role", "eks-pod-identity"],
)
def test_pod_without_irsa_says_what_it_runs_as(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, platform: dict[str, str]
) -> None:
    """A pod with no IRSA annotation logs at start that it runs as the node role or with EKS
    Pod Identity (as an EKS add-on may be given) and that AWS Marketplace refuses both."""
    from entitlement_sidecar.sidecar.caller import identify
    from entitlement_sidecar.sidecar.outcome import REAL_CLOCK
    from entitlement_sidecar.sidecar.settings import SidecarSettings

    settings = SidecarSettings(product_code=PRODUCT, status_dir=tmp_path, verify_signature=False)
    with caplog.at_level("INFO"):
        identify(settings, {"POD_UID": "p1", "AWS_REGION": "us-east-1", **platform}, REAL_CLOCK)
    warning = next(r.getMessage() for r in caplog.records if "not accepted" in r.getMessage())
    assert "no eks.amazonaws.com/role-arn annotation" in warning
    assert "node's IAM role" in warning
    assert "EKS Pod Identity" in warning
    assert "AWS Marketplace refuses both" in warning


@pytest.mark.parametrize(
    "answer",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"[" * 100_000,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]",
    ],
    ids=["not-http", "cut-short", "nested-too-deeply", "not-an-object"],
)
def test_garbage_task_metadata_is_a_transient_error(answer: bytes) -> None:
    """Whatever the task metadata endpoint answers, reading it raises TransientError only."""
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(answer)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with pytest.raises(TransientError):
            instance.fetch_ecs_task(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=5)
        thread.join(5)


@pytest.mark.parametrize("kind", ["missing", "directory"], ids=str)
def test_an_unreadable_irsa_token_file_is_a_configuration_error(
    emulator: Emulator, tmp_path: Path, kind: str
) -> None:
    """IRSA whose token file cannot be read: exit 2 naming the variable, before any AWS call."""
    token = tmp_path / "token"
    if kind == "directory":
        token.mkdir()
    env = _base_env(emulator, tmp_path)
    env.update(
        AWS_ROLE_ARN=ROLE_ARN,
        AWS_WEB_IDENTITY_TOKEN_FILE=str(token),
        AWS_REGION="us-east-1",
        POD_UID="7c9e6679-7425-40de-944b-e07fc1f90ae7",
    )
    result = cli("register", env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "invalid configuration" in line]
    assert "AWS_WEB_IDENTITY_TOKEN_FILE" in line
    assert (status.read(str(tmp_path)) or {})["reason"] == "InvalidConfiguration"
    assert emulator.records()["registrations"] == []
