"""What `register` and `license` share: settings, logging, one-line errors, signals, the exit.

Each loads and validates the settings once (under the image policy), configures logging, warns
about `ENTITLEMENT_*` variables that are not settings, runs its work and maps every ending to one
documented exit code: a configuration problem (or an unwritable status directory) to one line and
exit 2, SIGTERM / SIGINT to one line and 143 / 130 (the work sees a `KeyboardInterrupt` and
records it first). As a child of `run` (`--child`) it ends with `os._exit`: `run` waits for that
exit, and the teardown of boto3 and friends would only delay it.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from entitlement_sidecar import logline
from entitlement_sidecar.errors import ConfigurationError, config_exit

if TYPE_CHECKING:
    from entitlement_sidecar.sidecar.settings import SidecarSettings

STATUS_DIR = "ENTITLEMENT_STATUS_DIR"


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _interrupt(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


def _load_and_run(work: Callable[[SidecarSettings], int], logger: str) -> int:
    import logging

    from entitlement_sidecar import logs
    from entitlement_sidecar.sidecar.settings import load_settings, unknown_variables

    settings = load_settings()
    logs.setup(settings.log_level, settings.log_format)
    for name, closest in unknown_variables(os.environ):
        logging.getLogger(logger).warning(
            "%s is not a setting and is ignored; did you mean %s?",
            name,
            closest,
            extra={"variable": name, "closest": closest},
        )
    return work(settings)


def run_work(work: Callable[[SidecarSettings], int], *, child: bool, logger: str) -> int:
    """Load settings, set up logging, return `work(settings)`'s exit code (as a child: exit)."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        code = _load_and_run(work, logger)
    except ConfigurationError as error:
        code = config_exit(error, logger)
    except OSError as error:
        unwritable = f"{STATUS_DIR} is not writable ({error.strerror or error}: {error.filename})"
        code = config_exit(ConfigurationError(unwritable, variable=STATUS_DIR), logger)
    except KeyboardInterrupt as stop:
        signum = getattr(stop, "signum", signal.SIGINT)
        code = 128 + signum
        line = logline.line(
            logline.chosen_format(os.environ.get(logline.FORMAT_VARIABLE)),
            "WARNING",
            logger,
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
