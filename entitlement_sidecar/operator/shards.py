"""Ledger content in objects of bounded size: checkpoint entry lines and allocation parts.

One hour of 100,000 workloads does not fit one Kubernetes object (the API server refuses objects
over ~1.5 MiB; this project keeps every ledger object under `MAX_OBJECT_BYTES`, 256 KiB, whatever
the names). So the checkpoint is spread over objects holding at most `PAYLOAD_BYTES` of *entry
lines* (`layout.py` decides which), and a write-ahead request whose allocations do not fit its
hour object is split into parts (`chunks`).

An entry line is one workload's `Entry` as compact JSON text (`w` key, `t` tags, `u` usage units
of ended segments per open hour `yyyymmddhh` and dimension, `r` the open segment's rates since
`s`), kept as one string in the object: the API server, the Kubernetes client and kmock handle a
list of strings far faster than a list of nested objects (the checkpoint of 100,000 workloads
went through the client's serializer 700,000 values at a time), and `kubectl get -o yaml` shows
one readable line per workload. Lines are pure ASCII without `<`, `>` or `&` (escaped as
`\\u00XX`), so `line_size` is exactly what the line takes in the object's JSON, whether or not
a serializer escapes HTML characters. Everything here is pure.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
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
_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
_DUMPS = json.JSONEncoder(ensure_ascii=True).encode
_PLAIN = re.compile(r"[-A-Za-z0-9 ._/:=+@]*")  # needs no JSON escape, is no HTML character


def encode_line(key: str, entry: Entry) -> str:
    """The checkpoint line of one workload (an empty entry, `{"w":key}`, says it has none):
    the compact JSON of `{"w", "t", "u", "r", "s"}`, written directly (a checkpoint of 100,000
    workloads encodes 100,000 of them)."""
    parts = ['{"w":', _quote(key)]
    if entry.tags:
        tags = ",".join(f"{_quote(k)}:{_quote(v)}" for k, v in entry.tags)
        parts.append(f',"t":{{{tags}}}')
    if entry.usage:
        hours = ",".join(
            f'"{_stamp(hour)}":{{{_numbers(usage)}}}' for hour, usage in sorted(entry.usage.items())
        )
        parts.append(f',"u":{{{hours}}}')
    if entry.since is not None and entry.rates:
        rates = ",".join(f'{_name(d)}:"{_rate_text(u)}"' for d, u in entry.rates)
        parts.append(f',"r":{{{rates}}},"s":"{_time_text(entry.since)}"')
    parts.append("}")
    return "".join(parts)


def decode_lines(lines: Sequence[str]) -> list[tuple[str, Entry]]:
    """The entries of an object's lines, in order (one JSON parse for all of them)."""
    return [decode_entry(document) for document in json.loads(f"[{','.join(lines)}]")]


def decode_entry(encoded: Mapping[str, Any]) -> tuple[str, Entry]:
    """One parsed line back to its entry (its dimensions in order); fast: a resume decodes one
    per workload."""
    rates: Mapping[str, str] = encoded.get("r") or {}
    usage: Mapping[str, Mapping[str, str]] = encoded.get("u") or {}
    tags: Mapping[str, str] = encoded.get("t") or {}
    since = encoded.get("s") if rates else None
    return str(encoded["w"]), Entry(
        tuple(sorted(tags.items())),
        {_hour(stamp): {d: int(u) for d, u in by.items()} for stamp, by in usage.items()},
        tuple([(d, _units(r)) for d, r in rates.items()]) if since else (),
        datetime.fromisoformat(since) if since else None,
    )


def line_size(line: str) -> int:
    """Bytes `line` takes in a compact JSON list of strings: quotes, escapes and a comma."""
    return len(line) + line.count('"') + line.count("\\") + 3


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def allocation_documents(allocations: Sequence[Allocation]) -> list[dict[str, Any]]:
    return [{"quantity": format_quantity(a.quantity), "tags": dict(a.tags)} for a in allocations]


def chunks(documents: Iterable[Any], budget: int = PAYLOAD_BYTES) -> list[list[Any]]:
    """`documents` in order, cut into runs of at most `budget` bytes of compact JSON."""
    runs: list[list[Any]] = [[]]
    used = 0
    for document in documents:
        size = line_size(document) if isinstance(document, str) else len(compact(document)) + 1
        if runs[-1] and used + size > budget:
            runs.append([])
            used = 0
        runs[-1].append(document)
        used += size
    return runs


def _quote(text: str) -> str:
    """`text` as a JSON string of ASCII without `<`, `>` or `&` (Kubernetes names, AWS tags and
    digits need no escapes: the common case is a plain check)."""
    if _PLAIN.fullmatch(text):
        return f'"{text}"'
    quoted = _DUMPS(text)
    for character, escape in _ESCAPES.items():
        quoted = quoted.replace(character, escape)
    return quoted


def _numbers(usage: Mapping[str, int]) -> str:
    return ",".join(f'{_name(d)}:"{u}"' for d, u in sorted(usage.items()))


@functools.lru_cache(maxsize=256)
def _name(dimension: str) -> str:
    """A dimension name quoted (a product has at most 24)."""
    return _quote(dimension)


@functools.lru_cache(maxsize=4096)
def _time_text(moment: datetime) -> str:
    """RFC 3339 of a segment's start (many workloads share one: the moment they were seen)."""
    return to_time(moment)


def _stamp(hour: datetime) -> str:
    hour = hour.astimezone(UTC)
    return f"{hour.year:04d}{hour.month:02d}{hour.day:02d}{hour.hour:02d}"


def _hour(stamp: str) -> datetime:
    return datetime(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:8]), int(stamp[8:10]), tzinfo=UTC)


def _units(text: str) -> int:
    """Rate units of a rate as written by `_rate_text` (at most 12 decimals), fast and exact."""
    if text.isdigit():
        return int(text) * RATE_SCALE
    whole, _, fraction = text.partition(".")
    if len(fraction) <= 12 and (whole + fraction).isdigit():
        return int(whole) * RATE_SCALE + int(fraction.ljust(12, "0"))
    return rate_units(Decimal(text))  # written by hand: anything Decimal reads


@functools.lru_cache(maxsize=4096)
def _rate_text(units: int) -> str:
    whole, fraction = divmod(units, RATE_SCALE)
    return f"{whole}.{fraction:012d}".rstrip("0") if fraction else str(whole)
