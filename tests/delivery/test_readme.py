"""The README stays true: its contents match its headings, its links land, its commands run."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from entitlement_sidecar.testing import clean_env, free_port
from tests.delivery.helm import REPO

README = REPO / "README.md"


def _toc() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_toc", REPO / "scripts" / "readme_toc.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_contents_list_every_section_in_order() -> None:
    """The contents block is what `scripts/readme_toc.py` makes of today's headings."""
    result = subprocess.run(
        [sys.executable, "scripts/readme_toc.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_every_link_inside_the_readme_lands_on_a_heading() -> None:
    """Each `](#anchor)` link names an anchor one of the README's headings has."""
    text = README.read_text(encoding="utf-8")
    targets = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert targets
    assert targets <= _toc().anchors(text), targets - _toc().anchors(text)


def _try_it_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Try it by hand") :]
    start = section.index("```sh\n") + len("```sh\n")
    return section[start : section.index("\n```", start)]


def test_try_it_by_hand_runs_as_written(tmp_path: Path) -> None:
    """The 'Try it by hand' commands run in a shell: registered (0), status shown, verified (0),
    refused for another pod (1) and denied for the lapsed product (1)."""
    block = _try_it_block()
    first = "export TRY=/tmp/entitlement-try PORT=4599"
    assert block.startswith(first)
    port = free_port()
    script = block.replace(first, f"export TRY={tmp_path / 'try'} PORT={port}", 1)
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=REPO,
        env=clean_env(PATH="/usr/bin:/bin"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert f"listening on http://127.0.0.1:{port}" in out
    exits = re.findall(r"^(\w+): exit (\d+)$", out, re.M)
    assert exits == [("register", "0"), ("check", "0"), ("copied", "1"), ("lapsed", "1")], out
    assert '"state": "entitled"' in out
    assert "CustomerNotEntitledException" in result.stderr
    assert not (tmp_path / "try").exists()  # it cleans up after itself
