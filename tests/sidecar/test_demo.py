"""`make demo`: the narrated walk-through runs real sidecars against the emulator and passes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from entitlement_sidecar import demo
from entitlement_sidecar.testing import clean_env, installation


def test_the_demo_walks_through_all_five_pods() -> None:
    """Entitled, lapsed, forged, throttled and usage-reporting pods behave as narrated; exit 0."""
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
