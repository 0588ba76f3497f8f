"""What the app may post: every bad field is refused with its name, a batch is all or nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from entitlement_sidecar.sidecar.usage.events import MAX_BATCH, Event, Problem, Rules, parse

from .conftest import H10

RULES = Rules(frozenset({"gb", "jobs"}), frozenset({"team", "env"}))
NOW = H10 + 1800.0


def parsed(document: Any, raw: bytes | None = None) -> tuple[list[Event], bool] | Problem:
    return parse(raw if raw is not None else json.dumps(document).encode(), RULES, NOW)


def test_one_event_with_every_field() -> None:
    """Dimension, quantity, id, time and tags are read exactly (tags sorted by key)."""
    events, batch = parsed(  # type: ignore[misc]
        {
            "dimension": "gb",
            "quantity": "12.5",
            "id": "evt-1",
            "time": "2026-03-02T10:15:00Z",
            "tags": {"team": "a", "env": "prod"},
        }
    )
    assert not batch
    assert events == [
        Event("gb", 12_500_000, "evt-1", H10 + 900.0, (("env", "prod"), ("team", "a")))
    ]


def test_a_json_number_keeps_the_digits_the_app_wrote() -> None:
    """`0.1` is exactly 100000 micro-units, not the nearest binary float."""
    result = parsed(
        None,
        raw=b'{"events": [{"dimension": "gb", "quantity": 0.1}, '
        b'{"dimension": "jobs", "quantity": 7}]}',
    )
    assert isinstance(result, tuple)
    assert [e.units for e in result[0]] == [100_000, 7_000_000]
    assert result[1]


@pytest.mark.parametrize(
    ("document", "field", "words"),
    [
        ({"quantity": "1"}, "dimension", "required"),
        ({"dimension": "tb", "quantity": "1"}, "dimension", "not one of"),
        ({"dimension": 5, "quantity": "1"}, "dimension", "not one of"),
        ({"dimension": "gb"}, "quantity", "required"),
        ({"dimension": "gb", "quantity": "-1"}, "quantity", "non-negative"),
        ({"dimension": "gb", "quantity": "1.0000001"}, "quantity", "6 decimals"),
        ({"dimension": "gb", "quantity": "12345678901"}, "quantity", "10 integer digits"),
        ({"dimension": "gb", "quantity": "1e3"}, "quantity", "decimal"),
        ({"dimension": "gb", "quantity": True}, "quantity", "decimal"),
        ({"dimension": "gb", "quantity": "1", "id": ""}, "id", "1-128"),
        ({"dimension": "gb", "quantity": "1", "id": "x" * 129}, "id", "1-128"),
        ({"dimension": "gb", "quantity": "1", "id": "a\nb"}, "id", "printable"),
        ({"dimension": "gb", "quantity": "1", "id": 7}, "id", "string"),
        ({"dimension": "gb", "quantity": "1", "time": "2026-03-02T10:15:00"}, "time", "zone"),
        ({"dimension": "gb", "quantity": "1", "time": "yesterday"}, "time", "RFC 3339"),
        ({"dimension": "gb", "quantity": "1", "time": "2026-03-02T10:36:00Z"}, "time", "future"),
        ({"dimension": "gb", "quantity": "1", "time": -5}, "time", "epoch"),
        ({"dimension": "gb", "quantity": "1", "tags": ["team"]}, "tags", "object"),
        ({"dimension": "gb", "quantity": "1", "tags": {"owner": "x"}}, "tags.owner", "not allowed"),
        ({"dimension": "gb", "quantity": "1", "tags": {"team": "a!"}}, "tags.team", "letters"),
        ({"dimension": "gb", "quantity": "1", "tags": {"team": ""}}, "tags.team", "1-256"),
        ({"dimension": "gb", "quantity": "1", "tags": {"team": "v" * 257}}, "tags.team", "1-256"),
        ({"dimension": "gb", "quantity": "1", "tags": {"team": 3}}, "tags.team", "tag value"),
        ({"dimension": "gb", "quantity": "1", "quantiy": "2"}, "quantiy", "unknown field"),
        ([1, 2], "body", "JSON object"),
        ({"events": {"dimension": "gb"}}, "events", "list"),
        ({"events": [], "extra": 1}, "extra", "unknown field"),
        (
            {"events": [{"dimension": "gb", "quantity": "1"}, {"dimension": "gb"}]},
            "events[1].quantity",
            "required",
        ),
        ({"events": [{"dimension": "gb", "quantity": "1"}] * (MAX_BATCH + 1)}, "events", "at most"),
    ],
    ids=lambda v: v if isinstance(v, str) and not v.startswith("{") else None,
)
def test_a_bad_field_is_named(document: Any, field: str, words: str) -> None:
    """The problem names the offending field and says what is expected."""
    result = parsed(document)
    assert isinstance(result, Problem)
    assert result.field == field
    assert words in result.detail


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"\xff\xfe",
        b'{"dimension": "gb", "quantity": NaN}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["empty", "truncated", "not-utf8", "nan", "deeply-nested"],
)
def test_a_body_that_is_not_json_is_refused_not_raised(raw: bytes) -> None:
    """Garbage, NaN and a nesting bomb are one 400 naming the body."""
    result = parsed(None, raw=raw)
    assert isinstance(result, Problem)
    assert result.field == "body"


def test_an_empty_batch_is_accepted_as_nothing() -> None:
    """`{"events": []}` is a valid batch of no events."""
    assert parsed({"events": []}) == ([], True)


def test_time_may_be_epoch_seconds_and_a_little_ahead() -> None:
    """Epoch seconds work, and up to 5 minutes of skew ahead of the sidecar is tolerated."""
    result = parsed({"dimension": "jobs", "quantity": "1", "time": NOW + 299})
    assert isinstance(result, tuple)
    assert result[0][0].time == NOW + 299
