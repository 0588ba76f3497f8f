"""Start one of our own short-lived children: `python [-IB] -c <cli> COMMAND ...`.

The long-lived `run` parent hands every AWS call to a child that exits (registration, the usage
sender), so it never imports boto3 itself. The parent's `-I` and `-B` pass on (the image's command
runs `python -IB`: PYTHONPATH, PYTHONHOME and friends from the pod spec are ignored, no byte-code
is written), and the child enters the CLI with `-c` rather than `-m` (runpy would cost every
start a few milliseconds). Imports nothing beyond `os` and `sys`: `run` spawns before anything
else is loaded.
"""

from __future__ import annotations

import os
import sys

CLI = "import sys; from entitlement_sidecar.cli import main; sys.exit(main(sys.argv[1:]))"


def spawn(*args: str, stdout: int | None = None) -> int:
    """The pid of `entitlement-sidecar ARGS` in a child (its stdout on `stdout` when given)."""
    executable = sys.executable
    flags = "I" * sys.flags.isolated + "B" * sys.flags.dont_write_bytecode
    actions = [] if stdout is None else [(os.POSIX_SPAWN_DUP2, stdout, 1)]
    argv = [executable, *([f"-{flags}"] if flags else []), "-c", CLI, *args]
    return os.posix_spawn(executable, argv, os.environ, file_actions=actions)
