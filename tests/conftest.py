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
    parser.addoption(
        "--with-slow",
        action="store_true",
        default=False,
        help="also run the optional slow set (marker `slow`: extra clients, long scenarios)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_e2e = bool(config.getoption("--with-e2e") and os.environ.get("KUBECONFIG"))
    run_slow = bool(config.getoption("--with-slow"))
    skip_e2e = pytest.mark.skip(reason="e2e: needs --with-e2e and a reachable KUBECONFIG")
    skip_slow = pytest.mark.skip(reason="slow: optional set, run with --with-slow")
    for item in items:
        if "e2e" in item.keywords and not run_e2e:
            item.add_marker(skip_e2e)
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
