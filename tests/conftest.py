"""Suite-wide pytest options. Area fixtures live in each area's own conftest.py."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--with-e2e",
        action="store_true",
        default=False,
        help="run tests/e2e against the cluster in KUBECONFIG (never in CI here)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--with-e2e") and os.environ.get("KUBECONFIG"):
        return
    skip = pytest.mark.skip(reason="e2e: needs --with-e2e and a reachable KUBECONFIG")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)
