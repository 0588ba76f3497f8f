"""Small helpers for local runs: the demo, the benchmarks, the test suite (and sellers' tests).

A free loopback port, an environment scrubbed of the AWS/sidecar variables of the machine that
would change what a child process sees, and a plain HTTP GET that returns error statuses instead
of raising. Standard library only; never imported by a process that runs in a pod.
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request

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
