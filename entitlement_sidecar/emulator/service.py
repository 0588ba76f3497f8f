"""The emulator's core, without sockets: one API request in, one `Outcome` out.

`Service` owns the swappable scenario, the shared `State`, the signing keys and the clock. It
applies the steps in the order a real endpoint does: authentication, operation, injected faults,
throttling, body, then the operation's own rules. Unexpected exceptions become a plain
InternalServiceErrorException, never a stack trace on the wire.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from entitlement_sidecar.emulator.entitlement import register_usage, resolve_customer
from entitlement_sidecar.emulator.holds import Holds
from entitlement_sidecar.emulator.metering import batch_meter_usage, meter_usage
from entitlement_sidecar.emulator.protocol import (
    CONTENT_TYPE,
    TARGET_PREFIX,
    ApiError,
    parse_authorization,
    parse_body,
    parse_target,
)
from entitlement_sidecar.emulator.scenario import Scenario, ScenarioError, load_scenario
from entitlement_sidecar.emulator.signing import KeyRing
from entitlement_sidecar.emulator.state import Call, State, World

log = logging.getLogger(__name__)
_CALLER_RE = re.compile(r"Credential=([A-Za-z0-9]{1,128})/")
ScenarioSource = Scenario | Mapping[str, Any] | Path | str | None
Handler = Callable[[World, Call], dict[str, Any]]
HANDLERS: dict[str, Handler] = {
    "RegisterUsage": register_usage,
    "MeterUsage": meter_usage,
    "ResolveCustomer": resolve_customer,
}
SIGV4_REGION_CHECKED = frozenset({"BatchMeterUsage", "ResolveCustomer"})
UNAVAILABLE = b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>\n"


@dataclass(frozen=True)
class Outcome:
    """What to send back: a status and body, or nothing at all (`drop`)."""

    status: int = 200
    body: bytes = b"{}"
    content_type: str = CONTENT_TYPE
    drop: bool = False


def utc_now() -> datetime:
    """The real clock, aware UTC."""
    return datetime.now(UTC)


class Service:
    """Scenario + state + keys + clock; thread-safe."""

    def __init__(
        self,
        scenario: ScenarioSource = None,
        public_key_dir: Path | None = None,
        now: Callable[[], datetime] | None = None,
        clock_offset_seconds: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._own_dir = public_key_dir is None
        self.public_key_dir = Path(public_key_dir or tempfile.mkdtemp(prefix="emulator-keys-"))
        self._clock = now or utc_now
        self._offset_override = clock_offset_seconds
        self._sleep = sleep
        self.state = State()
        self.holds = Holds()
        self.keys = KeyRing()
        self._swap_lock = threading.Lock()  # one scenario swap at a time (keys, key files)
        self.scenario = load_scenario(None)
        self._rotation_at = self._clock()
        self.set_scenario(scenario)

    def now(self) -> datetime:
        """The emulator clock: the injected or real clock plus the configured offset."""
        offset = self._offset_override
        if offset is None:
            offset = self.scenario.clock_offset_seconds
        return self._clock() + timedelta(seconds=offset)

    def set_scenario(self, source: ScenarioSource) -> Scenario:
        """Swap the scenario (keys of known versions are kept; fault counters start over)."""
        scenario = load_scenario(source)
        with self._swap_lock:
            try:
                self.keys.ensure(scenario.key_versions, scenario.key_files)
            except (OSError, ValueError) as exc:
                raise ScenarioError(f"scenario key key_files: {exc}") from None
            self.keys.write_public(self.public_key_dir, scenario.key_versions)
            with self.state.lock:
                self.scenario = scenario
                self.state.fault_used.clear()
                self.state.buckets.clear()
            self._rotation_at = self.now()
        self.holds.release()
        return scenario

    def records(self) -> dict[str, Any]:
        """The introspection document (`GET /_emulator/records`)."""
        with self.state.lock:
            return self.state.snapshot()

    def reset(self) -> None:
        """Clear records, buckets and fault counters; keep keys and scenario."""
        with self.state.lock:
            self.state.clear()
        self.holds.release()

    def close(self) -> None:
        """Release held requests; remove the key directory if the service created it."""
        self.holds.release()
        if self._own_dir:
            shutil.rmtree(self.public_key_dir, ignore_errors=True)

    def handle(
        self, target: str | None, content_type: str | None, auth: str | None, raw: bytes
    ) -> Outcome:
        """Answer one API request (and log it at INFO: the CLI's access log)."""
        try:
            outcome, code = self._handle(target, content_type, auth, raw), ""
        except ApiError as error:
            outcome, code = Outcome(error.status, error.body()), error.code
        except Exception:
            log.exception("emulator failure on %s", target)
            failure = ApiError("InternalServiceErrorException", "Internal error in the emulator")
            outcome, code = Outcome(failure.status, failure.body()), failure.code
        if log.isEnabledFor(logging.INFO):
            match = _CALLER_RE.search(auth or "")
            operation = (target or "-").removeprefix(TARGET_PREFIX)
            status = "dropped" if outcome.drop else str(outcome.status)
            log.info("%s %s -> %s %s", operation, match[1] if match else "-", status, code)
        return outcome

    def _handle(
        self, target: str | None, content_type: str | None, auth: str | None, raw: bytes
    ) -> Outcome:
        caller = parse_authorization(auth)
        operation = parse_target(target)
        scenario = self.scenario
        if operation in SIGV4_REGION_CHECKED and caller.region != scenario.region:
            # RegisterUsage and MeterUsage have modeled region errors (their handlers raise them);
            # for the others a real endpoint refuses the credential scope itself.
            raise ApiError(
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region, not '{caller.region}'.",
            )
        with self.state.lock:
            self.state.requests[operation] += 1
            faults = self.state.take_faults(scenario, operation)
        delay = sum(fault.seconds for fault in faults if fault.kind == "delay")
        if delay:
            self._sleep(delay)
        for fault in faults:
            if fault.kind == "hold":
                self.holds.hold(fault.seconds or None)
        kinds = {fault.kind: fault for fault in faults}
        if "drop" in kinds:
            return Outcome(drop=True)
        if "http_503" in kinds:
            return Outcome(503, UNAVAILABLE, "text/html")
        if "internal_error" in kinds:
            raise ApiError("InternalServiceErrorException", "Internal service error (injected)")
        if "throttle" in kinds:
            raise ApiError("ThrottlingException", "Rate exceeded (injected)")
        if "error" in kinds:
            code = kinds["error"].code or "InternalServiceErrorException"
            raise ApiError(code, f"{code} (injected)")
        account = scenario.account_of(caller.access_key_id)
        with self.state.lock:
            allowed = self.state.allow(
                operation, account, scenario.rate(operation), time.monotonic()
            )
        if not allowed:
            raise ApiError("ThrottlingException", "Rate exceeded")
        body = parse_body(content_type, raw)
        call = Call(operation, caller, account, body, self.now())
        world = World(scenario, self.state, self.keys, self._rotation_at)
        if operation == "BatchMeterUsage":
            answer = batch_meter_usage(world, call, unprocessed="unprocessed" in kinds)
        else:
            answer = HANDLERS[operation](world, call)
        return Outcome(200, json.dumps(answer).encode())


def request_id() -> str:
    """A fresh x-amzn-RequestId."""
    return str(uuid.uuid4())
