"""Session fixtures for the delivery tests: the real helm binary and a vendored example chart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.delivery.helm import REPO, Helm, vendored_example


@pytest.fixture(scope="session")
def tools_bin() -> Path:
    """The directory holding the pinned helm and kubectl (fetched into .tools/ once)."""
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "fetch_helm.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip()).parent


@pytest.fixture(scope="session")
def helm(tools_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """The pinned helm binary with isolated homes."""
    return Helm(binary=tools_bin / "helm", home=tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def example_chart(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """charts/example-app copied with its entitlement-sidecar dependency vendored."""
    return vendored_example(helm, tmp_path_factory.mktemp("charts"))
