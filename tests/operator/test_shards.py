"""Checkpoint entry lines and allocation parts: exact round trips, exact sizes, bounded objects."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from entitlement_sidecar.operator import ledger
from entitlement_sidecar.operator.accounting import Entry
from entitlement_sidecar.operator.pieces import pack
from entitlement_sidecar.operator.shards import (
    MAX_OBJECT_BYTES,
    PAYLOAD_BYTES,
    chunks,
    compact,
    decode_lines,
    encode_line,
    line_size,
)

HOUR = datetime(2026, 11, 28, 10, tzinfo=UTC)
KEY = "shop/Deployment/web"
# Kubernetes names (the longest: a 63-character namespace, a 253-character name), AWS tag keys
# and values (the seller guide's characters), and dimension names (anything, 1-255 characters).
NAMES = st.text("abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=253)
TAG = st.text("abcdefghijklmnopqrstuvwxyzABC0123456789 +-=._:/@", min_size=1, max_size=256)
DIMENSION = st.text(min_size=1, max_size=255)
UNITS = st.integers(min_value=1, max_value=10**9 * 10**12)
ENTRIES = st.builds(
    Entry,
    tags=st.dictionaries(TAG.map(lambda t: t[:100]), TAG, max_size=3).map(
        lambda d: tuple(sorted(d.items()))
    ),
    usage=st.dictionaries(
        st.integers(0, 6).map(lambda h: HOUR + timedelta(hours=h)),
        st.dictionaries(DIMENSION, st.integers(1, 10**40), min_size=1, max_size=3),
        max_size=3,
    ),
    rates=st.dictionaries(DIMENSION, UNITS, max_size=4).map(lambda d: tuple(sorted(d.items()))),
    since=st.integers(0, 10**10).map(lambda us: HOUR + timedelta(microseconds=us)),
).map(lambda e: e if e.rates else e._replace(since=None))


@settings(max_examples=200, deadline=None)
@given(key=NAMES, entry=ENTRIES)
def test_a_line_round_trips_exactly(key: str, entry: Entry) -> None:
    """Usage units, rates, the open segment's start and tags come back exactly as written,
    whatever the dimension names and tags."""
    assert decode_lines(json.loads(json.dumps([encode_line(key, entry)]))) == [(key, entry)]


@settings(max_examples=200, deadline=None)
@given(entries=st.lists(st.tuples(NAMES, ENTRIES), min_size=1, max_size=5))
def test_a_line_size_is_exactly_what_it_takes_in_the_object(
    entries: list[tuple[str, Entry]],
) -> None:
    """A list of lines takes exactly the sum of their sizes (plus its brackets, less a comma)
    in compact JSON, escaped for HTML or not: lines are ASCII without `<`, `>` or `&`."""
    lines = [encode_line(key, entry) for key, entry in entries]
    assert all(line.isascii() and not set(line) & set("<>&") for line in lines)
    assert len(compact(lines)) == sum(map(line_size, lines)) + 1
    assert len(json.dumps(lines, separators=(",", ":"))) == sum(map(line_size, lines)) + 1


def test_an_empty_entry_is_a_line_naming_only_its_workload() -> None:
    """A workload with nothing left is written as its key alone (a tombstone in the log)."""
    assert encode_line(KEY, Entry()) == '{"w":"shop/Deployment/web"}'
    assert decode_lines([encode_line(KEY, Entry())]) == [(KEY, Entry())]


def test_lines_written_by_hand_are_read_exactly() -> None:
    """Rates with more than 12 decimals or an exponent are rounded as annotations are."""
    rates = '"r":{"users":"1E+1","gb":"0.0000000000015"},"s":"2026-11-28T10:00:00Z"'
    line = f'{{"w":"a/Deployment/b",{rates}}}'
    ((_, entry),) = decode_lines([line])
    assert entry.rates == (("users", 10 * 10**12), ("gb", 2))


@settings(max_examples=25, deadline=None)
@given(names=st.lists(NAMES, min_size=1, max_size=300, unique=True), tags=st.data())
def test_no_piece_exceeds_the_budget_whatever_the_names(
    names: list[str], tags: st.DataObject
) -> None:
    """Lines of the longest Kubernetes names, three AWS tags of the longest values and rates in
    24 dimensions of 255 characters pack into pieces of at most `PAYLOAD_BYTES`, and a piece
    object stays under 256 KiB."""
    drawn = tags.draw(st.dictionaries(TAG.map(lambda t: t[:100]), TAG, min_size=3, max_size=3))
    rates = tuple(sorted((f"{i:02d}" + "d" * 253, 10**21 + i) for i in range(24)))
    entry = Entry(tuple(sorted(drawn.items())), {HOUR: dict(rates)}, rates, HOUR)
    lines = []
    for name in names:
        line = encode_line(f"{'n' * 63}/StatefulSet/{name}", entry)
        lines.append((name, line, line_size(line), False))
    for run in pack(iter(lines), PAYLOAD_BYTES):
        assert len(compact([line for _, line, _, _ in run])) <= PAYLOAD_BYTES
        obj = ledger.piece_object("p" * 255, "n" * 253, "base", [r[1] for r in run], "m" * 63)
        assert len(compact(obj)) < MAX_OBJECT_BYTES


def test_allocation_parts_keep_order_and_stay_under_the_budget() -> None:
    """Allocations are cut into runs within the budget, in order, none lost."""
    documents = [{"quantity": str(i), "tags": {"workload": "x" * 200}} for i in range(3000)]
    runs = chunks(documents)
    assert [d for run in runs for d in run] == documents
    assert all(len(compact(run)) <= PAYLOAD_BYTES for run in runs)
