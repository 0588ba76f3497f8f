"""Emulator benchmarks, printed as ratios against a baseline measured in the same run.

Baseline: the same boto3 client stack against a bare stdlib ThreadingHTTPServer that answers a
fixed JSON body (no auth parsing, validation, state or signing). The ratio is the emulator's own
cost per request on top of HTTP + botocore.

1. MeterUsage, one client, sequential: median latency ratio (target <= 1.5).
2. RegisterUsage, one client, sequential: ratio (includes an RSA-2048 PSS signature per call).
3. MeterUsage from 8 threads (8 pods), throttling off: throughput ratio (target >= 0.6).

Both sides run interleaved in small rounds; medians are reported.

Usage: `python benchmarks/bench_emulator.py [--requests N]`.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
from botocore.config import Config

from entitlement_sidecar.emulator import Emulator

CANNED = b'{"MeteringRecordId": "00000000-0000-0000-0000-000000000000", "Signature": "a.b.c"}'


class _Canned(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 64 * 1024  # same socket settings as the emulator: a fair baseline
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(CANNED)))
        self.end_headers()
        self.wfile.write(CANNED)


class _CannedServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the emulator's accept backlog: same connection behaviour


def _client(url: str, access_key_id: str) -> Any:
    return boto3.session.Session().client(
        "meteringmarketplace",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key="x",  # noqa: S106 (a dummy: the servers do not check it)
        config=Config(retries={"total_max_attempts": 1}, max_pool_connections=16),
    )


def _latencies(call: Callable[[int], object], count: int) -> list[float]:
    times = []
    for i in range(count):
        start = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - start)
    return times


def _meter(client: Any, base: datetime) -> Callable[[int], object]:
    def send(i: int) -> object:
        # a new dimension-hour per call would need many dimensions: vary the caller's hour instead
        when = base - timedelta(hours=i % 5, minutes=1)
        return client.meter_usage(
            ProductCode="prod-paid", Timestamp=when, UsageDimension="users", UsageQuantity=1
        )

    return send


def _throughput(url: str, requests: int, base: datetime) -> float:
    clients = [_client(url, f"AKIDBENCH{n}") for n in range(8)]
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        send = _meter(clients[n], base)
        for i in range(requests // 8):
            send(i)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(worker, range(8)))
    return requests / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    count = parser.parse_args().requests
    base = datetime.now(UTC)
    canned = _CannedServer(("127.0.0.1", 0), _Canned)
    threading.Thread(target=canned.serve_forever, daemon=True).start()
    canned_url = f"http://127.0.0.1:{canned.server_address[1]}"
    scenario = {"throttle": None, "products": {"prod-paid": {"dimensions": ["users"]}}}
    with Emulator(scenario) as emu:
        plain, ours = _client(canned_url, "AKIDBENCH"), _client(emu.url, "AKIDBENCH")
        register = {"ProductCode": "prod-paid", "PublicKeyVersion": 1, "Nonce": "bench"}
        for client in (plain, ours):  # warm up connections and botocore caches
            _latencies(_meter(client, base), 20)
        rows = []
        for name, make in (
            ("MeterUsage", lambda c: _meter(c, base)),
            ("RegisterUsage", lambda c: lambda i: c.register_usage(**register)),
        ):
            # interleaved in small rounds so load changes on a shared machine hit both sides
            base_times: list[float] = []
            emu_times: list[float] = []
            for _ in range(count // 20):
                base_times += _latencies(make(plain), 20)
                emu_times += _latencies(make(ours), 20)
            rows.append((name, statistics.median(base_times), statistics.median(emu_times)))
        rates = [
            (_throughput(canned_url, count // 4, base), _throughput(emu.url, count // 4, base))
            for _ in range(4)
        ]
        base_rate = statistics.median(r[0] for r in rates)
        emu_rate = statistics.median(r[1] for r in rates)
    canned.shutdown()
    print(f"{'measure':<34} {'baseline':>10} {'emulator':>10} {'ratio':>7}")
    for name, baseline, measured in rows:
        label = f"{name} median latency (ms)"
        ratio = measured / baseline
        print(f"{label:<34} {baseline * 1e3:>10.2f} {measured * 1e3:>10.2f} {ratio:>7.2f}")
    label = "MeterUsage 8 threads (req/s)"
    print(f"{label:<34} {base_rate:>10.0f} {emu_rate:>10.0f} {emu_rate / base_rate:>7.2f}")


if __name__ == "__main__":
    main()
