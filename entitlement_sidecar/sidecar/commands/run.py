"""`entitlement-sidecar run`: register at start, then serve the probes until SIGTERM.

Two processes, because every pod pays for this one's memory for its whole life. This parent is
lean (standard library sockets, selectors, json; no boto3, pydantic or cryptography, no
http.server) and stays alive; the heavy work (settings validation, RegisterUsage with retries,
PS256 verification, the status write) happens in ONE short-lived child, `register --child`.

Sequence: bind the port (a port already taken is the one and only line printed), spawn the child
(its imports dominate start-up time), publish a `pending` status if there is none, then serve:
`/livez` answers at once and `/readyz` says 503 until the child is done. Ready
(200) once the child exited 0 AND status.json says entitled; latched: never back to 503 (AWS bills
the running pod regardless). Child exit 2 (invalid configuration): exit 2. Denied (1) or budget
exhausted (3): keep serving `/status` with the reason, not ready. SIGTERM: stop, exit 0.
With `ENTITLEMENT_USAGE_DIMENSIONS` set, this parent also runs the usage intake and its journal
(`usage/service.py`); SIGTERM then first sends the partial hour. With `ENTITLEMENT_PRODUCT_SKU`
set, a `LicenseLoop` (`license/schedule.py`) also starts the License Manager children on time.
"""

from __future__ import annotations

import os
import socket
import sys
import time

from entitlement_sidecar.errors import EXIT_CONFIG, EXIT_OK, ConfigurationError, config_exit
from entitlement_sidecar.sidecar import envlite, policy
from entitlement_sidecar.sidecar.spawn import spawn
from entitlement_sidecar.sidecar.usage import config as usage_config

USAGE = """usage: entitlement-sidecar run

Register this instance with AWS Marketplace (RegisterUsage; with ENTITLEMENT_PRODUCT_SKU: check a
License Manager license out, re-check it every heartbeat, return the seat at SIGTERM), then serve
/livez, /readyz, /status and /metrics on ENTITLEMENT_PORT until SIGTERM. /readyz answers 200 once
entitled, 503 before. With ENTITLEMENT_USAGE_DIMENSIONS set, also take the app's usage on
127.0.0.1:ENTITLEMENT_USAGE_PORT and send it hourly with MeterUsage."""

LOGGER = "entitlement_sidecar.run"
BACKLOG = 4096  # a deep accept queue: a burst of connections must not crowd out the kubelet's SYN


def listen(port: int) -> socket.socket:
    """The probe listener on all interfaces (the kubelet probes the pod IP), IPv6 too if we can."""
    if socket.has_dualstack_ipv6():
        try:
            return socket.create_server(
                ("::", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=BACKLOG
            )
        except OSError:
            pass
    return socket.create_server(("0.0.0.0", port), backlog=BACKLOG)  # noqa: S104 - pod IP


def main(argv: list[str]) -> int:
    for arg in argv:
        if arg in {"-h", "--help"}:
            print(USAGE)
            return EXIT_OK
        print(f"entitlement-sidecar run: unknown argument {arg!r}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        environ = policy.load().apply(os.environ)
        port = envlite.port(environ)
        status_dir = envlite.status_dir(environ)
        usage = usage_config.load(environ, port)
        contract = envlite.license_mode(environ)
        if contract:  # read now: a bad value must stop `run` before any child starts
            heartbeat = envlite.license_heartbeat(environ)
            wait = envlite.license_wait(environ)
            checkin = envlite.license_checkin(environ)
        else:
            envlite.product_code(environ)  # the child would refuse it too: say it once, here
    except ConfigurationError as error:
        return config_exit(error, LOGGER)
    try:
        listener = listen(port)
    except OSError as exc:
        taken = f"ENTITLEMENT_PORT={port}: {exc.strerror or exc}"
        return config_exit(ConfigurationError(taken, variable="ENTITLEMENT_PORT"), LOGGER)
    child = spawn("register", "--child")  # before the supervisor's imports: the child's dominate
    from entitlement_sidecar.sidecar.supervisor import Log, Supervisor, serve

    loop = None
    if contract:
        from entitlement_sidecar.sidecar.license.schedule import LicenseLoop

        loop = LicenseLoop(heartbeat, wait, checkin, lambda args: spawn(*args))
    supervisor = Supervisor(status_dir, child, Log(environ), license=loop)
    if usage is not None:
        from entitlement_sidecar.sidecar.usage.service import UsageService

        try:
            supervisor.usage = UsageService(usage, status_dir, supervisor.log, clock=time.time)
        except ConfigurationError as error:
            listener.close()
            supervisor.stop_child()
            return config_exit(error, LOGGER)
    return serve(supervisor, listener, port)
