"""License Manager mode keeps the lean processes lean: `run` schedules, `check` reads files."""

from __future__ import annotations

import ast
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.testing import clean_env, free_port, http_get
from tests.core.test_lean_imports import CLI, DRIVER, HEAVY, PROBE_ONLY, assert_lean, run_entry

from .conftest import SEATS, seat_license


@pytest.fixture(scope="module")
def contract(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, dict[str, str]]]:
    """An emulator with a 2-seat license and the environment of pod `lean-lm`."""
    status_dir = tmp_path_factory.mktemp("status")
    with Emulator(
        {"licenses": [seat_license(seats=2), {"sku": "prod-t", "entitlements": [{"name": "pro"}]}]}
    ) as emu:
        env = clean_env(
            **emu.env(access_key_id="AKIDLEANLM"),
            ENTITLEMENT_PRODUCT_SKU=SEATS,
            ENTITLEMENT_LICENSE_ENTITLEMENTS="seats=1",
            ENTITLEMENT_LICENSE_HEARTBEAT_SECONDS="1",
            ENTITLEMENT_STATUS_DIR=str(status_dir),
            POD_UID="lean-lm",
        )
        yield emu, env


def test_run_with_heartbeats_and_a_check_in_stays_lean(
    tmp_path: Path, contract: tuple[Emulator, dict[str, str]]
) -> None:
    """The parent runs the gate, heartbeats and the SIGTERM check-in without a heavy import."""
    emu, env = contract
    port = free_port()
    out = tmp_path / "modules.txt"
    process = subprocess.Popen(
        [sys.executable, "-I", "-c", DRIVER, str(out), CLI, "run"],
        env={**env, "ENTITLEMENT_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            code, body = http_get(url + "/status", timeout=2, quiet=True)
            if (
                code == 200
                and json.loads(body)["license"]
                and json.loads(body)["license"]["checks"].get("ok", 0) >= 2
            ):
                break  # the gate and at least one heartbeat have run
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "no heartbeat ran"
            time.sleep(0.05)
        for path in ("/readyz", "/metrics"):
            assert http_get(url + path, timeout=2)[0] == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert sum(lic["seats_in_use"] for lic in emu.licenses()) == 0  # the check-in ran
    modules = ast.literal_eval(out.read_text())
    assert "entitlement_sidecar.sidecar.license.schedule" in modules
    assert_lean(modules, HEAVY)


@pytest.mark.parametrize(
    "args",
    [(), ("--verify",), ("--entitlement", "seats"), ("--entitlement", "missing")],
    ids=["check", "check-verify", "check-entitlement", "check-missing-entitlement"],
)
def test_check_in_license_manager_mode_stays_lean(
    tmp_path: Path, contract: tuple[Emulator, dict[str, str]], args: tuple[str, ...]
) -> None:
    """Every `check` form on a real checkout loads neither a heavy library nor typing."""
    _emu, env = contract
    register = subprocess.run(
        [sys.executable, "-m", "entitlement_sidecar", "register"],
        env=env,
        capture_output=True,
        check=False,
    )
    assert register.returncode == 0, register.stderr
    code, modules = run_entry(tmp_path, CLI, "check", *args, env=env)
    assert code == (1 if "missing" in args else 0)
    assert_lean(modules, HEAVY + PROBE_ONLY)
