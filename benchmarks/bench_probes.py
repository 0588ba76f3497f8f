"""Probe latency under hostile connections, against the same run's quiet baseline.

A real `entitlement-sidecar run` (entitled against the emulator) is probed the way the kubelet
probes it: a fresh TCP connection, `GET /readyz` with kube-probe's headers, read to the end, a 1 s
timeout (the kubelet's default `timeoutSeconds`). Meanwhile a separate attacker process holds or
churns a few hundred connections on the probe port:

- `idle`: N connections opened and left silent; each one the server closes is reopened at once.
- `slowloris`: N connections that send a request line, then one header line per second, never
  finishing; reopened when closed.
- `churn`: N connections closed with a reset and reopened as fast as the machine allows.

Printed per mode: probes answered, failures (refused, reset, timed out), p50/p99/max latency,
and the `run` process's RSS before, at the peak of, and 2 s after the attack. Target: p99 <= 100
ms and no failure in every mode, steady RSS unchanged. Usage:
`python benchmarks/bench_probes.py [--connections 300] [--seconds 10] [--modes idle,churn]`.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.testing import clean_env, free_port, http_get

MODES = ("idle", "slowloris", "churn")
PROBE_TIMEOUT = 1.0
PROBE_INTERVAL = 0.05
MIB = 1024 * 1024


def _option(name: str, default: str) -> str:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


# ---------------------------------------------------------------- the attacker (own process)


def _open(sel: selectors.BaseSelector, address: tuple[str, int], mode: str) -> None:
    sock = socket.socket()
    sock.setblocking(False)
    sock.connect_ex(address)
    sel.register(sock, selectors.EVENT_READ, {"sent": 0, "opened": time.monotonic()})
    if mode == "slowloris":
        with contextlib.suppress(OSError):
            sock.send(b"GET /readyz HTTP/1.1\r\n")


def _close(sel: selectors.BaseSelector, sock: socket.socket, *, reset: bool = False) -> None:
    sel.unregister(sock)
    if reset:
        with contextlib.suppress(OSError):  # linger 0: close with a reset
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def attack(mode: str, port: int, count: int, seconds: float) -> None:
    """Hold or churn `count` connections on `port` for `seconds` (runs in its own process)."""
    address = ("127.0.0.1", port)
    sel = selectors.DefaultSelector()
    for _ in range(count):
        _open(sel, address, mode)
    end = time.monotonic() + seconds
    next_drip = time.monotonic() + 1.0
    reopened = 0
    while time.monotonic() < end:
        for key, _mask in sel.select(0.02):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:  # closed by the server: come straight back
                _close(sel, sock)
                _open(sel, address, mode)
                reopened += 1
        if mode == "churn":
            for key in list(sel.get_map().values()):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                _close(sel, sock, reset=True)
                _open(sel, address, mode)
                reopened += 1
        elif mode == "slowloris" and time.monotonic() >= next_drip:
            next_drip += 1.0
            for key in list(sel.get_map().values()):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                with contextlib.suppress(OSError):
                    sock.send(b"X-Slow: 1\r\n")
    print(f"reopened {reopened}", flush=True)


# ---------------------------------------------------------------- the kubelet (this process)


def probe_once(port: int) -> float | None:
    """Seconds for one kubelet-style /readyz probe that got a 200, or None when it failed."""
    request = (
        f"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/1.33\r\n"
        "Accept: */*\r\nConnection: close\r\nAccept-Encoding: gzip\r\n\r\n"
    ).encode()
    begun = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT) as sock:
            sock.sendall(request)
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
                if time.perf_counter() - begun > PROBE_TIMEOUT:
                    return None
    except OSError:
        return None
    elapsed = time.perf_counter() - begun
    answer = b"".join(chunks)
    return elapsed if answer.startswith(b"HTTP/1.0 200") and elapsed <= PROBE_TIMEOUT else None


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def measure(port: int, pid: int, seconds: float) -> tuple[list[float], int, int]:
    """(latencies of answered probes, failures, peak RSS) over `seconds`."""
    latencies: list[float] = []
    failures = 0
    peak = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        latency = probe_once(port)
        if latency is None:
            failures += 1
        else:
            latencies.append(latency)
        peak = max(peak, rss(pid))
        time.sleep(PROBE_INTERVAL)
    return latencies, failures, peak


def p99(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def start_sidecar(emu: Emulator, status_dir: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = clean_env(
        **emu.env(access_key_id="AKIDPROBE"),
        ENTITLEMENT_PRODUCT_CODE="prod-paid",
        ENTITLEMENT_PUBLIC_KEYS=str(emu.public_key_dir),
        ENTITLEMENT_STATUS_DIR=status_dir,
        ENTITLEMENT_PORT=str(port),
        ENTITLEMENT_INSTANCE_ID="probe-bench",
        ENTITLEMENT_LOG_LEVEL="WARNING",
    )
    sidecar = Path(sys.executable).parent / "entitlement-sidecar"
    process = subprocess.Popen([str(sidecar), "run"], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while http_get(f"http://127.0.0.1:{port}/readyz", timeout=1, quiet=True)[0] != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the sidecar never became ready")
        time.sleep(0.05)
    return process, port


def main() -> int:
    if "--attack" in sys.argv:
        attack(
            _option("--attack", "idle"),
            int(_option("--port", "0")),
            int(_option("--connections", "300")),
            float(_option("--seconds", "10")),
        )
        return 0
    count = int(_option("--connections", "300"))
    seconds = float(_option("--seconds", "10"))
    modes = [m for m in _option("--modes", ",".join(MODES)).split(",") if m]
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    rows = []
    with (
        Emulator({"products": {"prod-paid": {}}, "throttle": None}) as emu,
        tempfile.TemporaryDirectory(prefix="bench-probes-") as status_dir,
    ):
        process, port = start_sidecar(emu, status_dir)
        try:
            time.sleep(1.0)
            steady = rss(process.pid)
            quiet, quiet_failures, _peak = measure(port, process.pid, seconds / 2)
            rows.append(("none (baseline)", quiet, quiet_failures, steady, steady, steady))
            for mode in modes:
                before = rss(process.pid)
                attacker = subprocess.Popen(
                    [
                        *(sys.executable, __file__, "--attack", mode, "--port", str(port)),
                        *("--connections", str(count), "--seconds", str(seconds + 1)),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                time.sleep(0.5)  # let the attack build up first
                latencies, failures, peak = measure(port, process.pid, seconds)
                attacker.wait(timeout=seconds + 30)
                time.sleep(2.0)
                rows.append((mode, latencies, failures, before, peak, rss(process.pid)))
        finally:
            process.terminate()
            process.wait(10)
    print(
        f"{count} hostile connections per mode; a kubelet-style /readyz probe every 50 ms, "
        "1 s timeout"
    )
    print(
        f"{'mode':<16}{'probes':>7}{'failed':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'RSS before':>12}{'peak':>8}{'after':>8}"
    )
    for mode, latencies, failures, before, peak, after in rows:
        samples = latencies + [PROBE_TIMEOUT] * failures  # a failed probe counts as 1 s
        print(
            f"{mode:<16}{len(samples):>7}{failures:>7}{statistics.median(samples) * 1000:>9.1f}"
            f"{p99(samples) * 1000:>9.1f}{max(samples) * 1000:>9.1f}{before / MIB:>12.1f}"
            f"{peak / MIB:>8.1f}{after / MIB:>8.1f}"
        )
    print("target: p99 <= 100 ms and 0 failed in every mode; steady RSS unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
