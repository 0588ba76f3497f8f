"""Containers Anywhere: the buyer's license token instead of IRSA, `report`, the cached license."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from entitlement_sidecar.emulator import Emulator

from .conftest import TIERS, Pods, check, status_of, tier_license

ROLE = "arn:aws:iam::210987654321:role/anywhere-consumer"
TOKEN = "buyer-anywhere-license-token"
SCENARIO: dict[str, Any] = {
    "licenses": [tier_license("basic", "pro", account="210987654321", tokens={TOKEN: ROLE})],
    "callers": {"AKIDNOBODY": {"secret": "x"}},  # SigV4 verified: only STS-issued keys get in
}
Make = Callable[[Emulator], Pods]


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(SCENARIO) as emu:
        yield emu


def anywhere_env(group: Pods, tmp_path: Path, name: str) -> dict[str, str]:
    """A pod with no AWS keys and no Region: only the mounted Secret."""
    secret = tmp_path / f"{name}-secret"
    secret.mkdir()
    (secret / "license_token").write_text(TOKEN)
    (secret / "iam_role").write_text(ROLE)
    env = group.env(name, TIERS, "basic,pro", ENTITLEMENT_LICENSE_ANYWHERE_DIR=str(secret))
    for variable in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ):
        env.pop(variable, None)
    return env


def test_a_pod_anywhere_checks_out_with_the_buyers_token(
    emu: Emulator, pods: Make, tmp_path: Path
) -> None:
    """No IRSA, no keys, no Region: the token flow, us-east-1, the `report` policy."""
    group = pods(emu)
    pod = group.run(anywhere_env(group, tmp_path, "anywhere"))
    pod.wait_ready()
    doc = status_of(pod)
    assert (doc["license"]["credentials"], doc["license"]["policy"]) == ("anywhere-token", "report")
    assert doc["license"]["region"] == "us-east-1"
    requests = emu.records()["requests"]
    assert requests["GetAccessToken"] >= 1
    assert requests["AssumeRoleWithWebIdentity"] >= 1
    assert check(pod, "--entitlement", "pro") == 0


def test_the_last_good_license_is_served_when_aws_is_unreachable(
    emu: Emulator, pods: Make, tmp_path: Path
) -> None:
    """A container restart during an outage: the pod's cached license keeps it serving."""
    group = pods(emu)
    env = anywhere_env(group, tmp_path, "cached")
    first = group.run(env)
    first.wait_ready()
    first.stop(timeout=30)
    emu.set_scenario({**SCENARIO, "faults": [{"op": "CheckoutLicense", "kind": "http_503"}]})
    again = group.run({**env, "ENTITLEMENT_STARTUP_TIMEOUT": "1"})
    again.wait_ready(timeout=30)
    doc = status_of(again)
    assert (doc["license"]["result"], doc["license"]["stale"]) == ("cached", True)
    assert doc["license"]["entitlements"] == {"basic": True, "pro": True}


def test_a_missing_secret_is_a_configuration_error(
    emu: Emulator, pods: Make, tmp_path: Path
) -> None:
    """The chart named a Secret that is not mounted: exit 2 naming the setting."""
    group = pods(emu)
    env = anywhere_env(group, tmp_path, "unmounted")
    env["ENTITLEMENT_LICENSE_ANYWHERE_DIR"] = str(tmp_path / "nowhere")
    pod = group.run(env)
    pod.process.wait(30)
    code, stderr = pod.stop()
    assert code == 2
    assert "ENTITLEMENT_LICENSE_ANYWHERE_DIR" in stderr
