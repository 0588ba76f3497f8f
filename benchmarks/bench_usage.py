"""Usage intake figures, printed against baselines measured in the same run.

1. Intake throughput: events per second acknowledged (202, durable) by a real `run` process from
   one local client, one event per request and batches of 100, over the same number of
   `fsync`ed appends of a journal-sized line by a minimal Python loop in the same directory (the
   floor a durable journal pays). Targets: batches >= 50% of that floor; single events >= 500/s.
   Measured on the disk (like an ECS task volume: the targets apply) and, for information, on
   tmpfs (the pod's `emptyDir: Memory`, where fsync costs nothing and survives a container
   restart, not a node crash).
2. Steady RSS of `run` once ready, intake off and intake on (after 10,000 accepted events and a
   round of GET /v1/usage, /status, /metrics), no child alive. Targets: intake on <= 16 MiB and
   within 2 MiB of intake off. Also shown, not targeted: intake on with a full 4 MiB journal.

Crash safety (a kill at every step) is tested, not benchmarked: `tests/usage/test_crashes.py`.
Usage: `python benchmarks/bench_usage.py [--runs 3] [--events 2000]`.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.testing import clean_env, free_port, http_get

MIB = 1024 * 1024
BIN = Path(sys.executable).parent
LINE = b'{"k":"e","h":1772445600,"d":"gb_scanned","q":12500000,"i":"s-00000042"}\n'
SHM = "/dev/shm"  # noqa: S108 - tmpfs, as the pod's emptyDir with medium Memory


def _option(name: str, default: str) -> str:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def floor(directory: str, count: int) -> float:
    """Events/s of `count` appends of one journal line, each followed by fsync."""
    path = os.path.join(directory, "floor.journal")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    begun = time.perf_counter()
    for _ in range(count):
        os.write(fd, LINE)
        os.fdatasync(fd)
    seconds = time.perf_counter() - begun
    os.close(fd)
    os.unlink(path)
    return count / seconds


def _request(port: int, body: bytes) -> bytes:
    head = (
        "POST /v1/usage HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def post_all(port: int, bodies: list[bytes]) -> float:
    """Seconds to post every body, one connection each, checking each answer is a 202."""
    requests = [_request(port, body) for body in bodies]
    begun = time.perf_counter()
    for data in requests:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(data)
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        if not answer.startswith(b"HTTP/1.0 202"):
            raise RuntimeError(f"not acknowledged: {answer[:200]!r}")
    return time.perf_counter() - begun


def _event(n: int, prefix: str) -> dict[str, str]:
    return {"dimension": "gb_scanned", "quantity": "12.5", "id": f"{prefix}-{n:08d}"}


@contextmanager
def sidecar(
    emu: Emulator, status_dir: str, *, usage: bool, journal_bytes: int = 64 * MIB
) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    """A ready `run` process (intake on or off); (process, probe port, usage port)."""
    port, usage_port = free_port(), free_port()
    caller = os.urandom(4).hex()  # each sidecar is another pod: its own AWS caller
    env = clean_env(
        **emu.env(access_key_id=f"AKIDBENCH{caller.upper()}"),
        ENTITLEMENT_PRODUCT_CODE="prod-paid",
        ENTITLEMENT_PUBLIC_KEYS=str(emu.public_key_dir),
        ENTITLEMENT_STATUS_DIR=status_dir,
        ENTITLEMENT_PORT=str(port),
        ENTITLEMENT_INSTANCE_ID=f"bench-pod-{caller}",
        ENTITLEMENT_LOG_LEVEL="WARNING",
    )
    if usage:
        env.update(
            ENTITLEMENT_USAGE_DIMENSIONS="gb_scanned",
            ENTITLEMENT_USAGE_PORT=str(usage_port),
            ENTITLEMENT_USAGE_JOURNAL_BYTES=str(journal_bytes),
        )
    process = subprocess.Popen([str(BIN / "entitlement-sidecar"), "run"], env=env)
    try:
        deadline = time.monotonic() + 60
        while http_get(f"http://127.0.0.1:{port}/readyz", 1, quiet=True)[0] != 200:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("sidecar never became ready")
            time.sleep(0.02)
        while psutil.Process(process.pid).children():
            time.sleep(0.02)  # the registration child has exited
        yield process, port, usage_port
    finally:
        process.terminate()
        process.wait(30)


def throughput(emu: Emulator, directory: str, events: int) -> tuple[float, float, float]:
    """(floor events/s, single events/s, batches of 100 events/s) in `directory`."""
    with tempfile.TemporaryDirectory(dir=directory) as status_dir:
        base = floor(status_dir, events)
        with sidecar(emu, status_dir, usage=True) as (_process, _port, usage_port):
            singles = [json.dumps(_event(n, "s")).encode() for n in range(events)]
            single = events / post_all(usage_port, singles)
            batches = [
                json.dumps({"events": [_event(b * 100 + n, "b") for n in range(100)]}).encode()
                for b in range(events // 10 // 100)
            ]
            batched = (events // 10 // 100 * 100) / post_all(usage_port, batches)
            # batches of 100 are measured on 10x more events, so the rate is not all start-up
            big = [
                json.dumps({"events": [_event(b * 100 + n, "B") for n in range(100)]}).encode()
                for b in range(events // 100 * 5)
            ]
            batched = len(big) * 100 / post_all(usage_port, big)
    return base, single, batched


def tree_rss(process: subprocess.Popen[bytes]) -> int:
    parent = psutil.Process(process.pid)
    return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])


def steady_rss(emu: Emulator, *, usage: bool, events: int, journal_bytes: int = 64 * MIB) -> int:
    """RSS of a ready `run` after `events` accepted events (intake on) and a round of scrapes."""
    with (
        tempfile.TemporaryDirectory(dir=SHM if Path(SHM).is_dir() else None) as d,
        sidecar(emu, d, usage=usage, journal_bytes=journal_bytes) as (process, port, usage_port),
    ):
        if usage:
            bodies = [
                json.dumps({"events": [_event(b * 100 + n, "r") for n in range(100)]}).encode()
                for b in range(events // 100)
            ]
            post_all(usage_port, bodies)
            http_get(f"http://127.0.0.1:{usage_port}/v1/usage", 5)
        for path in ("/livez", "/readyz", "/status", "/metrics") * 10:
            http_get(f"http://127.0.0.1:{port}{path}", 5)
        time.sleep(0.5)
        return tree_rss(process)


def main() -> int:
    runs = int(_option("--runs", "3"))
    events = int(_option("--events", "2000"))
    scenario = {"products": {"prod-paid": {"dimensions": ["gb_scanned"]}}, "throttle": None}
    places = [("disk", tempfile.gettempdir())]
    if Path(SHM).is_dir():
        places.append(("tmpfs", SHM))
    with Emulator(scenario) as emu:
        for name, directory in places:
            samples = [throughput(emu, directory, events) for _ in range(runs)]
            base, single, batched = (statistics.median(s[i] for s in samples) for i in range(3))
            if name == "disk":
                print(
                    f"intake on disk : floor {base:7.0f} fsynced appends/s | single events "
                    f"{single:6.0f}/s (target >= 500), ratio {single / base:.2f} | batches of 100 "
                    f"{batched:6.0f} events/s, ratio {batched / base:.2f} (target >= 0.50)"
                )
            else:
                print(
                    f"intake on tmpfs: single events {single:6.0f}/s, batches of 100 "
                    f"{batched:6.0f} events/s (fsync is a no-op on tmpfs: the plain append loop "
                    f"runs {base:.0f}/s, no durability floor to compare with)"
                )
        off = statistics.median(steady_rss(emu, usage=False, events=0) for _ in range(runs))
        on = statistics.median(steady_rss(emu, usage=True, events=10_000) for _ in range(runs))
        full = steady_rss(emu, usage=True, events=40_000, journal_bytes=4 * MIB)
    print(
        f"steady RSS     : intake off {off / MIB:5.1f} MiB, intake on (10,000 events this hour) "
        f"{on / MIB:5.1f} MiB -> +{(on - off) / MIB:.1f} MiB (targets <= 16 MiB, <= +2 MiB)"
    )
    print(f"                 intake on with a full 4 MiB journal: {full / MIB:5.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
