"""The intake's sockets: 127.0.0.1 on `ENTITLEMENT_USAGE_PORT`, and the optional Unix socket.

Loopback only: on Kubernetes and in ECS `awsvpc` tasks, only the containers of the same pod or
task share that interface. The Unix socket (`ENTITLEMENT_USAGE_SOCKET`) is for ECS `bridge`
mode, where containers do not share a loopback: it lives on the status volume, which only the
task's own containers mount. A bind failure is a `ConfigurationError` naming the variable.
"""

from __future__ import annotations

import os
import socket
import stat

from entitlement_sidecar.errors import ConfigurationError

BACKLOG = 1024


def bind_tcp(port: int) -> socket.socket:
    try:
        return socket.create_server(("127.0.0.1", port), backlog=BACKLOG)
    except OSError as exc:
        raise ConfigurationError(
            f"ENTITLEMENT_USAGE_PORT={port}: {exc.strerror or exc}",
            variable="ENTITLEMENT_USAGE_PORT",
        ) from None


def bind_unix(path: str) -> socket.socket:
    """A Unix socket at `path`, replacing a stale socket of an earlier run (nothing else)."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _bad(path, exc) from None
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        os.chmod(path, 0o666)  # noqa: S103 - the app may run as another user: the volume guards it
        listener.listen(BACKLOG)
    except OSError as exc:
        listener.close()
        raise _bad(path, exc) from None
    return listener


def _bad(path: str, exc: OSError) -> ConfigurationError:
    return ConfigurationError(
        f"ENTITLEMENT_USAGE_SOCKET={path}: {exc.strerror or exc}",
        variable="ENTITLEMENT_USAGE_SOCKET",
    )
