"""Ledger content spread over objects of bounded size: checkpoint shards and allocation parts.

One hour of 100,000 workloads does not fit one Kubernetes object (the API server refuses objects
over ~1.5 MiB; this project keeps every ledger object under `MAX_OBJECT_BYTES`, 256 KiB, whatever
the names). So:

- the checkpoint is a set of shard objects, each holding the `Entry` of some workloads
  (`ShardMap` assigns workloads to shards, first fit, and marks a shard dirty only when one of
  its entries changed, so a checkpoint rewrites only the shards that changed: an unchanged
  workload's entry, "these rates since then", stays valid across hours);
- a write-ahead request whose allocations do not fit its hour object is split into parts.

Sizes are the compact JSON of the content; every entry is bounded (a Kubernetes name, at most 3
user tags of AWS's maximum length, three numbers per dimension), so a shard filled to
`PAYLOAD_BYTES` plus its metadata stays far below `MAX_OBJECT_BYTES`. Everything here is pure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from entitlement_sidecar.aws.metering import Allocation, format_quantity
from entitlement_sidecar.operator.accounting import RATE_SCALE, Entry, rate_units
from entitlement_sidecar.operator.ledger import to_time

MAX_OBJECT_BYTES = 256 * 1024
# Content per object: leaves room for metadata, spec, status fields and the API server's
# managedFields (a few hundred bytes: entries and allocations are atomic lists).
PAYLOAD_BYTES = 192 * 1024
STAMP = "%Y%m%d%H"


def encode_entry(key: str, entry: Entry) -> dict[str, Any]:
    """The checkpoint form of one workload: `w` key, `t` tags, `u` usage units of ended
    segments per open hour (`yyyymmddhh`) and dimension, `r` the open segment's rates since `s`."""
    encoded: dict[str, Any] = {"w": key}
    if entry.tags:
        encoded["t"] = dict(entry.tags)
    if entry.usage:
        encoded["u"] = {
            hour.strftime(STAMP): {d: str(u) for d, u in sorted(usage.items())}
            for hour, usage in sorted(entry.usage.items())
        }
    if entry.since is not None and entry.rates:
        encoded["r"] = {d: _rate_text(u) for d, u in entry.rates}
        encoded["s"] = to_time(entry.since)
    return encoded


def decode_entry(encoded: Mapping[str, Any]) -> tuple[str, Entry]:
    """The entry as `encode_entry` wrote it (its dimensions in order); fast: a resume decodes
    one per workload."""
    rates = encoded.get("r")
    since = encoded.get("s")
    usage = encoded.get("u")
    return str(encoded["w"]), Entry(
        tags=tuple(sorted(encoded["t"].items())) if "t" in encoded else (),
        usage={
            datetime.strptime(stamp, STAMP).replace(tzinfo=UTC): {d: int(u) for d, u in by.items()}
            for stamp, by in usage.items()
        }
        if usage
        else {},
        rates=tuple((d, _units(r)) for d, r in rates.items()) if rates else (),
        since=datetime.fromisoformat(since) if since and rates else None,
    )


def entry_size(encoded: Mapping[str, Any]) -> int:
    return len(compact(encoded)) + 1  # + the list's comma


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class Shard:
    """One shard: its workloads (key -> entry size) and the resourceVersion last written."""

    sizes: dict[str, int] = field(default_factory=dict)
    version: str = ""
    total: int = 0


@dataclass
class ShardMap:
    """Which workload's entry lives in which shard (1-based), kept under `budget` bytes each."""

    budget: int = PAYLOAD_BYTES
    shards: list[Shard] = field(default_factory=list)
    where: dict[str, int] = field(default_factory=dict)
    dirty: set[int] = field(default_factory=set)

    def put(self, key: str, size: int) -> None:
        """Place or update `key` with an entry of `size` bytes; mark what changed dirty."""
        index = self.where.get(key)
        if index is not None:
            shard = self.shards[index - 1]
            if shard.total - shard.sizes[key] + size <= self.budget:
                shard.total += size - shard.sizes[key]
                shard.sizes[key] = size
                self.dirty.add(index)
                return
            self.drop(key)  # grew out of its shard: moves (the new shard is written first)
        index = self._room(size)
        shard = self.shards[index - 1]
        shard.sizes[key] = size
        shard.total += size
        self.where[key] = index
        self.dirty.add(index)

    def drop(self, key: str) -> None:
        index = self.where.pop(key, None)
        if index is not None:
            shard = self.shards[index - 1]
            shard.total -= shard.sizes.pop(key)
            self.dirty.add(index)

    def keys(self, index: int) -> list[str]:
        return sorted(self.shards[index - 1].sizes)

    def take_dirty(self) -> list[int]:
        """Dirty shards, the ones that gained a workload first (a moved entry is never lost)."""
        dirty, self.dirty = self.dirty, set()
        return sorted(dirty, reverse=True)

    def _room(self, size: int) -> int:
        if not self.shards or self.shards[-1].total + size > self.budget:
            self.shards.append(Shard())
        return len(self.shards)


def restore(shards: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Entry], ShardMap]:
    """Entries from an hour's shard objects (a workload in two shards, left by a crash in the
    middle of a move, is taken from the later-written one) and the map that placed them. Sizes
    are left at 0: a resume touches every entry, and the first checkpoint re-places them all."""
    chosen: dict[str, tuple[str, int, Entry]] = {}
    versions: dict[int, str] = {}
    for obj in shards:
        index = int(obj["spec"]["shard"])
        status = obj.get("status") or {}
        versions[index] = obj["metadata"].get("resourceVersion") or ""
        written = status.get("observedUntil") or ""
        for encoded in status.get("entries") or ():
            key, entry = decode_entry(encoded)
            if key not in chosen or written > chosen[key][0]:
                chosen[key] = (written, index, entry)
    placed = ShardMap()
    for index in sorted(versions):
        while len(placed.shards) < index:
            placed.shards.append(Shard())
        placed.shards[index - 1].version = versions[index]
    for key, (_, index, _) in chosen.items():
        placed.shards[index - 1].sizes[key] = 0
        placed.where[key] = index
    return {key: entry for key, (_, _, entry) in chosen.items()}, placed


def allocation_documents(allocations: Sequence[Allocation]) -> list[dict[str, Any]]:
    return [{"quantity": format_quantity(a.quantity), "tags": dict(a.tags)} for a in allocations]


def chunks(documents: Sequence[dict[str, Any]], budget: int = PAYLOAD_BYTES) -> list[list[Any]]:
    """`documents` in order, cut into runs of at most `budget` bytes of compact JSON."""
    runs: list[list[Any]] = [[]]
    used = 0
    for document in documents:
        size = len(compact(document)) + 1
        if runs[-1] and used + size > budget:
            runs.append([])
            used = 0
        runs[-1].append(document)
        used += size
    return runs


def _units(text: str) -> int:
    """Rate units of a rate as written by `_rate_text` (at most 12 decimals), fast and exact."""
    whole, _, fraction = text.partition(".")
    if len(fraction) <= 12 and (whole + fraction).isdigit():
        return int(whole) * RATE_SCALE + int(fraction.ljust(12, "0") or 0)
    return rate_units(Decimal(text))  # written by hand: anything Decimal reads


def _rate_text(units: int) -> str:
    text = f"{Decimal(units).scaleb(-12):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
