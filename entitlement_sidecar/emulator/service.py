"""The emulator's core, without sockets: one API request in, one `Outcome` out.

`Service` owns the swappable scenario, the shared `State`, the signing keys, the clock and the
registry of JSON services it serves (`apis.py`; STS's query protocol has its own short route,
`sts.py`). Every request goes through the same steps, in
the order a real endpoint takes them: the Authorization header's shape, the target (which service,
which operation), the credential scope and, when the scenario lists `callers`, the SigV4 HMAC;
then injected faults, throttling, the body, and the operation's own rules. Errors are rendered in
the service's JSON dialect; unexpected exceptions become a plain InternalServiceErrorException,
never a stack trace on the wire.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from entitlement_sidecar.aws import rules
from entitlement_sidecar.emulator import sts
from entitlement_sidecar.emulator.apis import JSON_APIS, JsonApi
from entitlement_sidecar.emulator.holds import Holds
from entitlement_sidecar.emulator.license_manager import write_issuer_key
from entitlement_sidecar.emulator.licenses import place
from entitlement_sidecar.emulator.protocol import ApiError, parse_body
from entitlement_sidecar.emulator.request import Outcome, Request
from entitlement_sidecar.emulator.scenario import Fault, Scenario, ScenarioError, load_scenario
from entitlement_sidecar.emulator.signing import KeyRing
from entitlement_sidecar.emulator.sigv4 import (
    UNKNOWN_KEY,
    AuthFailure,
    Authorization,
    parse_authorization,
    verify,
)
from entitlement_sidecar.emulator.state import Call, State, World

log = logging.getLogger(__name__)
_CALLER_RE = re.compile(rf"Credential=({rules.ACCESS_KEY_ID})/")
ScenarioSource = Scenario | Mapping[str, Any] | Path | str | None
UNAVAILABLE = b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>\n"


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
        *,
        sleep: Callable[[float], None] = time.sleep,
        apis: Mapping[str, JsonApi] = JSON_APIS,
        wall: Callable[[], datetime] | None = None,
    ) -> None:
        self._own_dir = public_key_dir is None
        self.public_key_dir = Path(public_key_dir or tempfile.mkdtemp(prefix="emulator-keys-"))
        self._clock = now or utc_now
        self._offset_override = clock_offset_seconds
        self._sleep = sleep
        self.apis = apis
        # SigV4 freshness is judged on the real clock (clients sign with theirs), never on the
        # scenario's shifted or injected business clock.
        self._wall = wall or utc_now
        self.state = State()
        self.holds = Holds()
        self.keys = KeyRing()
        self._swap_lock = threading.Lock()  # one scenario swap at a time (keys, key files)
        self.scenario = load_scenario(None)
        self._rotation_at = self._clock()
        try:
            self.set_scenario(scenario)
        except BaseException:  # a bad scenario: leave no temporary key directory behind
            self.close()
            raise

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
            licenses = place(scenario.licenses, scenario.account_id, scenario.region)
            if licenses:
                write_issuer_key(self.public_key_dir)
            with self.state.lock:
                self.scenario = scenario
                self.state.fault_used.clear()
                self.state.buckets.clear()
                self.state.licenses.sync(licenses, self._clock())
            self._rotation_at = self.now()
        self.holds.release()
        return scenario

    def licenses(self) -> list[dict[str, Any]]:
        """Each license, its seats in use and live consumptions (`GET /_emulator/licenses`)."""
        scenario = self.scenario
        placed = place(scenario.licenses, scenario.account_id, scenario.region)
        with self.state.lock:
            return self.state.licenses.snapshot(placed, self.now())

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

    def handle(self, request: Request) -> Outcome:
        """Answer one API request (and log it at INFO: the CLI's access log)."""
        target = request.header("x-amz-target")
        if sts.is_query(request.header("content-type"), target):
            return self._handle_query(request)
        namespace = "com.amazon.coral.service"
        try:
            header = request.header("authorization")
            try:
                auth = (
                    None
                    if header is None and self._unsigned(target)
                    else parse_authorization(header)
                )
            except AuthFailure as failure:
                raise ApiError.from_auth(failure) from None
            api, operation = self._route(target)
            namespace = api.error_namespace
            outcome, code = self._handle(request, api, operation, auth), ""
        except ApiError as error:
            outcome, code = error.outcome(namespace), error.code
        except Exception:
            log.exception("emulator failure on %s", (target or "-")[:100])
            crash = ApiError("InternalServiceErrorException", "Internal error in the emulator")
            outcome, code = crash.outcome(namespace), crash.code
        if log.isEnabledFor(logging.INFO):
            match = _CALLER_RE.search(request.header("authorization") or "")
            status = "dropped" if outcome.drop else str(outcome.status)
            shown = (target or "-")[:100]
            log.info("%s %s -> %s %s", shown, match[1] if match else "-", status, code)
        return outcome

    def _unsigned(self, target: str | None) -> bool:
        """Whether `target` names an operation callers may send without credentials."""
        prefix, _, operation = (target or "").rpartition(".")
        api = self.apis.get(prefix)
        return api is not None and operation in api.unsigned

    def account_of(self, access_key_id: str) -> str:
        """The caller's account: keys STS issued belong to their role's account."""
        session = self.state.licenses.sessions.get(access_key_id)
        return session.account if session else self.scenario.account_of(access_key_id)

    def _route(self, target: str | None) -> tuple[JsonApi, str]:
        """The service and operation an `X-Amz-Target` names, or UnknownOperationException."""
        prefix, _, operation = (target or "").rpartition(".")
        api = self.apis.get(prefix)
        if api is None or operation not in api.handlers:
            shown = (target or "")[:100]
            raise ApiError("UnknownOperationException", f"Unknown operation {shown!r}")
        return api, operation

    def _authenticate(
        self, request: Request, auth: Authorization, api: JsonApi, scenario: Scenario
    ) -> None:
        """The signer's scope always, and its HMAC when the scenario has `callers`."""
        if auth.service != api.signing_name:
            raise AuthFailure(
                "signature",
                f"Credential should be scoped to correct service: '{api.signing_name}'.",
            )
        if not scenario.callers:
            return  # permissive: any access key id is a caller, its HMAC is not checked
        keys = scenario.callers.get(auth.access_key_id)
        session = self.state.licenses.sessions.get(auth.access_key_id)
        if keys is not None:
            secret, token = keys.secret, keys.session_token
        elif session is not None:  # keys AssumeRoleWithWebIdentity issued
            secret, token = session.secret_access_key, session.session_token
        else:
            raise AuthFailure("unknown_key", UNKNOWN_KEY)
        if request.header("x-amz-security-token") != token:
            raise AuthFailure("unknown_key", UNKNOWN_KEY)
        verify(request, auth, secret, self._wall())

    def _handle(
        self, request: Request, api: JsonApi, operation: str, auth: Authorization | None
    ) -> Outcome:
        scenario = self.scenario
        if auth is None:  # an unsigned operation sent without credentials
            caller = Authorization("anonymous", "", scenario.region, api.signing_name, (), "")
        else:
            caller = auth
            try:
                self._authenticate(request, caller, api, scenario)
            except AuthFailure as failure:
                raise ApiError.from_auth(failure) from None
        if operation in api.region_checked and caller.region != scenario.region:
            # Operations with modeled region errors raise them in their handlers; for the others
            # a real endpoint refuses the credential scope itself.
            raise ApiError(
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region, not '{caller.region}'.",
            )
        kinds, early = self._faults(operation)
        if early is not None:
            return early
        if "internal_error" in kinds:
            raise ApiError(api.server_error, "Internal service error (injected)")
        if "throttle" in kinds:
            raise ApiError(api.throttle_error, "Rate exceeded (injected)")
        if "error" in kinds:
            code = kinds["error"].code or api.server_error
            raise ApiError(code, f"{code} (injected)")
        account = self.account_of(caller.access_key_id)
        if not self._allow(operation, account):
            raise ApiError(api.throttle_error, "Rate exceeded")
        body = parse_body(request.header("content-type"), request.body)
        call = Call(operation, caller, account, body, self.now(), frozenset(kinds))
        world = World(scenario, self.state, self.keys, self._rotation_at)
        return Outcome(200, json.dumps(api.handlers[operation](world, call)).encode())

    def _faults(self, operation: str) -> tuple[dict[str, Fault], Outcome | None]:
        """Count the request, take its faults (delays and holds happen here); an early answer."""
        with self.state.lock:
            self.state.requests[operation] += 1
            faults = self.state.take_faults(self.scenario, operation)
        delay = sum(fault.seconds for fault in faults if fault.kind == "delay")
        if delay:
            self._sleep(delay)
        for fault in faults:
            if fault.kind == "hold":
                self.holds.hold(fault.seconds or None)
        kinds: dict[str, Fault] = {fault.kind: fault for fault in faults}
        if "drop" in kinds:
            return kinds, Outcome(drop=True)
        if "http_503" in kinds:
            return kinds, Outcome(503, UNAVAILABLE, "text/html")
        return kinds, None

    def _allow(self, operation: str, account: str) -> bool:
        """Whether the account's quota for `operation` has room (token bucket)."""
        with self.state.lock:
            rate = self.scenario.rate(operation)
            return self.state.allow(operation, account, rate, time.monotonic())

    def _handle_query(self, request: Request) -> Outcome:
        """STS's query protocol (AssumeRoleWithWebIdentity only: unsigned, answered in XML)."""
        try:
            form = sts.parse_form(request.body)
            action = sts.action_of(form)
            kinds, early = self._faults(action)
            if early is not None:
                return early
            if "internal_error" in kinds:
                raise sts.StsError("InternalFailure", "Internal error (injected)", 500, "Receiver")
            if "throttle" in kinds or not self._allow(action, "sts"):
                raise sts.StsError("Throttling", "Rate exceeded")
            with self.state.lock:
                body = sts.assume_role_with_web_identity(self.state.licenses, form, self.now())
        except sts.StsError as error:
            log.info("%s -> %s %s", "STS", error.status, error.code)
            return Outcome(error.status, error.body(), sts.XML_CONTENT_TYPE)
        log.info("STS AssumeRoleWithWebIdentity -> 200")
        return Outcome(200, body, sts.XML_CONTENT_TYPE)
