"""Small helpers for local runs: the demo, the benchmarks, the test suite (and sellers' tests).

A free loopback port, an environment scrubbed of the AWS/sidecar variables of the machine that
would change what a child process sees, a plain HTTP GET that returns error statuses instead
of raising, a shifted wall clock that a `run` process and the emulator share (an hour passes
in seconds), and `installation()`: a throwaway installation with its own image policy, to run the
sidecar exactly as a release (or permissive) image would. Standard library only; never imported
by a process that runs in a pod.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import venv
from datetime import UTC, datetime
from pathlib import Path

_real_time = time.time  # kept before `run_shifted` replaces `time.time`

# Where to keep status directories like a pod does (the chart's emptyDir has medium: Memory), when
# the machine has a memory file system there; None: the default temporary directory.
MEMORY_TMPDIR = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - a parent dir only

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


def probe_status(url: str) -> int:
    """The HTTP status of GET `url` (0 when nothing answers), with a raw socket: as cheap as the
    kubelet's probe, so polling every few milliseconds does not charge this process's CPU (which
    may also host the emulator) to the process being measured."""
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1) as sock:
            sock.sendall(f"GET /{path} HTTP/1.0\r\n\r\n".encode())
            head = sock.recv(64)
    except OSError:
        return 0
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> float:
    """Seconds from now until `url` answers 200 (polling every 2 ms); fails if `process` exits."""
    begun = time.perf_counter()
    while time.perf_counter() - begun < timeout:
        if probe_status(url) == 200:
            return time.perf_counter() - begun
        if process.poll() is not None:
            raise RuntimeError(f"sidecar exited with {process.returncode}")
        time.sleep(0.002)
    raise RuntimeError("sidecar never became ready")


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


def installation(directory: Path, *bake: str, python: str | None = None) -> str:
    """A virtualenv at `directory` that runs this package under its own baked image policy.

    It shares the running interpreter's packages (a `.pth` file) but has its own prefix, so
    `entitlement-sidecar policy bake *bake` writes a policy only it reads (no `bake` arguments:
    an installation nobody baked). Returns its python, for `[python, "-m", "entitlement_sidecar",
    ...]`; `python` builds it from another interpreter of the same version.
    """
    builder = venv.EnvBuilder(with_pip=False, symlinks=True, clear=True)
    if python is None:
        builder.create(directory)
    else:
        subprocess.run(
            [python, "-m", "venv", "--without-pip", "--symlinks", "--clear", str(directory)],
            check=True,
        )
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = directory / "lib" / version / "site-packages"
    ours = [sysconfig.get_paths()["purelib"], str(Path(__file__).resolve().parents[1])]
    lines = [f"import site; site.addsitedir({ours[0]!r})", ours[1]]
    (site / "_entitlement_sidecar_shared.pth").write_text("\n".join(lines) + "\n")
    executable = str(directory / "bin" / "python")
    if not bake:
        return executable
    baked = subprocess.run(
        [executable, "-m", "entitlement_sidecar", "policy", "bake", *bake],
        check=False,
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    if baked.returncode != 0:
        raise RuntimeError(f"policy bake {' '.join(bake)} failed: {baked.stderr.strip()}")
    return executable


def release_image(directory: Path, key_dir: Path, *bake: str) -> tuple[str, Path]:
    """A seller's release image as an `installation()` under `directory`: its key ring a copy of
    `key_dir` (at `directory/keys`), baked with the release profile and `bake` (say, `--set` a
    trusted product code). Returns its python and its ring."""
    ring = directory / "keys"
    shutil.copytree(key_dir, ring)
    python = installation(directory / "venv", "--profile", "release", "--keys", str(ring), *bake)
    return python, ring


def run_sidecar(python: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`entitlement-sidecar *args` under `python` (an installation's), its output captured."""
    return subprocess.run(
        [python, "-m", "entitlement_sidecar", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
