"""`make demo`: the narrated walk-through runs real sidecars against the emulator and passes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from entitlement_sidecar import demo
from entitlement_sidecar.testing import clean_env, installation


def test_the_demo_walks_through_all_eleven_pods() -> None:
    """Entitled, lapsed, forged, throttled and usage-reporting pods behave as narrated, then the
    contract pods (a tier, three pods on two seats, an expiry under report and lock); exit 0."""
    lines: list[str] = []
    assert demo.run_demo(say=lines.append) == 0
    text = "\n".join(lines)
    for expected in (
        "check --verify   -> exit 0",
        "reason=CustomerNotEntitledException",
        "reason=SignatureInvalid",
        '"ThrottlingException": 2',
        "exit codes [0, 0, 0, 0]",
        '"duplicates": 1',
        "the partial hour is sent at once",
        "jobs           5",
        "allocations: 2 {'team': 'ads'}, 3 {'team': 'search'}",
        "-> tier pro",
        "check --entitlement enterprise -> exit 1",
        "seat-c: /readyz 503, reason SeatsInUse",
        "seats in use 2/2",
        "expiry-report: /readyz 200",
        "expiry-lock: /readyz 503",
        "exit codes [0, 0, 0, 0, 0, 0]; seats in use 0/2",
    ):
        assert expected in text


def test_the_demo_in_a_release_installation_says_how_to_get_a_permissive_one(
    tmp_path: Path,
) -> None:
    """In an installation baked with the release policy the demo stops at once (exit 2) with one
    line saying how to bake the permissive one, instead of four failing pods."""
    python = installation(tmp_path / "venv", "--profile", "release", "--keys", str(tmp_path))
    result = subprocess.run(
        [python, "-m", "entitlement_sidecar", "demo"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    (line,) = result.stdout.strip().splitlines()
    assert "policy bake --profile permissive" in line
