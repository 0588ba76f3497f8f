"""Time-weighted usage per UTC hour, with a fake clock (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from entitlement_sidecar.operator.accounting import (
    Accumulator,
    ClosedHour,
    Entry,
    WorkloadUsage,
    hour_start,
    quantity_hours,
    rate_units,
    usage_of,
)

H10 = datetime(2026, 11, 28, 10, tzinfo=UTC)
H11 = H10 + timedelta(hours=1)
A = "shop/Deployment/a"
B = "shop/StatefulSet/b"


def at(minutes: float) -> datetime:
    """10:00 UTC plus `minutes`."""
    return H10 + timedelta(minutes=minutes)


def usage(
    hours: list[tuple[datetime, ClosedHour]], hour: datetime, dimension: str
) -> dict[str, Decimal]:
    by_hour: dict[datetime, Mapping[str, Mapping[str, WorkloadUsage]]] = dict(hours)
    found = by_hour.get(hour, {}).get(dimension, {})
    return {key: quantity_hours(w.usage) for key, w in found.items()}


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (
            datetime(2026, 1, 1, 10, 59, 59, 999999, tzinfo=UTC),
            datetime(2026, 1, 1, 10, tzinfo=UTC),
        ),
        (datetime(2026, 1, 1, 11, 0, 0, tzinfo=UTC), datetime(2026, 1, 1, 11, tzinfo=UTC)),
        (
            datetime(2026, 1, 1, 12, 30, tzinfo=UTC).astimezone(),
            datetime(2026, 1, 1, 12, tzinfo=UTC),
        ),
    ],
    ids=["last-microsecond", "exact-edge", "other-timezone"],
)
def test_hour_start(moment: datetime, expected: datetime) -> None:
    """A moment belongs to the UTC hour that starts at or before it."""
    assert expected == hour_start(moment)


def test_whole_hour_at_constant_rate() -> None:
    """A workload annotated the whole hour uses exactly its rate."""
    acc = Accumulator(at(0))
    acc.observe(A, {"users": Decimal(5)}, (), at(0))
    closed = acc.close(H11)
    assert [hour for hour, _ in closed] == [H10]
    assert {A: Decimal(5)} == usage(closed, H10, "users")


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([(30, {"users": Decimal(4)})], Decimal(2)),
        ([(0, {"users": Decimal(4)}), (15, None)], Decimal(1)),
        ([(0, {"users": Decimal(4)}), (30, {"users": Decimal(8)})], Decimal(6)),
        (
            [(0, {"users": Decimal(4)}), (20, None), (40, {"users": Decimal(4)})],
            Decimal("2.666667"),
        ),
        ([(0, {"users": Decimal(3)}), (45, {"users": Decimal(0)})], Decimal("2.25")),
    ],
    ids=["created-mid-hour", "deleted-mid-hour", "re-annotated", "gap-then-back", "set-to-zero"],
)
def test_mid_hour_changes_are_time_weighted(
    events: list[tuple[float, dict[str, Decimal] | None]], expected: Decimal
) -> None:
    """Creation, deletion and re-annotation mid-hour weigh each rate by the time it held."""
    acc = Accumulator(at(0))
    for minute, rates in events:
        acc.observe(A, rates, (), at(minute))
    got = usage(acc.close(H11), H10, "users")
    assert {A: expected} == {key: value.quantize(Decimal("0.000001")) for key, value in got.items()}


def test_replica_changes_follow_observations() -> None:
    """A per-replica rate that doubles at half past counts 1.5 times the single-replica rate."""
    acc = Accumulator(at(0))
    acc.observe(A, {"gb": Decimal("2.5")}, (), at(0))
    acc.observe(A, {"gb": Decimal(5)}, (), at(30))
    assert {A: Decimal("3.75")} == usage(acc.close(H11), H10, "gb")


def test_segment_crossing_the_hour_edge_is_split() -> None:
    """Usage straddling xx:59:59.999 is split between the two hours to the microsecond."""
    acc = Accumulator(at(0))
    acc.observe(
        A, {"users": Decimal(3600)}, (), datetime(2026, 11, 28, 10, 59, 59, 999000, tzinfo=UTC)
    )
    closed = acc.close(datetime(2026, 11, 28, 12, tzinfo=UTC))
    assert {A: Decimal("0.001")} == usage(closed, H10, "users")
    assert {A: Decimal(3600)} == usage(closed, H11, "users")


def test_close_keeps_the_current_hour() -> None:
    """close() returns completed hours only; the current hour keeps accumulating."""
    acc = Accumulator(at(0))
    acc.observe(A, {"users": Decimal(1)}, (), at(0))
    first = acc.close(at(90))
    assert [hour for hour, _ in first] == [H10]
    second = acc.close(H11 + timedelta(hours=1))
    assert {A: Decimal(1)} == usage(second, H11, "users")


def test_empty_watched_hours_are_returned_but_not_unwatched_ones() -> None:
    """Hours watched without usage come back empty; hours before the start never do."""
    acc = Accumulator(at(30))
    closed = acc.close(H10 + timedelta(hours=3))
    assert [H10, H11, H11 + timedelta(hours=1)] == [hour for hour, _ in closed]
    assert all(not hour_usage for _, hour_usage in closed)


def test_several_workloads_and_dimensions_are_kept_apart() -> None:
    """Each workload and dimension accumulates separately, with its latest tags."""
    acc = Accumulator(at(0))
    acc.observe(A, {"users": Decimal(2), "gb": Decimal(1)}, (("team", "a"),), at(0))
    acc.observe(B, {"users": Decimal(4)}, (), at(30))
    acc.observe(A, {"users": Decimal(2), "gb": Decimal(1)}, (("team", "z"),), at(45))
    closed = acc.close(H11)
    assert {A: Decimal(2), B: Decimal(2)} == usage(closed, H10, "users")
    assert {A: Decimal(1)} == usage(closed, H10, "gb")
    assert dict(closed)[H10]["users"][A].tags == (("team", "z"),)


def test_restart_mid_hour_resumes_from_checkpoint() -> None:
    """After a restart the checkpoint is kept and the gap until the restart is the only loss."""
    before = Accumulator(at(0))
    before.observe(A, {"users": Decimal(6)}, (), at(0))
    entries = before.entries()  # checkpointed at 10:20; the process dies at 10:25
    after = Accumulator(at(30))
    after.observe(A, {"users": Decimal(6)}, (), at(30))
    after.restore(entries, {H10: at(20)}, at(31))
    # 10:00-10:20 from the checkpoint (2.0) + 10:31-11:00 observed again (2.9)
    assert {A: Decimal("4.9")} == usage(after.close(H11), H10, "users")


def test_restore_brings_back_completed_hours() -> None:
    """A checkpointed hour that ended during the downtime is closed after the restart."""
    acc = Accumulator(at(70))
    acc.restore({A: Entry(usage={H10: {"users": usage_of(Decimal("0.5"))}})}, {H10: None}, at(70))
    closed = acc.close(at(75))
    assert [hour for hour, _ in closed] == [H10]
    assert {A: Decimal("0.5")} == usage(closed, H10, "users")


def test_restore_hours_gives_closed_hours_back() -> None:
    """Hours handed back after a failed close are closed again on the next try."""
    acc = Accumulator(at(0))
    acc.observe(A, {"users": Decimal(1)}, (), at(0))
    closed = acc.close(H11)
    acc.restore_hours(dict(closed))
    assert {A: Decimal(1)} == usage(acc.close(H11 + timedelta(minutes=1)), H10, "users")


def test_clock_going_backwards_adds_nothing() -> None:
    """An observation older than the open segment adds no negative or extra usage."""
    acc = Accumulator(at(0))
    acc.observe(A, {"users": Decimal(1)}, (), at(30))
    acc.observe(A, {"users": Decimal(2)}, (), at(10))  # the new rate counts from 10:30
    assert {A: Decimal("1")} == usage(acc.close(H11), H10, "users")


def test_an_open_segment_counts_up_to_the_checkpoint_that_last_saw_it() -> None:
    """A checkpointed open segment ("6 users since 10:00") counts in each open hour until that
    hour's last observation, never past the end of the hour."""
    acc = Accumulator(at(0))
    acc.observe(A, {"users": Decimal(6)}, (), at(0))
    (entry,) = acc.entries().values()
    assert (entry.rates, entry.since) == ((("users", rate_units(Decimal(6))),), at(0))
    restored = Accumulator(at(200))
    restored.restore({A: entry}, {H10: at(200), H11: at(90)}, at(200))
    closed = restored.close(at(200))
    assert {A: Decimal(6)} == usage(closed, H10, "users")
    assert {A: Decimal(3)} == usage(closed, H11, "users")  # 11:00-11:30, the last observation


def test_the_same_rates_again_change_nothing() -> None:
    """A status update that leaves rates and tags as they are is not a change to checkpoint."""
    acc = Accumulator(at(0))
    acc.observe(A, {"users": Decimal(6)}, (), at(0))
    assert acc.take_touched() == {A}
    acc.observe(A, {"users": Decimal("6.0")}, (), at(10))
    assert acc.take_touched() == set()
    acc.observe(A, {"users": Decimal(6)}, (("team", "a"),), at(20))
    assert acc.take_touched() == {A}


def test_rates_are_exact_to_twelve_decimals() -> None:
    """A rate keeps 12 decimal places exactly; beyond that it is rounded half-even."""
    assert rate_units(Decimal("0.000000000001")) == 1
    assert rate_units(Decimal("0.0000000000005")) == 0
    assert rate_units(Decimal("0.0000000000015")) == 2
