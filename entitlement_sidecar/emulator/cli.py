"""`entitlement-sidecar emulator`: run the Metering emulator as a process until SIGTERM/SIGINT.

The first line on stdout is `listening on http://HOST:PORT` (flushed), so scripts and tests can
start it on port 0 and read the address. A bad scenario is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from entitlement_sidecar.emulator.scenario import ScenarioError
from entitlement_sidecar.emulator.server import Emulator
from entitlement_sidecar.errors import EXIT_CONFIG


def _port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port from 0 to 65535")
    return port


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number of seconds")
    return value


def parser() -> argparse.ArgumentParser:
    """The command's options."""
    p = argparse.ArgumentParser(
        prog="entitlement-sidecar emulator",
        description="Local AWS Marketplace Metering emulator (AWS JSON 1.1 over HTTP).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=0, help="port to bind; 0 = any free port")
    p.add_argument("--scenario", type=Path, help="scenario file (YAML or JSON)")
    p.add_argument(
        "--public-key-dir", type=Path, help="write <version>.pem (SPKI PEM) for each key here"
    )
    p.add_argument(
        "--clock-offset", type=_seconds, metavar="SECONDS", help="shift the emulator clock"
    )
    p.add_argument("--quiet", action="store_true", help="no access log on stderr")
    return p


def main(argv: list[str]) -> int:
    """Serve until SIGTERM or SIGINT; exit 0 then, 2 on a bad scenario or bind failure."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error (2): return it like every command
        return done.code if isinstance(done.code, int) else EXIT_CONFIG
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s emulator %(message)s",
        stream=sys.stderr,
    )
    try:
        emulator = Emulator(
            scenario=args.scenario,
            host=args.host,
            port=args.port,
            public_key_dir=args.public_key_dir,
            clock_offset_seconds=args.clock_offset,
        )
    except (ScenarioError, OSError) as exc:  # a bad scenario, or an unwritable key directory
        print(f"entitlement-sidecar emulator: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        emulator.start()
    except OSError as exc:
        print(f"entitlement-sidecar emulator: cannot listen: {exc}", file=sys.stderr)
        emulator.service.close()
        return EXIT_CONFIG
    try:
        print(f"listening on {emulator.url}", flush=True)
        print(f"public keys in {emulator.public_key_dir}", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0
