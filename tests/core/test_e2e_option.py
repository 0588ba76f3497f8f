"""`pytest --with-e2e` without a cluster fails and says why: a green run of nothing would lie."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from entitlement_sidecar.testing import clean_env, free_port

REPO = Path(__file__).resolve().parents[2]
UNREACHABLE = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:PORT"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
users: [{name: u, user: {token: not-a-token}}]
"""


@pytest.mark.parametrize(
    ("kubeconfig", "reason"),
    [(False, "--with-e2e: KUBECONFIG is not set"), (True, "does not answer (")],
    ids=["no-kubeconfig", "unreachable-cluster"],
)
def test_with_e2e_and_no_reachable_cluster_stops_the_run(
    tmp_path: Path, kubeconfig: bool, reason: str
) -> None:
    """`--with-e2e` with no KUBECONFIG, or one whose cluster does not answer, exits non-zero
    naming the reason, instead of skipping every e2e test and passing."""
    env = clean_env()
    env.pop("KUBECONFIG", None)
    if kubeconfig:
        path = tmp_path / "kubeconfig"
        path.write_text(UNREACHABLE.replace("PORT", str(free_port())))
        env["KUBECONFIG"] = str(path)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--with-e2e", "tests/e2e", "-q", "-p", "no:cacheprovider"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert reason in result.stdout + result.stderr
    assert "passed" not in result.stdout
