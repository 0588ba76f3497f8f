"""`entitlement-sidecar register`: one RegisterUsage, verified, written to the status directory.

For init containers and ECS `essential: false` containers, and run by `run` as its short-lived
child (with `--child`: `run` already wrote the pending status). Exit codes: 0 entitled, 1 denied
(a permanent answer), 2 invalid configuration (one line on stderr naming the variable), 3 transient
failures until `ENTITLEMENT_STARTUP_TIMEOUT` ran out.
"""

from __future__ import annotations

import os
import sys

from entitlement_sidecar.errors import EXIT_CONFIG, EXIT_OK, ConfigurationError, config_exit

USAGE = """usage: entitlement-sidecar register

Call RegisterUsage once (retrying transient failures until ENTITLEMENT_STARTUP_TIMEOUT), verify the
signed token and write status.json / token.jwt to ENTITLEMENT_STATUS_DIR.
exit codes: 0 entitled, 1 denied, 2 invalid configuration, 3 transient failures until the timeout"""


def main(argv: list[str]) -> int:
    child = False
    for arg in argv:
        if arg in {"-h", "--help"}:
            print(USAGE)
            return EXIT_OK
        if arg == "--child":
            child = True
        else:
            print(f"entitlement-sidecar register: unknown argument {arg!r}", file=sys.stderr)
            return EXIT_CONFIG
    try:
        from entitlement_sidecar import logs
        from entitlement_sidecar.sidecar.registration import register
        from entitlement_sidecar.sidecar.settings import load_settings

        settings = load_settings()
        logs.setup(settings.log_level, settings.log_format)
        code = register(settings, os.environ)
    except ConfigurationError as error:
        code = config_exit(error)
    except OSError as error:
        code = config_exit(
            f"ENTITLEMENT_STATUS_DIR is not writable ({error.strerror or error}: {error.filename})"
        )
    if child:
        # `run` waits for this exit; skip the interpreter teardown of boto3 & co.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
