"""Session fixtures for the delivery tests: the real helm binary and a vendored example chart."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.delivery.helm import Helm, fetch_tools, vendored_example


@pytest.fixture(scope="session")
def tools_bin() -> Path:
    """The directory holding the pinned helm and kubectl (fetched into .tools/ once)."""
    return fetch_tools()


@pytest.fixture(scope="session")
def helm(tools_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """The pinned helm binary with isolated homes."""
    return Helm(binary=tools_bin / "helm", home=tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def example_chart(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """charts/example-app copied with its entitlement-sidecar dependency vendored."""
    return vendored_example(helm, tmp_path_factory.mktemp("charts"))


@pytest.fixture(scope="session")
def helm3(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm v3.17.3, for Helm 3 parity checks."""
    home = tmp_path_factory.mktemp("helm3-home")
    return Helm(binary=fetch_tools(helm3=True) / "helm", home=home)


@pytest.fixture(scope="session")
def example_chart3(helm3: Helm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """charts/example-app with its dependency vendored by Helm 3."""
    return vendored_example(helm3, tmp_path_factory.mktemp("charts3"))
