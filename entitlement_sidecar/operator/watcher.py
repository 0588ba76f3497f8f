"""Watching Deployments, StatefulSets and DaemonSets: a paginated list, then one watch stream.

Each event is reduced at once to what metering needs (the workload's identity, our annotations,
its ready replicas) and handed to `Engine.observe`; bad annotations get a Warning Event. One
thread per resource (and namespace, when the operator is limited to some), nothing per object:
kopf's per-object handlers started a worker for each of 100,000 workloads at once (measured:
260 MiB RSS for a handler that only counted), this keeps the operator's memory flat.

The protocol is the API server's: list in pages of `PAGE` (`continue` tokens), watch from the
list's resourceVersion with bookmarks, re-watch from the last one when a stream ends (the server
ends it after `WATCH_SECONDS`; the read timeout is longer, and both stay inside the Lease), and
list again after `410 Gone`, when workloads deleted meanwhile are observed as gone. Errors are
logged and retried with backoff; the thread never dies.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import urllib3
from kubernetes import client as k8s

from entitlement_sidecar.operator.annotations import PREFIX, WorkloadRef
from entitlement_sidecar.operator.store import TIMEOUT, EventSink

if TYPE_CHECKING:
    from entitlement_sidecar.operator.engine import Engine

log = logging.getLogger(__name__)
WORKLOADS = (
    ("deployments", "Deployment"),
    ("statefulsets", "StatefulSet"),
    ("daemonsets", "DaemonSet"),
)
PAGE = 500
SYNC_GRACE = 300.0  # seconds after which `ready()` holds even if a kind never listed
WATCH_SECONDS = 40  # the server ends each watch after this; we read for at most 15 s more
GONE = 410


class Watcher:
    """The workload watch threads of one operator instance."""

    def __init__(
        self,
        api: k8s.ApiClient,
        engine: Engine,
        events: EventSink,
        now: Callable[[], datetime],
        namespaces: Sequence[str] = (),
    ) -> None:
        self._api = k8s.CustomObjectsApi(api)
        self._engine = engine
        self._events = events
        self._now = now
        self._namespaces = list(namespaces) or [""]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._responses: set[Any] = set()
        self._lock = threading.Lock()
        self.synced = threading.Event()  # every stream has listed once
        self._pending = len(WORKLOADS) * len(self._namespaces)
        self._started = time.monotonic()
        self._late = False

    def start(self) -> Watcher:
        for namespace in self._namespaces:
            for plural, kind in WORKLOADS:
                thread = threading.Thread(
                    target=self._run,
                    args=(plural, kind, namespace),
                    daemon=True,
                    name=f"watch-{plural}-{namespace or 'all'}",
                )
                thread.start()
                self._threads.append(thread)
        return self

    def ready(self) -> bool:
        """Whether every workload has been listed once (the engine resumes from the checkpoint
        only then: a workload not seen yet would look gone). After `SYNC_GRACE` seconds a kind
        that keeps failing to list holds nobody up any more (it is logged)."""
        if self.synced.is_set():
            return True
        if time.monotonic() - self._started < SYNC_GRACE:
            return False
        if not self._late:
            self._late = True
            log.warning("not every workload kind could be listed yet; metering goes on without")
        return True

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for response in list(self._responses):
                response.shutdown()  # unblocks a thread waiting on its stream (urllib3 >= 2.3)
        for thread in self._threads:
            thread.join(5)

    def _run(self, plural: str, kind: str, namespace: str) -> None:
        known: set[str] = set()
        version = ""
        failures = 0
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._list(plural, kind, namespace, known)
                version = self._watch(plural, kind, namespace, known, version)
                failures = 0
            except k8s.ApiException as error:
                if error.status == GONE:
                    version = ""  # too old to resume: list again
                    continue
                failures += 1
                log.warning(
                    "watch failed; retrying", extra={"resource": plural, "status": error.status}
                )
            except (
                TimeoutError,
                urllib3.exceptions.TimeoutError,
                urllib3.exceptions.ProtocolError,
            ):
                continue  # an idle stream timed out (or a server ended it abruptly): watch on
            except Exception:  # a reset, garbage: never let the thread die
                if self._stop.is_set():
                    return
                failures += 1
                log.warning(
                    "watch interrupted; retrying", extra={"resource": plural}, exc_info=True
                )
            self._stop.wait(min(30.0, 0.5 * 2 ** min(failures, 6)) if failures else 0)

    def _list(self, plural: str, kind: str, namespace: str, known: set[str]) -> str:
        """One full listing, page by page; workloads gone since the last one are observed gone."""
        seen: set[str] = set()
        token, version = "", ""
        while True:
            page = self._call(plural, namespace, limit=PAGE, _continue=token or None)
            for obj in page.get("items") or ():
                seen.add(self._observe(kind, obj, gone=False))
            meta = page.get("metadata") or {}
            version = meta.get("resourceVersion") or ""
            token = meta.get("continue") or ""
            if not token:
                break
        for key in known - seen:
            ref = WorkloadRef.from_key(key)
            self._engine.observe(ref, {}, {}, gone=True)
        known.clear()
        known.update(seen)
        self._synced()
        return version

    def _watch(self, plural: str, kind: str, namespace: str, known: set[str], version: str) -> str:
        """Stream events from `version` until the server ends the stream; the last version."""
        response = self._call(
            plural,
            namespace,
            watch=True,
            resource_version=version if version not in {"", "..."} else None,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _preload_content=False,
            _request_timeout=(TIMEOUT[0], WATCH_SECONDS + TIMEOUT[1]),
        )
        with self._lock:
            self._responses.add(response)
            if self._stop.is_set():  # stop() ran while this request was being made
                response.shutdown()
        try:
            for event in _lines(response):
                kind_of = event.get("type")
                obj = event.get("object") or {}
                if kind_of == "ERROR":
                    raise k8s.ApiException(
                        status=int(obj.get("code") or 500), reason=obj.get("reason")
                    )
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if kind_of in {"ADDED", "MODIFIED", "DELETED"}:
                    key = self._observe(kind, obj, gone=kind_of == "DELETED")
                    (known.discard if kind_of == "DELETED" else known.add)(key)
        finally:
            with self._lock:
                self._responses.discard(response)
            response.release_conn()
        return version

    def _observe(self, kind: str, obj: Mapping[str, Any], *, gone: bool) -> str:
        meta = obj.get("metadata") or {}
        ref = WorkloadRef(meta.get("namespace") or "", kind, meta.get("name") or "")
        notes = {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(PREFIX)}
        problems = self._engine.observe(ref, notes, obj.get("status") or {}, gone=gone)
        if problems:
            self._events.warn_once(
                {"apiVersion": "apps/v1", "kind": kind, "metadata": meta},
                "InvalidMeteringAnnotation",
                "; ".join(problems),
                self._now(),
                about=json.dumps(notes, sort_keys=True),
            )
        return sys.intern(ref.key)

    def _call(self, plural: str, namespace: str, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", TIMEOUT)
        if namespace:
            return self._api.list_namespaced_custom_object(
                "apps", "v1", namespace, plural, **kwargs
            )
        return self._api.list_cluster_custom_object("apps", "v1", plural, **kwargs)

    def _synced(self) -> None:
        with self._lock:
            self._pending -= 1
            if self._pending <= 0:
                self.synced.set()


def _lines(response: Any) -> Iterator[dict[str, Any]]:
    """The JSON events of a watch response, one per line."""
    buffer = b""
    for chunk in response.stream(65536, decode_content=False):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            if line.strip():
                yield cast(dict[str, Any], json.loads(line))
    if buffer.strip():
        yield cast(dict[str, Any], json.loads(buffer))
