"""Make the side virtualenv of one compatibility-suite client once, and print its bin directory.

aiobotocore and the AWS CLI each pin their own botocore (aiobotocore 3.10.0: < 1.43.118; awscli
1.46.3: == 1.43.62), older than the botocore the project and its emulator validate with (its model
has the decimal quantities the operator sends). Installed next to the project they would
downgrade it, so each gets its own virtualenv under `.tools/compat/<group>/`, built from the
dependency group of the same name in pyproject.toml (the one place the pins live). Idempotent:
when the environment was built from the same requirements it returns at once. A lock keeps
parallel test runs from building it twice.

Usage: `python scripts/compat_env.py compat-aiobotocore` -> prints `.tools/compat/.../bin`.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOT = REPO / ".tools" / "compat"
PIN_FILE = ".requirements"


def requirements(group: str) -> list[str]:
    """The requirement strings of a dependency group in pyproject.toml."""
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    groups: dict[str, list[str]] = data.get("dependency-groups", {})
    if group not in groups:
        raise SystemExit(f"compat_env: no dependency group {group!r} in pyproject.toml")
    return [item for item in groups[group] if isinstance(item, str)]


def ensure(group: str) -> Path:
    """The bin directory of the group's virtualenv, built when missing or outdated."""
    wanted = "\n".join(requirements(group)) + "\n"
    env = ROOT / group
    ROOT.mkdir(parents=True, exist_ok=True)
    with (ROOT / f".{group}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pin = env / PIN_FILE
        if pin.is_file() and pin.read_text(encoding="utf-8") == wanted:
            return env / "bin"
        shutil.rmtree(env, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        subprocess.run(
            [str(env / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", *requirements(group)],
            check=True,
        )  # fmt: skip
        pin.write_text(wanted, encoding="utf-8")
        return env / "bin"


def main(argv: list[str]) -> int:
    """Print the bin directory of each group named on the command line."""
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    for group in argv:
        print(ensure(group))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
