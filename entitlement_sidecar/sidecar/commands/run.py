"""`entitlement-sidecar run`: register at start, then serve the probes until SIGTERM.

Two processes, because every pod pays for this one's memory for its whole life. This parent is
lean (standard library sockets, selectors, json; no boto3, pydantic or cryptography, no
http.server) and stays alive; the heavy work (settings validation, RegisterUsage with retries,
PS256 verification, the status write) happens in ONE short-lived child, `register --child`.

Sequence: spawn the child at once (its imports dominate start-up time), bind the port so `/livez`
answers and `/readyz` says 503, publish a `pending` status if there is none, then serve. Ready
(200) once the child exited 0 AND status.json says entitled; latched: never back to 503 (AWS bills
the running pod regardless). Child exit 2 (invalid configuration): exit 2. Denied (1) or budget
exhausted (3): keep serving `/status` with the reason, not ready. SIGTERM: stop, exit 0.
"""

from __future__ import annotations

import os
import sys

from entitlement_sidecar.errors import EXIT_CONFIG, EXIT_OK, ConfigurationError, config_exit
from entitlement_sidecar.sidecar import envlite

USAGE = """usage: entitlement-sidecar run

Register this instance with AWS Marketplace (RegisterUsage), then serve /livez, /readyz, /status
and /metrics on ENTITLEMENT_PORT until SIGTERM. /readyz answers 200 once entitled, 503 before."""

CHILD_ARGS = ("-m", "entitlement_sidecar", "register", "--child")


def _spawn_child() -> int:
    executable = sys.executable
    return os.posix_spawn(executable, [executable, *CHILD_ARGS], os.environ)


def main(argv: list[str]) -> int:
    for arg in argv:
        if arg in {"-h", "--help"}:
            print(USAGE)
            return EXIT_OK
        print(f"entitlement-sidecar run: unknown argument {arg!r}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        port = envlite.port(os.environ)
        status_dir = envlite.status_dir(os.environ)
    except ConfigurationError as error:
        return config_exit(error)
    child = _spawn_child()  # first: its imports dominate the time to ready
    from entitlement_sidecar.sidecar.supervisor import Log, Supervisor, listen, serve

    supervisor = Supervisor(status_dir, child, Log(os.environ))
    try:
        listener = listen(port)
    except OSError as exc:
        supervisor.stop_child()
        return config_exit(f"ENTITLEMENT_PORT={port}: {exc.strerror or exc}")
    return serve(supervisor, listener, port)
