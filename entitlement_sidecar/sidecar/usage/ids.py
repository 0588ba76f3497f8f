"""The event ids an open hour has seen, in 16 bytes each, and what each id stood for.

An app retries a request it got no answer to, with the same `id`: the sidecar acknowledges the
repeat and counts it once. Kept for every open hour, so the memory is bounded by the journal, not
by the traffic: each id is an 8-byte keyed BLAKE2b digest (a per-process random key: nobody can
aim two ids at one digest; a chance collision among the ~45,000 ids of a full 4 MiB journal is
about 1 in 10^10 per hour) in a sorted array, with an 8-byte digest of the event's content
(dimension, quantity, tags) beside it. A repeated id with the same content is a duplicate; with
other content it is a conflict (refused, never counted): so another process in the pod cannot
squat on the app's ids with zero quantities to make its real events vanish. `_blake2` is the
C module behind `hashlib.blake2b`; `hashlib` itself would load OpenSSL (about 3.5 MiB).
"""

from __future__ import annotations

import os
from _blake2 import blake2b
from array import array
from bisect import bisect_left

_KEY = os.urandom(16)
SAME, CONFLICT, NEW = "same", "conflict", "new"


def digest(text: str) -> int:
    """The keyed 64-bit digest of `text` (stable within this process only)."""
    hashed = blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8, key=_KEY)
    return int.from_bytes(hashed.digest(), "big")


def content(dimension: str, units: int, tags: tuple[tuple[str, str], ...]) -> int:
    """The digest of what an event reports (its time only chose the hour)."""
    return digest(repr((dimension, units, tags)))


class IdIndex:
    """Sorted id digests and, at the same index, the content digest of each id's event."""

    __slots__ = ("contents", "ids")

    def __init__(self) -> None:
        self.ids = array("Q")
        self.contents = array("Q")

    def __len__(self) -> int:
        return len(self.ids)

    def check(self, event_id: int, what: int) -> str:
        """`NEW`, `SAME` (a repeat of the same event) or `CONFLICT` (the id meant another)."""
        at = bisect_left(self.ids, event_id)
        if at == len(self.ids) or self.ids[at] != event_id:
            return NEW
        return SAME if self.contents[at] == what else CONFLICT

    def add(self, event_id: int, what: int) -> None:
        at = bisect_left(self.ids, event_id)
        self.ids.insert(at, event_id)
        self.contents.insert(at, what)
