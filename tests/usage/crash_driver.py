"""`python crash_driver.py CLOCK_FILE POINT run`: `run` on a shifted clock, SIGKILLed at POINT.

A crash point is a real SIGKILL of the `run` parent at one step of the usage path, so the restart
that follows meets exactly what a crash there leaves on disk and at AWS:

- `after-fsync`: an event batch is durable but its 202 never left;
- `seal-before-rename`: a sealing compaction wrote and fsynced its temp file, not renamed yet;
- `seal-after-rename`: the sealed journal is in place, the process state never updated;
- `before-recording`: the sender child reported a result, the parent dies before journaling it.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _install(point: str) -> None:
    from entitlement_sidecar.sidecar.usage import journal

    if point == "after-fsync":
        real_sync = os.fdatasync

        def fdatasync(fd: int) -> None:
            real_sync(fd)
            _die()

        journal.os.fdatasync = fdatasync  # type: ignore[attr-defined]
    elif point in {"seal-before-rename", "seal-after-rename"}:
        real_compact = journal.Journal.compact
        real_replace = os.replace

        def replace(src: Any, dst: Any) -> None:
            if point == "seal-before-rename":
                _die()
            real_replace(src, dst)
            _die()

        def compact(self: journal.Journal, seals: dict[int, int]) -> None:
            if seals:
                os.replace = replace  # type: ignore[assignment]
            real_compact(self, seals)

        journal.Journal.compact = compact  # type: ignore[method-assign]
    elif point == "before-recording":

        def record(self: journal.Journal, outcome: dict[str, Any]) -> bool:
            _die()
            return False

        journal.Journal.record = record  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown crash point {point}")


def main() -> None:
    clock_file, point, *args = sys.argv[1:]
    _install(point)
    from entitlement_sidecar.testing import run_shifted

    sys.argv = [sys.argv[0], clock_file, *args]
    run_shifted()


if __name__ == "__main__":
    main()
