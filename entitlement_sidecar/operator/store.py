"""Kubernetes I/O of the operator: the ledger objects, the single-sender Lease, Events.

Thin wrappers over the official `kubernetes` client (synchronous; the engine runs them in a worker
thread). Every call stays within the API-access table in docs/design.md, from which the chart's
RBAC is built: hourlyusages get/list/create/patch/delete and status get/patch, the one Lease
get/create/patch, events create. Every call carries `TIMEOUT` (connect, read), well inside the
Lease duration, so a hung API server cannot stall the holder past its Lease unnoticed; and every
status write is conditioned on the resourceVersion it was decided on (`None` back: someone else
wrote the object first, re-read and decide again).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from kubernetes import client as k8s

from entitlement_sidecar.operator import ledger

log = logging.getLogger(__name__)
LEASE_NAME = "entitlement-sidecar-operator"  # the default of ENTITLEMENT_OPERATOR_LEASE_NAME
MERGE_PATCH = "application/merge-patch+json"
NOT_FOUND = 404
CONFLICT = 409
# (connect, read) seconds of every Kubernetes call: with the Lease's 60 s and the sender's 20 s
# margin, a call started while the Lease was valid ends before another instance may take over.
TIMEOUT = (5.0, 15.0)


class LedgerStore:
    """HourlyUsage objects in one namespace."""

    def __init__(self, api: k8s.ApiClient, namespace: str) -> None:
        self._api = k8s.CustomObjectsApi(api)
        self.namespace = namespace

    def _args(self) -> tuple[str, str, str, str]:
        return (ledger.GROUP, ledger.VERSION, self.namespace, ledger.PLURAL)

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            obj = cast(
                dict[str, Any],
                self._api.get_namespaced_custom_object(
                    *self._args(), name, _request_timeout=TIMEOUT
                ),
            )
        except k8s.ApiException as error:
            if error.status == NOT_FOUND:
                return None
            raise
        return obj

    def select(self, selector: str) -> list[dict[str, Any]]:
        """The objects matching a label selector (allocation parts, the send loop's hours)."""
        return [obj for page in self.pages(selector, 0) for obj in page]

    def pages(self, selector: str, limit: int) -> Iterator[list[dict[str, Any]]]:
        """The objects matching a label selector, `limit` at a time (0: all at once), so large
        objects (checkpoint pieces) are never all in memory."""
        token: str | None = None
        while True:
            extra: dict[str, Any] = {"limit": limit} if limit else {}
            if token:
                extra["_continue"] = token
            answer = cast(
                dict[str, Any],
                self._api.list_namespaced_custom_object(
                    *self._args(), label_selector=selector, _request_timeout=TIMEOUT, **extra
                ),
            )
            yield list(answer.get("items") or [])
            token = (answer.get("metadata") or {}).get("continue")
            if not limit or not token:
                return

    def list(self, *, open_only: bool) -> list[dict[str, Any]]:
        """Hours still labelled open (the send loop's view), or the finished ones."""
        return self.select(f"{ledger.OPEN_LABEL}={'true' if open_only else 'false'}")

    def mark_closed(self, name: str) -> None:
        """Label a finished hour so the send loop stops listing it."""
        self._api.patch_namespaced_custom_object(
            *self._args(),
            name,
            {"metadata": {"labels": {ledger.OPEN_LABEL: "false"}}},
            _content_type=MERGE_PATCH,
            _request_timeout=TIMEOUT,
        )

    def create(self, obj: dict[str, Any], *, answer: bool = True) -> dict[str, Any] | None:
        """Create `obj` and return it as stored (with `answer=False` nothing is read back: `{}`,
        for a checkpoint piece); None when an object of that name is there."""
        try:
            created = self._api.create_namespaced_custom_object(
                *self._args(), obj, _request_timeout=TIMEOUT, _preload_content=answer
            )
        except k8s.ApiException as error:
            if error.status != CONFLICT:
                raise
            return None
        if answer:
            return cast(dict[str, Any], created)
        raw: Any = created  # the unparsed urllib3 response, drained so its connection is reused
        raw.drain_conn()
        raw.release_conn()
        return {}

    def patch_status(
        self, name: str, status: dict[str, Any], version: str
    ) -> dict[str, Any] | None:
        """Merge-patch the status if the object is still at `version` and return the object as
        written; None when anyone wrote it since (the API server answers 409 and changes
        nothing). An empty `version` (an object read from a server that keeps none) is
        unconditional."""
        body: dict[str, Any] = {"status": status}
        if version:
            body["metadata"] = {"resourceVersion": version}
        try:
            obj = self._api.patch_namespaced_custom_object_status(
                *self._args(),
                name,
                body,
                _content_type=MERGE_PATCH,
                _request_timeout=TIMEOUT,
            )
        except k8s.ApiException as error:
            if error.status == CONFLICT:
                return None
            raise
        return cast(dict[str, Any], obj)

    def delete(self, name: str) -> None:
        try:
            self._api.delete_namespaced_custom_object(*self._args(), name, _request_timeout=TIMEOUT)
        except k8s.ApiException as error:
            if error.status != NOT_FOUND:
                raise


@dataclass
class Lease:
    """The single-sender Lease (`LEASE_NAME` unless configured): only its holder sends.

    A holder renews it every tick; another instance takes it over only once it has not been
    renewed for `duration`. The take-over patch carries the resourceVersion it read, so on a real
    API server two instances racing for an expired Lease cannot both win (409 for the loser).
    `valid(margin)` says, from this process's own clock, whether the Lease it last wrote still
    has more than `margin` to run: the check made right before each AWS call.
    """

    api: k8s.ApiClient
    namespace: str
    identity: str
    duration: timedelta
    now: Callable[[], datetime]
    name: str = LEASE_NAME
    _held_until: datetime | None = field(default=None, init=False)
    _renewing: datetime = field(default=datetime.min.replace(tzinfo=UTC), init=False)

    def valid(self, margin: timedelta) -> bool:
        """Whether this instance holds the Lease for more than `margin` from now."""
        return self._held_until is not None and self.now() + margin < self._held_until

    def acquire(self) -> bool:
        """Hold (create, renew or take over) the Lease; False while another live holder has it."""
        held = self._acquire()
        self._held_until = self._renewing + self.duration if held else None
        return held

    def _acquire(self) -> bool:
        api = k8s.CoordinationV1Api(self.api)
        self._renewing = self.now()  # the renewTime written: the Lease runs from here
        moment = micro_time(self._renewing)
        spec = {
            "holderIdentity": self.identity,
            "renewTime": moment,
            "leaseDurationSeconds": int(self.duration.total_seconds()),
        }
        try:
            current = api.read_namespaced_lease(self.name, self.namespace, _request_timeout=TIMEOUT)
        except k8s.ApiException as error:
            if error.status != NOT_FOUND:
                raise
            body = {
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {**spec, "acquireTime": moment, "leaseTransitions": 0},
            }
            return self._write(
                lambda: api.create_namespaced_lease(
                    self.namespace, cast(Any, body), _request_timeout=TIMEOUT
                )
            )
        holder = current.spec.holder_identity if current.spec else None
        if holder != self.identity:
            renewed = current.spec.renew_time if current.spec else None
            if renewed is not None and renewed + self.duration > self.now():
                return False
            transitions = (current.spec.lease_transitions or 0) + 1 if current.spec else 1
            spec = {**spec, "acquireTime": moment, "leaseTransitions": transitions}
            log.info("taking over the Lease", extra={"previous_holder": holder})
        version = current.metadata.resource_version if current.metadata else None
        patch = {"metadata": {"resourceVersion": version}, "spec": spec}
        return self._write(
            lambda: api.patch_namespaced_lease(
                self.name,
                self.namespace,
                patch,
                _content_type=MERGE_PATCH,
                _request_timeout=TIMEOUT,
            )
        )

    def release(self) -> None:
        """Give the Lease up (clean shutdown) so the next instance need not wait for expiry."""
        self._held_until = None
        api = k8s.CoordinationV1Api(self.api)
        try:
            current = api.read_namespaced_lease(self.name, self.namespace, _request_timeout=TIMEOUT)
        except k8s.ApiException as error:
            if error.status == NOT_FOUND:
                return
            raise
        if current.spec is None or current.spec.holder_identity != self.identity:
            return
        patch = {"spec": {"holderIdentity": None, "renewTime": None}}
        api.patch_namespaced_lease(
            self.name, self.namespace, patch, _content_type=MERGE_PATCH, _request_timeout=TIMEOUT
        )

    @staticmethod
    def _write(call: Callable[[], object]) -> bool:
        try:
            call()
        except k8s.ApiException as error:
            if error.status == CONFLICT:
                return False
            raise
        return True


def micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime (Lease times): RFC 3339 with exactly six fractional digits, which
    the API server requires (it rejects `...:00Z` there)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EventSink:
    """Warning Events: bad annotations on workloads, failed or expired hours on the ledger."""

    def __init__(self, api: k8s.ApiClient, component: str = "entitlement-sidecar-operator") -> None:
        self._api = k8s.CoreV1Api(api)
        self._component = component

    def warn(self, obj: dict[str, Any], reason: str, message: str, now: datetime) -> None:
        """Post a Warning Event about `obj` (a name of our own: unique without server help)."""
        self._post(
            obj, reason, message, now, f"{obj['metadata']['name'][:200]}.{secrets.token_hex(8)}"
        )

    def warn_once(
        self, obj: dict[str, Any], reason: str, message: str, now: datetime, *, about: str
    ) -> None:
        """Post a Warning Event about `obj` once per `about` (say, an annotation value), also
        across restarts: its name is derived from them, and the API server refuses a second."""
        meta = obj["metadata"]
        digest = hashlib.sha256(f"{meta.get('uid')}\n{reason}\n{about}".encode()).hexdigest()[:16]
        self._post(obj, reason, message, now, f"{meta['name'][:200]}.{digest}")

    def _post(
        self, obj: dict[str, Any], reason: str, message: str, now: datetime, name: str
    ) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        event = {
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", ledger.API_VERSION),
                "kind": obj.get("kind", ledger.KIND),
                "name": meta["name"],
                "namespace": namespace,
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning",
            "source": {"component": self._component},
            "firstTimestamp": ledger.to_time(now),
            "lastTimestamp": ledger.to_time(now),
            "count": 1,
        }
        try:
            self._api.create_namespaced_event(namespace, cast(Any, event), _request_timeout=TIMEOUT)
        except k8s.ApiException as error:  # an Event is best effort; the ledger is the record
            if error.status != CONFLICT:  # 409: posted before (warn_once)
                log.warning(
                    "could not post Event", extra={"reason": reason, "status": error.status}
                )


WORKLOAD_PLURALS = ("deployments", "statefulsets", "daemonsets")
FORBIDDEN = frozenset({401, 403})


def watchable(api: k8s.ApiClient, namespaces: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split `namespaces` (empty: cluster-wide) into those whose workloads we may list, and a
    one-line reason for each we may not. kopf stops the whole operator when a watch keeps
    answering 403, so forbidden namespaces are left out before kopf starts."""
    objects = k8s.CustomObjectsApi(api)
    allowed: list[str] = []
    problems: list[str] = []
    for namespace in namespaces or [""]:
        where = f"namespace {namespace!r}" if namespace else "the cluster (all namespaces)"
        for plural in WORKLOAD_PLURALS:
            try:
                if namespace:
                    objects.list_namespaced_custom_object(
                        "apps", "v1", namespace, plural, limit=1, _request_timeout=TIMEOUT
                    )
                else:
                    objects.list_cluster_custom_object(
                        "apps", "v1", plural, limit=1, _request_timeout=TIMEOUT
                    )
            except k8s.ApiException as error:
                if error.status not in FORBIDDEN:
                    raise
                problems.append(
                    f"cannot list {plural} in {where} ({error.status} {error.reason}): its "
                    "workloads are NOT metered; grant the operator's Role there or drop it "
                    "from ENTITLEMENT_OPERATOR_NAMESPACES"
                )
                break
        else:
            allowed.append(namespace)
    return allowed, problems
