"""The usage part of `make demo`: an app reports usage across an hour boundary.

A sidecar with `ENTITLEMENT_USAGE_DIMENSIONS` set runs on a shifted clock that the emulator
shares (`testing.ShiftedClock`, as the tests do), so an hour passes in seconds: the app posts
events at HH:59:40 (a retry of one of them counted once, tags that become allocations), more
after the hour turned, reads GET /v1/usage, then the closed hour is sealed at HH+1:01 and sent:
one MeterUsage per dimension. SIGTERM then sends the partial hour at once. The story ends with
the records AWS would have received (the emulator's `/_emulator/records`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.sidecar.usage.client import request
from entitlement_sidecar.testing import ShiftedClock, free_port

HOUR = 3600
DIMENSIONS = ("gb_scanned", "jobs")


class UsageStoryFailed(Exception):
    """A usage step did not behave as narrated."""


def _clock_text(clock: ShiftedClock) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(clock.time()))


def _post(port: int, body: object) -> tuple[int, str]:
    reply = request("POST", "/v1/usage", json.dumps(body).encode(), port=port)
    return reply.status, reply.body.decode().strip()


def _wait(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise UsageStoryFailed(what)


def usage_story(make_pod: Callable[..., Any], emu: Emulator, clock: ShiftedClock, say: Any) -> int:
    """Run the story with a pod from `make_pod(name, product, command=..., **env)`; its exit
    code."""
    next_hour = (int(time.time()) // HOUR + 1) * HOUR
    clock.jump_to(next_hour - 20)
    port = free_port()
    say("\n5. Usage the app reports: custom metering from inside the pod (prod-paid)")
    say(
        "   the demo shifts the sidecar's and the emulator's clock, so an hour passes in seconds: "
        f"it is {_clock_text(clock)} UTC"
    )
    pod = make_pod(
        "demo-pod-5",
        "prod-paid",
        command=clock.command("run"),
        ENTITLEMENT_USAGE_DIMENSIONS=",".join(DIMENSIONS),
        ENTITLEMENT_USAGE_PORT=str(port),
        ENTITLEMENT_USAGE_TAG_KEYS="team",
        ENTITLEMENT_USAGE_SEND_JITTER="0",
    )
    say(
        f"   $ ENTITLEMENT_USAGE_DIMENSIONS={','.join(DIMENSIONS)} entitlement-sidecar run   "
        f"(intake on 127.0.0.1:{port})"
    )
    pod.wait_ready()
    event = {"dimension": "gb_scanned", "quantity": "12.5", "id": "scan-0001"}
    for attempt in ("", " (the app's retry)"):
        code, body = _post(port, event)
        _expect(code == 202, f"POST should be 202, got {code} {body}")
        say(f"   POST /v1/usage {json.dumps(event)}{attempt} -> {code} {body}")
    batch = {
        "events": [
            {"dimension": "jobs", "quantity": "3", "id": "job-1", "tags": {"team": "search"}},
            {"dimension": "jobs", "quantity": "2", "id": "job-2", "tags": {"team": "ads"}},
        ]
    }
    code, body = _post(port, batch)
    say(f"   POST /v1/usage (a batch of 2 jobs, tagged by team) -> {code} {body}")
    code, body = _post(port, {"dimension": "gpu_hours", "quantity": "1"})
    _expect(code == 400, "an unknown dimension must be refused")
    say(f"   POST gpu_hours -> {code}: {json.loads(body)['detail']}")
    clock.jump_to(next_hour + 5)
    code, body = _post(port, {"dimension": "gb_scanned", "quantity": "2", "id": "scan-0002"})
    say(f"   {_clock_text(clock)}: POST gb_scanned 2 -> {code} (counted in the new hour)")
    view = json.loads(request("GET", "/v1/usage", port=port).body)
    say(f"   GET /v1/usage -> this hour's totals {view['totals']}; not sent yet:")
    for hour in view["unsent"]:
        quantities = {d: v["quantity"] for d, v in hour["dimensions"].items()}
        say(f"     {hour['hour']} ({hour['state']}, AWS deadline {hour['deadline']}) {quantities}")
    clock.jump_to(next_hour + 65)
    say(f"   {_clock_text(clock)}: the closed hour is sealed (60 s after its end) and sent")
    _wait(lambda: len(emu.records()["meter_usage"]) == 2, "the closed hour was never sent")
    stopped: int = pod.stop()
    _expect(stopped == 0, f"SIGTERM should exit 0, got {stopped}")
    say("   SIGTERM -> the partial hour is sent at once; exit 0")
    say("   the records AWS would have received (GET /_emulator/records):")
    records = emu.records()["meter_usage"]
    for record in records:
        shares = ", ".join(
            f"{a['quantity']} {a['tags'] or 'untagged'}" for a in record["allocations"]
        )
        say(
            f"     {record['hour']} {record['dimension']:<10} {record['quantity']:>5}  "
            f"timestamp {record['timestamp']}" + (f"  allocations: {shares}" if shares else "")
        )
    _expect(len(records) == 3, f"expected 3 records, got {len(records)}")
    return stopped


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise UsageStoryFailed(what)
