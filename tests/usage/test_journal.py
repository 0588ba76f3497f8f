"""The journal: durable appends, replay, sealing as an atomic compaction, results, its bound."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from entitlement_sidecar.sidecar.usage.events import Event
from entitlement_sidecar.sidecar.usage.journal import (
    LOCK_FILE,
    Conflict,
    Journal,
    JournalBusy,
    JournalFull,
    Overflow,
)
from entitlement_sidecar.sidecar.usage.state import JOURNAL_FILE, State
from entitlement_sidecar.sidecar.usage.units import MAX_UNITS

from .conftest import H10, HOUR

H11 = H10 + HOUR
NOW = H10 + 1800.0


def ev(dimension: str = "gb", units: int = 1_000_000, id: str | None = None, **kw: Any) -> Event:
    return Event(dimension, units, id, kw.get("time"), kw.get("tags", ()))


def lines(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (directory / JOURNAL_FILE).read_text().splitlines()]


def test_acknowledged_events_are_replayed_by_a_new_process(tmp_path: Path) -> None:
    """Totals per hour and dimension and the ids seen come back after a reopen."""
    journal = Journal(tmp_path, 1 << 20, NOW)
    done = journal.append([ev(id="a"), ev("jobs", 2_500_000, "b"), ev(units=1)], NOW)
    assert (done.accepted, done.duplicates, done.carried) == (3, 0, 0)
    journal.close()
    again = Journal(tmp_path, 1 << 20, NOW + 5)
    assert again.open[H10].totals == {"gb": 1_000_001, "jobs": 2_500_000}
    assert again.seen("a")
    assert again.start == NOW  # the first start is kept: earlier usage folds into its hour


def test_a_seen_id_is_acknowledged_and_not_counted_again(tmp_path: Path) -> None:
    """Within a batch, across requests, across the open hours and a restart, an id counts once."""
    journal = Journal(tmp_path, 1 << 20, NOW)
    assert journal.append([ev(id="a"), ev(id="a")], NOW).duplicates == 1
    assert journal.append([ev(id="a", time=NOW + 1)], NOW + 1).duplicates == 1
    assert journal.append([ev(id="a")], H11 + 30).duplicates == 1  # hour 10 still open
    assert journal.open[H10].totals == {"gb": 1_000_000}
    assert H11 not in journal.open
    journal.close()
    assert Journal(tmp_path, 1 << 20, NOW).append([ev(id="a")], NOW).duplicates == 1


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (ev(id="x"), ev(units=0, id="x")),
        (ev(id="x"), ev("jobs", id="x")),
        (ev(id="x"), ev(id="x", tags=(("team", "a"),))),
    ],
    ids=["zero-quantity", "other-dimension", "other-tags"],
)
def test_an_id_reused_for_other_content_is_a_conflict_not_a_duplicate(
    tmp_path: Path, first: Event, second: Event
) -> None:
    """Nobody can squat an app's ids with other events to make its real ones vanish."""
    journal = Journal(tmp_path, 1 << 20, NOW)
    journal.append([first], NOW)
    with pytest.raises(Conflict) as refused:
        journal.append([ev(id="fresh"), second], NOW)
    assert (refused.value.index, refused.value.field) == (1, "id")
    with pytest.raises(Conflict):
        journal.append([second, first], NOW + 1)
    assert journal.open[H10].events == 1
    assert not journal.seen("fresh")


def test_a_torn_last_line_is_cut_off_and_a_bad_line_dropped(tmp_path: Path) -> None:
    """A crash mid-append (never acknowledged) and a garbled line cost nothing else."""
    journal = Journal(tmp_path, 1 << 20, NOW)
    journal.append([ev(id="a")], NOW)
    journal.close()
    with (tmp_path / JOURNAL_FILE).open("ab") as handle:
        handle.write(b"this is not json\n")
        handle.write(b'{"k":"e","h":%d,"d":"gb","q":5' % H10)  # torn: no newline
    again = Journal(tmp_path, 1 << 20, NOW)
    assert again.open[H10].totals == {"gb": 1_000_000}
    assert [r["k"] for r in lines(tmp_path)] == ["state", "e"]  # rewritten clean


def test_sealing_replaces_the_events_by_one_record_per_hour(tmp_path: Path) -> None:
    """Totals per dimension and tag set are fixed; later hours keep their events."""
    journal = Journal(tmp_path, 1 << 20, NOW)
    journal.append(
        [
            ev("jobs", 3_000_000, "a", tags=(("team", "x"),)),
            ev("jobs", 2_000_000, "b"),
            ev("jobs", 1_000_000, "c", tags=(("team", "x"),)),
        ],
        NOW,
    )
    journal.append([ev("gb", 5, "d")], H11 + 5)
    journal.compact({H10: H11 - 1})
    records = lines(tmp_path)
    assert [r["k"] for r in records] == ["state", "e", "s"]
    assert records[0]["sealed_through"] == H10
    assert records[2] == {
        "k": "s",
        "h": H10,
        "ts": H11 - 1,
        "dims": {"jobs": {"q": 6_000_000, "a": [[[], 2_000_000], [[["team", "x"]], 4_000_000]]}},
    }
    assert journal.sealed[H10].pending() == ["jobs"]
    assert not journal.seen("a")  # the sealed hour's ids are gone with its events
    assert journal.seen("d")


def test_usage_of_a_sealed_hour_is_carried_into_the_next_one(tmp_path: Path) -> None:
    """AWS records never change: late 10:xx usage after the seal counts at 11:00."""
    journal = Journal(tmp_path, 1 << 20, NOW)
    journal.append([ev()], NOW)
    journal.compact({H10: int(NOW)})
    done = journal.append([ev(time=NOW + 60), ev(time=NOW - 7200)], NOW + 120)
    assert done.carried == 2
    assert journal.open[H11].totals == {"gb": 2_000_000}
    assert journal.target_hour(H11 + 10, H11 + 10) == H11


@pytest.mark.parametrize(
    ("moment", "now", "hour"),
    [
        (H10 + 3599, H11 + 59, H10),
        (H10 + 3599, H11 + 60, H11),
        (H10 + 10, H10 + 5 * HOUR, H10 + 5 * HOUR),
        (H11 + 200, H11 - 100, H11),
    ],
    ids=["within-the-seal-delay", "closed-hour", "hours-old", "a-little-ahead"],
)
def test_only_open_hours_take_usage_in_their_own_hour(
    tmp_path: Path, moment: float, now: float, hour: int
) -> None:
    """Usage of an hour closed before the event came counts now: it could only expire unsent."""
    journal = Journal(tmp_path, 1 << 20, H10)
    done = journal.append([ev(time=moment)], now)
    assert list(journal.open) == [hour]
    assert done.carried == (hour != H10 + (3600 if moment >= H11 else 0))


def test_usage_from_before_the_first_start_counts_in_the_start_hour(tmp_path: Path) -> None:
    """A record may not be stamped before the software ran: earlier times fold into hour 10."""
    journal = Journal(tmp_path, 1 << 20, NOW)
    assert journal.append([ev(time=H10 - 3 * HOUR)], NOW).carried == 1
    assert list(journal.open) == [H10]


def test_a_full_journal_refuses_the_whole_batch_until_a_seal_frees_space(tmp_path: Path) -> None:
    """Nothing of a refused batch is written; sealing the hour makes room again."""
    journal = Journal(tmp_path, 64 * 1024, NOW)
    batch = [ev(id=f"event-{n:05d}") for n in range(600)]
    journal.append(batch, NOW)
    size = journal.size
    with pytest.raises(JournalFull):
        journal.append([ev(id=f"more-{n:05d}") for n in range(600)], NOW)
    assert journal.size == size == (tmp_path / JOURNAL_FILE).stat().st_size
    assert journal.open[H10].events == 600
    journal.compact({H10: H11 - 1})
    assert journal.size < 1024
    journal.append([ev(id=f"more-{n:05d}") for n in range(600)], H11 + 61)


def test_an_hour_total_beyond_aws_maximum_is_refused(tmp_path: Path) -> None:
    """10 integer digits is AWS's limit for the hour's quantity: the event passing it is named."""
    journal = Journal(tmp_path, 1 << 20, NOW)
    journal.append([ev(units=MAX_UNITS - 1)], NOW)
    with pytest.raises(Overflow) as refused:
        journal.append([ev("jobs"), ev(units=1), ev(units=1)], NOW)
    assert refused.value.index == 2
    assert journal.open[H10].totals == {"gb": MAX_UNITS - 1}


def test_send_results_settle_an_hour_and_the_next_compaction_drops_it(tmp_path: Path) -> None:
    """Sent/Failed settle a dimension once; Transient counts attempts; counts survive the drop."""
    journal = Journal(tmp_path, 1 << 20, NOW)
    journal.append([ev(), ev("jobs")], NOW)
    journal.compact({H10: H11 - 1})
    assert journal.record({"h": H10, "d": "gb", "r": "Transient", "c": "ThrottlingException"})
    assert journal.record({"h": H10, "d": "gb", "r": "Sent", "id": "rec-1"})
    assert not journal.record({"h": H10, "d": "gb", "r": "Sent", "id": "rec-2"})  # settled
    assert not journal.record({"h": H10, "d": "nope", "r": "Sent"})
    assert not journal.record({"h": 12345, "d": "gb", "r": "Sent"})
    assert journal.sealed[H10].pending() == ["jobs"]
    journal.close()
    replayed = Journal(tmp_path, 1 << 20, NOW)
    assert replayed.sealed[H10].dims["gb"].record_id == "rec-1"
    assert replayed.sealed[H10].dims["gb"].attempts == 2
    replayed.record({"h": H10, "d": "jobs", "r": "Failed", "c": "InvalidUsageDimensionException"})
    replayed.compact({})
    assert H10 not in replayed.sealed
    assert replayed.sends == {"gb": {"Transient": 1, "Sent": 1}, "jobs": {"Failed": 1}}
    assert [r["r"] for r in replayed.recent] == ["Sent", "Failed"]
    replayed.close()
    final = Journal(tmp_path, 1 << 20, NOW)
    assert final.sends == replayed.sends
    assert final.sealed_through == H10
    assert final.target_hour(NOW, NOW) == H11


def test_a_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails half way is truncated away; nothing is counted or acknowledged."""
    journal = Journal(tmp_path, 1 << 20, NOW)
    journal.append([ev(id="kept")], NOW)
    size = journal.size
    real_write = os.write

    def half_then_full_disk(fd: int, data: Any) -> int:
        if len(data) > 10:
            return real_write(fd, bytes(data[:10]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full_disk)
    with pytest.raises(OSError, match="No space"):
        journal.append([ev(id="lost")], NOW)
    monkeypatch.undo()
    assert (tmp_path / JOURNAL_FILE).stat().st_size == size
    assert not journal.seen("lost")
    journal.append([ev(id="lost")], NOW)  # the retry is counted once
    assert journal.open[H10].totals == {"gb": 2_000_000}


def test_a_failed_compaction_keeps_the_old_file_and_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the rename fails, the hour stays open with its events; no temp file is left."""
    journal = Journal(tmp_path, 1 << 20, NOW)
    journal.append([ev(id="a")], NOW)
    before = (tmp_path / JOURNAL_FILE).read_bytes()

    def refuse(*_args: Any) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="I/O error"):
        journal.compact({H10: H11 - 1})
    monkeypatch.undo()
    assert (tmp_path / JOURNAL_FILE).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [JOURNAL_FILE, LOCK_FILE]
    assert H10 in journal.open
    journal.append([ev(id="b")], NOW)
    assert journal.open[H10].totals == {"gb": 2_000_000}


def test_the_sender_reads_the_sealed_requests(tmp_path: Path) -> None:
    """A read-only State sees every sealed hour with its allocations and send state."""
    journal = Journal(tmp_path, 1 << 20, NOW)
    journal.append([ev("jobs", 3, tags=(("team", "x"),)), ev("jobs", 4)], NOW)
    journal.compact({H10: H11 - 1})
    state = State(tmp_path, H11, keep_bodies=True)
    state.replay()
    assert state.sealed[H10].dims["jobs"].units == 7
    assert state.bodies[H10]["jobs"]["a"] == [[[], 4], [[["team", "x"]], 3]]


def test_one_journal_has_one_writer(tmp_path: Path) -> None:
    """A second writer on the same status directory is refused until the first one closes."""
    first = Journal(tmp_path, 1 << 20, NOW)
    with pytest.raises(JournalBusy, match="kept by another running sidecar"):
        Journal(tmp_path, 1 << 20, NOW)
    first.close()
    Journal(tmp_path, 1 << 20, NOW).close()
