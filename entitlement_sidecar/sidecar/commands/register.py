"""`entitlement-sidecar register`: one RegisterUsage, verified, written to the status directory.

For init containers and ECS `essential: false` containers, and run by `run` as its short-lived
child (with `--child`: `run` already wrote the pending status). Every ending is one documented
exit code: 0 entitled, 1 denied (a permanent answer), 2 invalid configuration or usage (one line
naming the variable), 3 transient failures until `ENTITLEMENT_STARTUP_TIMEOUT` ran out (or an
unexpected error, status `RegistrationFailed`), 130 / 143 interrupted by SIGINT / SIGTERM (one
line; a status still pending becomes `unavailable`, `Interrupted`).
"""

from __future__ import annotations

import os
import signal
import sys

from entitlement_sidecar import logline
from entitlement_sidecar.errors import EXIT_CONFIG, EXIT_OK, ConfigurationError, config_exit

USAGE = """usage: entitlement-sidecar register

Call RegisterUsage once (retrying transient failures until ENTITLEMENT_STARTUP_TIMEOUT), verify the
signed token and write status.json / token.jwt to ENTITLEMENT_STATUS_DIR.
exit codes: 0 entitled, 1 denied, 2 invalid configuration, 3 transient failures until the timeout,
130/143 interrupted (SIGINT/SIGTERM)"""
LOGGER = "entitlement_sidecar.register"
STATUS_DIR = "ENTITLEMENT_STATUS_DIR"


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _interrupt(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


def _register() -> int:
    import logging

    from entitlement_sidecar import logs
    from entitlement_sidecar.sidecar.registration import register
    from entitlement_sidecar.sidecar.settings import load_settings, unknown_variables

    settings = load_settings()
    logs.setup(settings.log_level, settings.log_format)
    for name, closest in unknown_variables(os.environ):
        logging.getLogger(LOGGER).warning(
            "%s is not a setting and is ignored; did you mean %s?",
            name,
            closest,
            extra={"variable": name, "closest": closest},
        )
    return register(settings, os.environ)


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
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        code = _register()
    except ConfigurationError as error:
        code = config_exit(error, LOGGER)
    except OSError as error:
        unwritable = (
            f"ENTITLEMENT_STATUS_DIR is not writable ({error.strerror or error}: {error.filename})"
        )
        code = config_exit(ConfigurationError(unwritable, variable=STATUS_DIR), LOGGER)
    except KeyboardInterrupt as stop:
        signum = getattr(stop, "signum", signal.SIGINT)
        code = 128 + signum
        line = logline.line(
            logline.chosen_format(os.environ.get(logline.FORMAT_VARIABLE)),
            "WARNING",
            LOGGER,
            f"interrupted by {signal.Signals(signum).name}; exit {code}",
            {"signal": signal.Signals(signum).name},
        )
        print(line, file=sys.stderr, flush=True)
    if child:
        # `run` waits for this exit; skip the interpreter teardown of botocore & co.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
