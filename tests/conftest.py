"""Suite-wide pytest options. Area fixtures live in each area's own conftest.py.

Two suite-wide rules live here. The sidecar runs under the permissive image policy (selected
explicitly, below). And the suite leaves no temporary files behind: every temporary file or
directory, of this process and of every process it starts, goes to one scratch directory
(`TMPDIR`; pytest's own `tmp_path` directories stay under its usual root); a run that leaves
anything there fails, naming what was left, and the directory is removed either way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from entitlement_sidecar.sidecar import policy


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


SCRATCH_PREFIX = "entitlement-tests-"
SCRATCH = pytest.StashKey[Path]()


def _use_scratch_tmpdir(config: pytest.Config) -> None:
    """Send every temporary file of the run (and of its subprocesses) to one scratch directory."""
    # pytest's own tmp_path directories stay where they always were (it keeps the last three runs).
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    scratch.chmod(0o755)  # tests that run the sidecar as a non-root UID create dirs in it
    config.stash[SCRATCH] = scratch
    os.environ["TMPDIR"] = str(scratch)
    tempfile.tempdir = str(scratch)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if anything was left in the scratch directory (naming it), then remove it."""
    scratch = session.config.stash.get(SCRATCH, None)
    if scratch is None or not scratch.exists():
        return
    left = sorted(p.name for p in scratch.iterdir())
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"temporary files left behind: {left}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    shutil.rmtree(scratch, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    """The suite runs the sidecar under the permissive image policy, selected here explicitly.

    Tests point the sidecar at the emulator's freshly generated key ring, which a release policy
    refuses; release behaviour is tested in installations of its own (`testing.installation`).
    """
    _use_scratch_tmpdir(config)
    current = policy.load()
    if os.path.exists(policy.policy_file()) and current.profile == policy.PERMISSIVE:
        return
    if os.path.exists(policy.policy_file()):
        pytest.exit(f"{policy.policy_file()}: the test suite needs the permissive policy", 2)
    subprocess.run(
        [sys.executable, "-m", "entitlement_sidecar", "policy", "bake", "--profile", "permissive"],
        check=True,
        capture_output=True,
    )


def cluster_problem(environ: dict[str, str] | None = None) -> str | None:
    """Why the cluster in KUBECONFIG cannot be used (None: it answers)."""
    env = os.environ if environ is None else environ
    kubeconfig = env.get("KUBECONFIG")
    if not kubeconfig:
        return "KUBECONFIG is not set"
    try:
        from kubernetes import client
        from kubernetes import config as kube_config

        kube_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig.split(os.pathsep)[0]
        )
        client.VersionApi().get_code(_request_timeout=5)
    except Exception as exc:  # any reason at all: say it, do not run
        return f"the cluster in KUBECONFIG={kubeconfig} does not answer ({type(exc).__name__})"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """e2e tests are skipped without --with-e2e; with it and no reachable cluster the run stops
    with the reason (a green run that tested nothing would be worse than a red one)."""
    run_e2e = bool(config.getoption("--with-e2e"))
    if run_e2e and any("e2e" in item.keywords for item in items):
        problem = cluster_problem()
        if problem is not None:
            raise pytest.UsageError(
                f"--with-e2e: {problem}; the e2e tests need a reachable cluster (kind, k3d, EKS)"
            )
    run_slow = bool(config.getoption("--with-slow"))
    skip_e2e = pytest.mark.skip(reason="e2e: run with --with-e2e and a reachable KUBECONFIG")
    skip_slow = pytest.mark.skip(reason="slow: optional set, run with --with-slow")
    for item in items:
        if "e2e" in item.keywords and not run_e2e:
            item.add_marker(skip_e2e)
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
