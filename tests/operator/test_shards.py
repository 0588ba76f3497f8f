"""Checkpoint shards and allocation parts: exact round trips, bounded sizes, safe moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from entitlement_sidecar.operator.accounting import Accumulator, Entry, rate_units
from entitlement_sidecar.operator.shards import (
    PAYLOAD_BYTES,
    ShardMap,
    chunks,
    compact,
    decode_entry,
    encode_entry,
    entry_size,
    restore,
)

HOUR = datetime(2026, 11, 28, 10, tzinfo=UTC)
KEY = "shop/Deployment/web"


def test_an_entry_round_trips_exactly() -> None:
    """Usage units, rates, the open segment's start and tags come back exactly as written."""
    entry = Entry(
        tags=(("team", "a"),),
        usage={HOUR: {"users": 123456789012345678901234567890}},
        rates=(("gb", rate_units(Decimal("0.000000000001"))), ("users", rate_units(Decimal(7)))),
        since=HOUR + timedelta(minutes=20, microseconds=1),
    )
    assert decode_entry(encode_entry(KEY, entry)) == (KEY, entry)


def test_a_map_rewrites_only_the_shard_of_a_changed_entry() -> None:
    """Only the shard whose entry changed is dirty; new entries fill the last shard first."""
    placed = ShardMap(budget=100)
    for i in range(6):
        placed.put(f"k{i}", 30)  # three per shard
    assert (len(placed.shards), placed.take_dirty()) == (2, [2, 1])
    placed.put("k4", 31)
    assert placed.take_dirty() == [2]
    assert placed.take_dirty() == []


def test_an_entry_that_outgrows_its_shard_moves_and_the_new_shard_is_written_first() -> None:
    """A grown entry leaves a full shard for one with room; its new shard is written before
    its old one, so a crash in between leaves it twice (resolved on restore), never nowhere."""
    placed = ShardMap(budget=100)
    for i in range(3):
        placed.put(f"k{i}", 33)
    placed.take_dirty()
    placed.put("k0", 50)
    assert placed.where["k0"] == 2
    assert placed.take_dirty() == [2, 1]


def test_restore_takes_a_workload_found_twice_from_the_later_shard() -> None:
    """A workload in two shards (a crash in the middle of a move) counts once, as written last."""
    old = encode_entry(KEY, Entry(usage={HOUR: {"users": 1}}))
    new = encode_entry(KEY, Entry(usage={HOUR: {"users": 2}}))
    shards = [
        {
            "metadata": {"resourceVersion": "7"},
            "spec": {"shard": 1},
            "status": {"observedUntil": "2026-11-28T10:20:00Z", "entries": [old]},
        },
        {
            "metadata": {"resourceVersion": "9"},
            "spec": {"shard": 2},
            "status": {"observedUntil": "2026-11-28T10:21:00Z", "entries": [new]},
        },
    ]
    entries, placed = restore(shards)
    assert entries == {KEY: Entry(usage={HOUR: {"users": 2}})}
    assert (placed.where, [s.version for s in placed.shards]) == ({KEY: 2}, ["7", "9"])


def test_allocation_parts_keep_order_and_stay_under_the_budget() -> None:
    """Allocations are cut into runs within the budget, in order, none lost."""
    documents = [{"quantity": str(i), "tags": {"workload": "x" * 200}} for i in range(3000)]
    runs = chunks(documents)
    assert [d for run in runs for d in run] == documents
    assert all(len(compact(run)) <= PAYLOAD_BYTES for run in runs)


NAMES = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=253)
TAG = st.text("abcdefghijklmnopqrstuvwxyz0123456789 +-=._:/@", min_size=1, max_size=256)


@settings(max_examples=25, deadline=None)
@given(
    names=st.lists(NAMES, min_size=1, max_size=400, unique=True),
    tags=st.dictionaries(st.sampled_from(["a" * 100, "b" * 100, "c" * 100]), TAG, max_size=3),
)
def test_no_shard_exceeds_the_budget_whatever_the_names(
    names: list[str], tags: dict[str, str]
) -> None:
    """Whatever the workload names and tags (up to Kubernetes' and AWS's maximum lengths), every
    shard's entries stay within the payload budget."""
    acc = Accumulator(HOUR)
    for name in names:
        key = f"{'n' * 63}/StatefulSet/{name}"
        acc.observe(
            key, {"users": Decimal("123456789.123456789012")}, tuple(sorted(tags.items())), HOUR
        )
    placed = ShardMap()
    texts = {}
    for key, entry in acc.entries().items():
        texts[key] = encode_entry(key, entry)
        placed.put(key, entry_size(texts[key]))
    for index in range(1, len(placed.shards) + 1):
        assert len(compact([texts[k] for k in placed.keys(index)])) <= PAYLOAD_BYTES
