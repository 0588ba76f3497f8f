"""The checkpoint's objects on the API server: pieces written once, the root that names them.

`Pieces` is the Kubernetes I/O of `layout.py`'s structure: it creates a piece from entry lines
(one POST, never patched), switches the root (a status patch conditioned on the root's
resourceVersion: 409 means another instance writes the checkpoint, `Superseded`), reads the
pieces the root names, and deletes the pieces no root names any more, a few per tick. Every
write first checks the Lease (`hold`) and passes the test hook (`before_checkpoint`).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator

from entitlement_sidecar.operator import ledger
from entitlement_sidecar.operator.accounting import Entry
from entitlement_sidecar.operator.layout import Piece
from entitlement_sidecar.operator.metrics import Metrics
from entitlement_sidecar.operator.shards import decode_lines
from entitlement_sidecar.operator.store import LedgerStore

log = logging.getLogger(__name__)
SWEEP_PAGE = 16  # checkpoint objects listed at a time by the hourly sweep
Line = tuple[str, str, int, bool]  # key, line, its size, whether it is a tombstone


class Superseded(Exception):
    """Another instance wrote the checkpoint's root since we did: it holds the Lease now."""


class Pieces:
    """Create, name, read and delete the checkpoint objects of one product."""

    def __init__(
        self,
        store: LedgerStore,
        *,
        product_code: str,
        identity: str,
        metrics: Metrics,
        hold: Callable[[str], None],
        hook: Callable[[str, str], None],
    ) -> None:
        self.store = store
        self.product_code = product_code
        self.identity = identity
        self.metrics = metrics
        self.hold = hold  # raises when the Lease lapsed: no write after that
        self.hook = hook  # the sender's test hook, between two writes
        self.root = ledger.root_name(product_code)
        self._root_version = ""
        self._epoch = secrets.token_hex(4)  # piece names never collide across instances
        self._sequence = 0
        self.garbage: list[str] = []  # pieces no root names (any more): to delete

    def create(self, kind: str, run: list[Line]) -> Piece:
        """Create one piece of these lines (named by the root only after a switch)."""
        self._sequence += 1
        name = f"{self.root}-{self._epoch}-{self._sequence}"
        lines = [line for _, line, _, _ in run]
        obj = ledger.piece_object(self.product_code, name, kind, lines, self.store.namespace)
        self.hold("checkpoint")
        self.hook("before_checkpoint", name)
        if self.store.create(obj, answer=False) is None:
            raise RuntimeError(f"checkpoint piece {name} exists already")
        piece = Piece(name)
        for key, _, size, tombstone in run:
            piece.add(key, size, gone=tombstone)
        self.metrics.checkpoint_bytes.inc(piece.total, kind=kind)
        return piece

    def name(self, base: list[Piece], log_: list[Piece]) -> None:
        """Switch the root to these pieces: the commit."""
        self.switch([p.name for p in base], [p.name for p in log_])

    def switch(self, base: list[str], log_: list[str]) -> None:
        """Write the root, conditioned on the version this instance last read or wrote."""
        self.hold("checkpoint")
        self.hook("before_checkpoint", self.root)
        status = {"base": base, "log": log_, "writer": self.identity}
        written = self.store.patch_status(self.root, status, self._root_version)
        if written is None:
            self.metrics.fenced.inc(step="checkpoint")
            log.warning("checkpoint root written by another instance", extra={"root": self.root})
            raise Superseded(self.root)
        self._root_version = written["metadata"].get("resourceVersion") or ""

    def fence(self) -> tuple[list[str], list[str]]:
        """Write the root (created when missing), so that no earlier holder's switch lands;
        return the pieces it names."""
        root = self.store.get(self.root)
        if root is None:
            self.hold("checkpoint")
            fresh = ledger.root_object(self.product_code, self.store.namespace)
            root = self.store.create(fresh) or self.store.get(self.root) or fresh
        self._root_version = root["metadata"].get("resourceVersion") or ""
        status = root.get("status") or {}
        base, log_ = list(status.get("base") or ()), list(status.get("log") or ())
        self.switch(base, log_)
        return base, log_

    def read(self, name: str) -> Iterator[tuple[str, str, Entry]]:
        """The lines of a piece the root names, with their entries (nothing if it is gone,
        which is logged and counted: its workloads' usage since they last changed is lost)."""
        obj = self.store.get(name)
        if obj is None:
            self.metrics.tick_errors.inc()
            log.error(
                "a checkpoint piece named by the root is missing: its workloads' usage since "
                "they last changed is lost",
                extra={"piece": name},
            )
            return
        lines = (obj.get("spec") or {}).get("entries") or []
        for line, (key, entry) in zip(lines, decode_lines(lines), strict=True):
            yield key, line, entry

    def collect(self, limit: int) -> None:
        """Delete up to `limit` pieces no root names."""
        while self.garbage and limit > 0:
            self.hold("checkpoint")
            self.store.delete(self.garbage.pop(0))
            limit -= 1

    def sweep(self, named: set[str]) -> None:
        """Queue every checkpoint object not in `named` for deletion (left by a crash between
        a piece and the switch, or by a stalled ex-leader), listing a page at a time."""
        selector = f"{ledger.CHECKPOINT_LABEL}={ledger.checkpoint_key(self.product_code)}"
        for page in self.store.pages(selector, SWEEP_PAGE):
            self.garbage += [o["metadata"]["name"] for o in page]
        self.garbage = [name for name in dict.fromkeys(self.garbage) if name not in named]

    def forget(self, pieces: list[Piece]) -> None:
        self.garbage += [p.name for p in pieces]


def pack(lines: Iterator[Line], budget: int) -> Iterator[list[Line]]:
    """Lines (those with text) in runs of at most `budget` bytes, in order."""
    run: list[Line] = []
    used = 0
    for line in lines:
        if not line[1]:
            continue
        if run and used + line[2] > budget:
            yield run
            run, used = [], 0
        run.append(line)
        used += line[2]
    if run:
        yield run


def has(entry: Entry) -> bool:
    """Whether an entry holds anything (a tombstone holds nothing)."""
    return bool(entry.usage or entry.rates or entry.tags)
