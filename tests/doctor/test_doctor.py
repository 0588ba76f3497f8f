"""`entitlement-sidecar doctor`: each misconfiguration gets its line, its fix and the exit code.

The doctor runs as a real process against the emulator and loopback stand-ins (an IMDS handing
out a node role, endpoints with a skewed clock, an AWS that answers AccessDenied, a closed port).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.sidecar import status
from entitlement_sidecar.testing import free_port

from . import fakes
from .conftest import doctor, pod_env, register


@dataclass(frozen=True)
class Stand:
    """The loopback stand-ins of one test module."""

    imds: str
    far_ahead: str
    slightly_ahead: str
    denied: str
    closed: str


@pytest.fixture(scope="module")
def stand() -> Iterator[Stand]:
    no = fakes.aws_error("AccessDeniedException")
    with (
        fakes.serve(fakes.imds("eks-node-role"), fakes.not_found) as imds,
        fakes.serve({}, fakes.skewed_date(600)) as far_ahead,
        fakes.serve({}, fakes.skewed_date(60)) as slightly_ahead,
        fakes.serve({}, no) as denied,
    ):
        yield Stand(imds, far_ahead, slightly_ahead, denied, f"http://127.0.0.1:{free_port()}")


@pytest.fixture
def healthy(emulator: Emulator, tmp_path: Path) -> dict[str, str]:
    """A registered pod whose configuration is right."""
    env = pod_env(emulator, tmp_path / "status")
    register(env)
    return env


def test_a_correctly_configured_pod_prints_only_ok_lines(healthy: dict[str, str]) -> None:
    """Every check of a registered demo pod says ok, in text, and the exit code is 0."""
    done = subprocess.run(
        [sys.executable, "-m", "entitlement_sidecar", "doctor"],
        env=healthy,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = done.stdout.splitlines()[1:]
    assert done.returncode == 0, done.stdout
    assert len(lines) == 9
    assert all(line.startswith("ok ") for line in lines), done.stdout


def recorded(emulator: Emulator) -> dict[str, object]:
    """What the emulator holds as AWS's state (registrations, records), not its call counters."""
    records = emulator.records()
    return {name: records[name] for name in ("registrations", "meter_usage", "batch_meter_usage")}


def test_the_doctor_changes_nothing(emulator: Emulator, healthy: dict[str, str]) -> None:
    """No RegisterUsage, no metering record: the emulator's state is the same after a run."""
    before = emulator.records()
    assert doctor(healthy).code == 0
    after = emulator.records()
    assert recorded(emulator) == {k: before[k] for k in recorded(emulator)}
    assert after["requests"] == before["requests"]


Edit = Callable[[dict[str, str], Stand], None]


def _without(*names: str) -> Edit:
    def edit(env: dict[str, str], _stand: Stand) -> None:
        for name in names:
            env.pop(name, None)

    return edit


def _with(**values: str) -> Edit:
    def edit(env: dict[str, str], _stand: Stand) -> None:
        env.update(values)

    return edit


def _endpoint(which: Callable[[Stand], str]) -> Edit:
    def edit(env: dict[str, str], stand: Stand) -> None:
        env["AWS_ENDPOINT_URL_MARKETPLACE_METERING"] = which(stand)

    return edit


def _node_role(env: dict[str, str], stand: Stand) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_EC2_METADATA_DISABLED"):
        env.pop(name)
    env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = stand.imds


def _pod_identity(env: dict[str, str], _stand: Stand) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(name)
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://169.254.170.23/v1/credentials"
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = (
        "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"
    )


def _irsa_without_token(env: dict[str, str], _stand: Stand) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(name)
    env["AWS_ROLE_ARN"] = "arn:aws:iam::123456789012:role/seller-sidecar"
    env["AWS_WEB_IDENTITY_TOKEN_FILE"] = "/nonexistent/token"


@dataclass(frozen=True)
class Case:
    """A misconfiguration, the check that must report it, and what its line must say."""

    id: str
    edit: Edit
    check: str
    status: str
    found: str
    fix: str


CASES = [
    Case(
        "bad-product-code",
        _with(ENTITLEMENT_PRODUCT_CODE="has space"),
        "settings",
        "fail",
        "ENTITLEMENT_PRODUCT_CODE='has space' must be 1-255 characters",
        "productCode",
    ),
    Case(
        "status-dir-missing",
        _with(ENTITLEMENT_STATUS_DIR="/nonexistent/status"),
        "status-dir",
        "fail",
        "No such file or directory",
        "fsGroup",
    ),
    Case(
        "key-ring-wrong-version",
        _with(ENTITLEMENT_PUBLIC_KEY_VERSION="7"),
        "key-ring",
        "fail",
        "no readable key for public key version 7",
        "public key version 7",
    ),
    Case(
        "untrusted-product-code",
        _with(ENTITLEMENT_TRUSTED_PRODUCT_CODES="prod-other"),
        "trusted-codes",
        "fail",
        "'prod-paid' is not in ENTITLEMENT_TRUSTED_PRODUCT_CODES",
        "trusted product codes",
    ),
    Case(
        "no-allow-list",
        _without("ENTITLEMENT_TRUSTED_PRODUCT_CODES"),
        "trusted-codes",
        "warn",
        "no allow-list",
        "bake ENTITLEMENT_TRUSTED_PRODUCT_CODES",
    ),
    Case(
        "node-role-via-imds",
        _node_role,
        "identity",
        "fail",
        "node role 'eks-node-role' from IMDS",
        "eks.amazonaws.com/role-arn",
    ),
    Case(
        "eks-pod-identity",
        _pod_identity,
        "identity",
        "fail",
        "EKS Pod Identity",
        "remove the EKS Pod Identity association",
    ),
    Case(
        "irsa-token-unreadable",
        _irsa_without_token,
        "identity",
        "fail",
        "token is unreadable: /nonexistent/token",
        "projected service-account token",
    ),
    Case(
        "static-keys-against-aws",
        _without("AWS_ENDPOINT_URL_MARKETPLACE_METERING"),
        "identity",
        "fail",
        "AWS_ACCESS_KEY_ID is set",
        "remove AWS_ACCESS_KEY_ID",
    ),
    Case(
        "no-region",
        _without("AWS_REGION", "AWS_DEFAULT_REGION"),
        "region",
        "fail",
        "no AWS region",
        "region",
    ),
    Case(
        "unreachable-endpoint",
        _endpoint(lambda stand: stand.closed),
        "endpoint",
        "fail",
        "TCP connect to 127.0.0.1",
        "VPC interface endpoint for com.amazonaws.us-east-1.metering.marketplace",
    ),
    Case(
        "clock-ten-minutes-off",
        _endpoint(lambda stand: stand.far_ahead),
        "clock",
        "fail",
        "s behind the endpoint (",
        "synchronise the node's clock",
    ),
    Case(
        "clock-a-minute-off",
        _endpoint(lambda stand: stand.slightly_ahead),
        "clock",
        "warn",
        "s behind the endpoint (",
        "synchronise the node's clock",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_each_misconfiguration_names_what_it_found_and_the_fix(
    healthy: dict[str, str], stand: Stand, case: Case
) -> None:
    """The check's line says what it found and the fix; a fail means exit 1, a warn exit 0."""
    env = dict(healthy)
    case.edit(env, stand)
    result = doctor(env)
    line = result.checks[case.check]
    assert line["status"] == case.status, line
    assert case.found in line["found"], line
    assert case.fix in line["fix"], line
    if case.status == "fail":
        assert result.code == 1
    elif set(result.status().values()) <= {"ok", "warn"}:
        assert result.code == 0


def test_register_usage_permission_is_only_proven_by_a_real_call(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Before any RegisterUsage the permission is 'not proven' (warn), never probed."""
    env = pod_env(emulator, tmp_path / "status")
    result = doctor(env)
    line = result.checks["permission"]
    assert line["status"] == "warn"
    assert "RegisterUsage has no dry run, only a real call proves the permission" in line["found"]
    assert "aws-marketplace:RegisterUsage" in line["fix"]


def test_a_refused_register_usage_in_status_json_fails_the_permission_check(
    emulator: Emulator, tmp_path: Path
) -> None:
    """status.json saying AccessDeniedException points at the IAM action to grant."""
    env = pod_env(emulator, tmp_path / "status")
    doc = status.document(
        "denied", reason="AccessDeniedException", message="not authorized", attempts=1
    )
    status.write(env["ENTITLEMENT_STATUS_DIR"], doc)
    line = doctor(env).checks["permission"]
    assert line["status"] == "fail"
    assert "AWSMarketplaceMeteringRegisterUsage" in line["fix"]


def _operator_env(emulator: Emulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = pod_env(emulator, tmp_path / "status", **extra)
    for name in [n for n in env if n.startswith("ENTITLEMENT_")]:
        env.pop(name)
    env.update(
        ENTITLEMENT_OPERATOR_PRODUCT_CODE="prod-paid",
        ENTITLEMENT_OPERATOR_DIMENSIONS="users,gb",
        POD_NAMESPACE="metering",
    )
    return env


def test_the_operator_permission_is_proven_by_a_metering_dry_run(
    emulator: Emulator, tmp_path: Path
) -> None:
    """For the operator, MeterUsage DryRun says whether the role may meter; nothing is recorded."""
    env = _operator_env(emulator, tmp_path)
    before = recorded(emulator)
    result = doctor(env)
    assert result.code == 0, result.checks
    line = result.checks["permission"]
    assert line["status"] == "ok"
    assert "holds aws-marketplace:MeterUsage" in line["found"]
    assert recorded(emulator) == before


def test_an_operator_role_without_meter_usage_is_told_which_action_to_grant(
    emulator: Emulator, tmp_path: Path, stand: Stand
) -> None:
    """AccessDenied on the dry run: fail, naming aws-marketplace:MeterUsage."""
    env = _operator_env(emulator, tmp_path, AWS_ENDPOINT_URL_MARKETPLACE_METERING=stand.denied)
    result = doctor(env, "--operator")
    line = result.checks["permission"]
    assert (result.code, line["status"]) == (1, "fail")
    assert "AccessDeniedException" in line["found"]
    assert "grant aws-marketplace:MeterUsage to the operator's IAM role" in line["fix"]


def test_json_output_is_one_document_with_every_check(healthy: dict[str, str]) -> None:
    """`--format json` prints one document: mode, healthy, and a list of checks."""
    done = subprocess.run(
        [sys.executable, "-m", "entitlement_sidecar", "doctor", "--format", "json"],
        env=healthy,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = json.loads(done.stdout)
    assert (report["mode"], report["healthy"]) == ("register-usage", True)
    assert [c["check"] for c in report["checks"]][:2] == ["settings", "status-dir"]


@pytest.mark.parametrize("args", [("--format", "xml"), ("--timeout", "nan"), ("--nope",)])
def test_usage_errors_exit_2(healthy: dict[str, str], args: tuple[str, ...]) -> None:
    """The doctor's own usage errors exit 2."""
    done = subprocess.run(
        [sys.executable, "-m", "entitlement_sidecar", "doctor", *args],
        env=healthy,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
