"""Start one of our own short-lived children: `python [-I] -m entitlement_sidecar COMMAND ...`.

The long-lived `run` parent hands every AWS call to a child that exits (registration, the usage
sender), so it never imports boto3 itself. An isolated parent (the image's entry point runs
`python -I`: PYTHONPATH, PYTHONHOME and friends from the pod spec are ignored) gets an isolated
child. Imports nothing beyond `os` and `sys`: `run` spawns before anything else is loaded.
"""

from __future__ import annotations

import os
import sys


def spawn(*args: str, stdout: int | None = None) -> int:
    """The pid of `python -m entitlement_sidecar ARGS` (its stdout on `stdout` when given)."""
    executable = sys.executable
    isolated = ("-I",) if sys.flags.isolated else ()
    actions = [] if stdout is None else [(os.POSIX_SPAWN_DUP2, stdout, 1)]
    argv = [executable, *isolated, "-m", "entitlement_sidecar", *args]
    return os.posix_spawn(executable, argv, os.environ, file_actions=actions)
