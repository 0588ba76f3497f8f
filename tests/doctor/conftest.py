"""Fixtures for the doctor: the emulator, a pod environment, and running the real command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.testing import clean_env

PRODUCT = "prod-paid"


@dataclass(frozen=True)
class Result:
    """A doctor run: exit code and the findings by check (from `--format json`)."""

    code: int
    checks: dict[str, dict[str, str]]
    stderr: str

    def status(self) -> dict[str, str]:
        return {name: check["status"] for name, check in self.checks.items()}


def doctor(env: Mapping[str, str], *args: str) -> Result:
    """Run `entitlement-sidecar doctor --format json ARGS` as a real process."""
    done = subprocess.run(
        [sys.executable, "-m", "entitlement_sidecar", "doctor", "--format", "json", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report: dict[str, Any] = json.loads(done.stdout) if done.stdout.strip() else {"checks": []}
    checks = {c["check"]: c for c in report["checks"]}
    return Result(done.returncode, checks, done.stderr)


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """The Metering emulator (default scenario: prod-paid entitled, dimensions users and gb)."""
    with Emulator() as emu:
        yield emu


def pod_env(emu: Emulator, status_dir: Path, **extra: str) -> dict[str, str]:
    """A correctly configured sidecar against the emulator (the demo's way), plus `extra`."""
    status_dir.mkdir(parents=True, exist_ok=True)
    values = {
        **emu.env(access_key_id="AKIDDOCTOR"),
        "ENTITLEMENT_PRODUCT_CODE": PRODUCT,
        "ENTITLEMENT_TRUSTED_PRODUCT_CODES": PRODUCT,
        "ENTITLEMENT_PUBLIC_KEYS": str(emu.public_key_dir),
        "ENTITLEMENT_STATUS_DIR": str(status_dir),
        "ENTITLEMENT_INSTANCE_ID": "doctor-pod",
        **extra,
    }
    return clean_env(**values)


def register(env: Mapping[str, str]) -> None:
    """A real `register`, so status.json records the last RegisterUsage."""
    done = subprocess.run(
        [sys.executable, "-m", "entitlement_sidecar", "register"],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
