"""Where each workload's checkpoint line lives: base shards and a log, never rewritten in place.

The checkpoint is log-structured. Its objects (*pieces*) are written once and never changed:

- **base shards** hold the lines of all workloads as of the last compaction;
- the **log** holds, oldest first, the lines of workloads that changed since (a later line of a
  workload overrides an earlier one and its base line; a line naming only the workload says it
  has nothing left). A checkpoint rewrites only the newest log piece (the *open* one) with its
  lines and those that changed, as a new piece: at most one object of `PAYLOAD_BYTES` plus the
  changes, however many workloads there are.
- a **compaction**, once the log outgrows `log_budget()` (a quarter of the base), writes new base
  shards for the workloads of the log and of every shard that holds a superseded line (sorted by
  key, so changes in one namespace touch few shards), a slice per checkpoint, while checkpoints
  go on logging changes; once the last shard is written, the root names the new shards (and the
  shards it kept) and only the log pieces written meanwhile, whose lines still override.

One small object, the *root*, names the pieces in force; switching it (a write conditioned on its
resourceVersion) is the commit of a checkpoint or compaction. A crash before the switch leaves
unnamed pieces (garbage, deleted later), never a half-written checkpoint; a stalled ex-leader can
only create garbage, since its switch is refused. This module is the bookkeeping (pure); the
I/O is `checkpoints.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from entitlement_sidecar.operator.shards import PAYLOAD_BYTES

LINE_GUESS = 160  # bytes of an average line, until the base says better
LOG_FLOOR = 4 * PAYLOAD_BYTES  # a log this small never calls for a compaction


@dataclass(eq=False)
class Piece:
    """One checkpoint object: its name, the workloads whose latest line it holds (key -> line
    size; `gone`: their line says they have nothing), and the bytes of all lines it was written
    with (`total`; lines that later pieces superseded are `dead`)."""

    name: str
    sizes: dict[str, int] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    total: int = 0
    live: int = 0

    def add(self, key: str, size: int, *, gone: bool = False) -> None:
        self.sizes[key] = size
        self.total += size
        self.live += size
        if gone:
            self.gone.add(key)

    def supersede(self, key: str) -> None:
        self.live -= self.sizes.pop(key)
        self.gone.discard(key)

    @property
    def dead(self) -> int:
        return self.total - self.live


@dataclass
class Layout:
    """The pieces in force (base shards, log oldest first) and each workload's latest line."""

    base: list[Piece] = field(default_factory=list)
    log: list[Piece] = field(default_factory=list)
    where: dict[str, Piece] = field(default_factory=dict)

    def names(self) -> tuple[list[str], list[str]]:
        return [p.name for p in self.base], [p.name for p in self.log]

    def pieces(self) -> int:
        return len(self.base) + len(self.log)

    def workloads(self) -> int:
        """Workloads with a line that is not a tombstone."""
        return len(self.where) - sum(len(p.gone) for p in self.log)

    def log_keys(self) -> list[str]:
        return [key for piece in self.log for key in piece.sizes]

    def log_bytes(self) -> int:
        return sum(p.total for p in self.log)

    def log_budget(self) -> int:
        """Log bytes past which a checkpoint compacts: a quarter of the base, at least
        `LOG_FLOOR` (so a restore reads at most a quarter more than the base)."""
        return max(LOG_FLOOR, sum(p.total for p in self.base) // 4)

    def line_guess(self) -> int:
        lines = sum(len(p.sizes) for p in self.base)
        return sum(p.live for p in self.base) // lines if lines else LINE_GUESS

    def should_compact(self, changed: int) -> bool:
        """Whether `changed` more lines would take the log past its budget."""
        return self.log_bytes() + changed * self.line_guess() > self.log_budget()

    def open_piece(self) -> Piece | None:
        """The newest log piece (a checkpoint rewrites it with the new lines while they fit)."""
        return self.log[-1] if self.log else None

    def dirty_base(self, changed: Iterable[str]) -> list[Piece]:
        """The base shards a compaction of `changed` rewrites: those holding one of them or a
        superseded line, and those less than half full (so shards never fragment)."""
        hit = {id(self.where[k]) for k in changed if k in self.where}
        return [p for p in self.base if id(p) in hit or p.dead or p.total < PAYLOAD_BYTES // 2]

    def plan(self, touched: Iterable[str] = ()) -> Compaction:
        """A compaction of the log (and of `touched`, lines not written anywhere yet)."""
        changed = set(touched).union(self.log_keys())
        dirty = self.dirty_base(changed)
        keys = sorted(changed.union(*(p.sizes for p in dirty)))
        return Compaction(keys, dirty, list(self.log))

    def commit(self, base: list[Piece], log: list[Piece], new: Iterable[Piece]) -> list[Piece]:
        """Put these pieces in force; the lines of the `new` ones are now the latest of their
        workloads. Return the pieces no longer named (garbage)."""
        for piece in new:
            for key in piece.sizes:
                self._move(key, piece)
        return self._replace(base, log)

    def finish(self, compaction: Compaction) -> tuple[list[Piece], list[Piece]]:
        """The base and log in force once `compaction` is done: the shards it kept and wrote,
        and the log pieces written while it ran."""
        dirty = {id(p) for p in compaction.dirty}
        folded = {id(p) for p in compaction.folded}  # alive: the compaction holds them
        base = [p for p in self.base if id(p) not in dirty] + compaction.new
        return base, [p for p in self.log if id(p) not in folded]

    def commit_compaction(self, compaction: Compaction) -> list[Piece]:
        """Put `finish(compaction)` in force: a workload's line in the new shards is its latest
        unless the log written meanwhile holds a later one. Return the garbage."""
        base, log = self.finish(compaction)
        newer = {id(p) for p in log}
        for piece in compaction.new:
            for key in list(piece.sizes):
                current = self.where.get(key)
                if current is not None and id(current) in newer:
                    piece.supersede(key)
                else:
                    self._move(key, piece)
        for key in compaction.gone:
            current = self.where.get(key)
            if current is None or id(current) not in newer:
                self._move(key, None)
        return self._replace(base, log)

    def _replace(self, base: list[Piece], log: list[Piece]) -> list[Piece]:
        current = {id(p) for p in base} | {id(p) for p in log}
        dropped = [p for p in self.base + self.log if id(p) not in current]
        self.base, self.log = base, log
        return dropped

    def _move(self, key: str, piece: Piece | None) -> None:
        old = self.where.get(key)
        if old is not None and old is not piece and key in old.sizes:
            old.supersede(key)
        if piece is None:
            self.where.pop(key, None)
        else:
            self.where[key] = piece


@dataclass(eq=False)
class Compaction:
    """A compaction under way: the workloads to rewrite (sorted), how far it got, the base
    shards it replaces, the log pieces it folds in (those in force when it started), and what
    it wrote so far (named by nothing until it is done). It holds the pieces themselves, never
    their `id()`s: a folded piece replaced and freed while the compaction runs could lend its
    address, and so its id, to a newer log piece, which would then be dropped as folded."""

    keys: list[str]
    dirty: list[Piece]
    folded: list[Piece]
    position: int = 0
    new: list[Piece] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.position >= len(self.keys)
