"""What the app may post to `/v1/usage`: one event, or `{"events": [...]}`, checked field by field.

An event is `{"dimension", "quantity", "id"?, "time"?, "tags"?}`. The dimension must be one of
`ENTITLEMENT_USAGE_DIMENSIONS`; the quantity a non-negative decimal in AWS's form (a JSON string
or number, read from its literal text so `0.1` stays exactly 0.1); the id (optional, 1-128
printable characters) deduplicates retries; the time (optional, RFC 3339 with a zone or epoch
seconds) picks the hour, and may not be more than 5 minutes ahead; tags (optional) become
UsageAllocations, their keys limited to `ENTITLEMENT_USAGE_TAG_KEYS`, keys and values to AWS's
rules. A batch is all or nothing: the first bad field refuses it with a `Problem` naming it
(`events[3].quantity`). Pure: no I/O, no clock of its own.
"""

from __future__ import annotations

import json
import re

from entitlement_sidecar.aws import rules
from entitlement_sidecar.record import Record
from entitlement_sidecar.sidecar.usage.units import MAX_UNITS, parse_quantity

MAX_ID = 128
MAX_BATCH = 1000
FUTURE_SKEW = 300.0
FIELDS = ("dimension", "quantity", "id", "time", "tags")
_TAG_KEY = re.compile(rules.TAG_KEY)
_TAG_VALUE = re.compile(rules.TAG_VALUE)

Tags = tuple[tuple[str, str], ...]


class Number(str):
    """The literal text of a JSON number (so quantities keep every digit the app wrote)."""

    __slots__ = ()


class Problem(Record):
    """Why a request is refused: the offending field (`events[2].tags.team`) and one line."""

    __slots__ = ("detail", "field")

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        self.detail = detail


class Event(Record):
    """One validated usage event; `time` None means "when it arrives"."""

    __slots__ = ("dimension", "id", "tags", "time", "units")

    def __init__(
        self, dimension: str, units: int, id: str | None, time: float | None, tags: Tags
    ) -> None:
        self.dimension = dimension
        self.units = units
        self.id = id
        self.time = time
        self.tags = tags


class Rules(Record):
    """What this sidecar accepts: its dimensions and tag keys."""

    __slots__ = ("dimensions", "tag_keys")

    def __init__(self, dimensions: frozenset[str], tag_keys: frozenset[str]) -> None:
        self.dimensions = dimensions
        self.tag_keys = tag_keys


class Refused(Exception):
    """Raised inside parsing with the `Problem` that refuses the request."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.problem = Problem(field, detail)


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not a number AWS accepts")


def decode(body: bytes) -> object:
    """The JSON document in `body`, numbers kept as their literal text; `Refused` otherwise."""
    try:
        return json.loads(
            body.decode("utf-8"),
            parse_float=Number,
            parse_int=Number,
            parse_constant=_no_constants,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Refused("body", f"not a JSON document ({type(exc).__name__})") from None


def parse(body: bytes, accepted: Rules, now: float) -> tuple[list[Event], bool] | Problem:
    """(the events of one request, whether it was a batch), or the `Problem` with its first
    bad field."""
    try:
        document = decode(body)
        if isinstance(document, dict) and "events" in document:
            extra = sorted(set(document) - {"events"})
            if extra:
                raise Refused(extra[0], "unknown field next to `events`")
            items = document["events"]
            if not isinstance(items, list):
                raise Refused("events", "must be a list of events")
            if len(items) > MAX_BATCH:
                raise Refused("events", f"at most {MAX_BATCH} events per request")
            batch = [event(item, accepted, now, f"events[{n}].") for n, item in enumerate(items)]
            return batch, True
        return [event(document, accepted, now, "")], False
    except Refused as refused:
        return refused.problem


def event(item: object, accepted: Rules, now: float, where: str = "") -> Event:
    """One event from its JSON form; `Refused` naming the first bad field."""
    if not isinstance(item, dict):
        raise Refused(where.rstrip(".") or "body", "must be a JSON object (an event)")
    for name in item:
        if name not in FIELDS:
            raise Refused(f"{where}{name}", f"unknown field (expected one of {', '.join(FIELDS)})")
    return Event(
        _dimension(item.get("dimension"), accepted, where + "dimension"),
        _units(item.get("quantity"), where + "quantity"),
        _id(item.get("id"), where + "id"),
        _time(item.get("time"), now, where + "time"),
        _tags(item.get("tags"), accepted, where + "tags"),
    )


def _text(value: object) -> bool:
    return isinstance(value, str) and not isinstance(value, Number)


def _dimension(value: object, accepted: Rules, field: str) -> str:
    if value is None:
        raise Refused(field, "is required")
    if not _text(value) or value not in accepted.dimensions:
        names = ", ".join(sorted(accepted.dimensions))
        raise Refused(field, f"{_show(value)} is not one of this product's dimensions: {names}")
    assert isinstance(value, str)
    return value


def _units(value: object, field: str) -> int:
    if value is None:
        raise Refused(field, "is required")
    units = parse_quantity(value) if isinstance(value, str) else None
    if units is None or units > MAX_UNITS:
        raise Refused(
            field,
            f"{_show(value)} is not a non-negative decimal with at most 10 integer digits and "
            f'{rules.QUANTITY_DECIMALS} decimals (e.g. "12.5")',
        )
    return units


def _id(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not _text(value) or not 1 <= len(str(value)) <= MAX_ID or not str(value).isprintable():
        raise Refused(field, f"must be a string of 1-{MAX_ID} printable characters")
    return str(value)


def _time(value: object, now: float, field: str) -> float | None:
    if value is None:
        return None
    moment: float | None = None
    if isinstance(value, Number):
        try:
            moment = float(value)
        except ValueError:
            moment = None
    elif isinstance(value, str):
        moment = _rfc3339(value)
    if moment is None or moment != moment or moment < 0 or moment > 1e11:  # noqa: PLR0124 - NaN
        raise Refused(field, "must be RFC 3339 with a zone (2026-01-02T03:04:05Z) or epoch seconds")
    if moment > now + FUTURE_SKEW:
        raise Refused(field, f"is more than {int(FUTURE_SKEW)} s in the future")
    return moment


def _rfc3339(text: str) -> float | None:
    from datetime import datetime

    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return None if parsed.tzinfo is None else parsed.timestamp()


def _tags(value: object, accepted: Rules, field: str) -> Tags:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise Refused(field, "must be an object of tag key -> value")
    if len(value) > rules.TAGS_PER_ALLOCATION:
        raise Refused(field, f"at most {rules.TAGS_PER_ALLOCATION} tags per event")
    for key, tag in value.items():
        if key not in accepted.tag_keys:
            allowed = ", ".join(sorted(accepted.tag_keys)) or "none (ENTITLEMENT_USAGE_TAG_KEYS)"
            raise Refused(f"{field}.{key}", f"tag key not allowed; allowed: {allowed}")
        if not _text(tag) or not _TAG_VALUE.fullmatch(str(tag)):
            raise Refused(
                f"{field}.{key}",
                f"tag value must be 1-{rules.TAG_VALUE_MAX} letters, digits, spaces or +-=._:/@",
            )
    return tuple(sorted((str(k), str(v)) for k, v in value.items()))


def valid_tag_key(key: str) -> bool:
    """True when `key` is a tag key AWS accepts."""
    return _TAG_KEY.fullmatch(key) is not None


def _show(value: object) -> str:
    text = repr(str(value) if isinstance(value, Number) else value)
    return text if len(text) <= 60 else text[:57] + "..."
