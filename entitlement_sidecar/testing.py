"""Small helpers for local runs: the demo, the benchmarks, the test suite (and sellers' tests).

A free loopback port, an environment scrubbed of the AWS/sidecar variables of the machine that
would change what a child process sees, a plain HTTP GET that returns error statuses instead
of raising, and a shifted wall clock that a `run` process and the emulator share (an hour passes
in seconds). Standard library only; never imported by a process that runs in a pod.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

_real_time = time.time  # kept before `run_shifted` replaces `time.time`

# Variables from the machine that would change what a sidecar, operator or AWS client sees.
SCRUBBED_PREFIXES = ("AWS_", "ENTITLEMENT_", "POD_", "ECS_", "BOTO_")


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without AWS/sidecar/pod variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def http_get(url: str, timeout: float = 5.0, *, quiet: bool = False) -> tuple[int, str]:
    """(status, body) of a GET; HTTP error statuses are returned, not raised.

    With `quiet`, a connection that fails (nothing listening yet, reset) is `(0, "")` instead of
    an `OSError`: what a poll loop waiting for a server wants.
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        if quiet:
            return 0, ""
        raise


class ShiftedClock:
    """A wall clock some seconds off the real one, for a `run` process and an emulator to share.

    The offset lives in a file, so the test (or the demo) can move time while the sidecar runs:
    `command("run")` starts `entitlement-sidecar run` with `time.time` reading that file, and
    `now` is the same clock for `Emulator(now=...)`. Only the `run` parent is shifted: it hands
    its own time to the usage sender child, and registration does not depend on the hour.
    """

    def __init__(self, path: os.PathLike[str] | str, offset: float = 0.0) -> None:
        self.path = os.fspath(path)
        self.set(offset)

    def set(self, offset: float) -> None:
        """Shift the clock by `offset` seconds from the real time (atomically)."""
        tmp = self.path + ".tmp"
        with open(tmp, "w") as handle:
            handle.write(repr(float(offset)))
        os.replace(tmp, self.path)

    def jump_to(self, moment: float) -> None:
        """Make the shifted clock read `moment` (epoch seconds) now."""
        self.set(moment - _real_time())

    def time(self) -> float:
        return _real_time() + _offset(self.path)

    def now(self) -> datetime:
        """The shifted time as an aware UTC datetime (for `Emulator(now=...)`)."""
        return datetime.fromtimestamp(self.time(), UTC)

    def command(self, *args: str) -> list[str]:
        """argv for `entitlement-sidecar ARGS` running on this clock."""
        code = "import sys; from entitlement_sidecar.testing import run_shifted; run_shifted()"
        return [sys.executable, "-c", code, self.path, *args]


def _offset(path: str) -> float:
    try:
        with open(path) as handle:
            return float(handle.read())
    except (OSError, ValueError):
        return 0.0


def run_shifted() -> None:
    """Entry of `ShiftedClock.command`: patch `time.time`, then run the CLI (argv: file, args)."""
    path, args = sys.argv[1], sys.argv[2:]
    time.time = lambda: _real_time() + _offset(path)
    from entitlement_sidecar import cli

    sys.exit(cli.main(args))
