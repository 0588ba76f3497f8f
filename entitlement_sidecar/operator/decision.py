"""What to do now with one ledger hour: a pure function of the record, the clock and the margin.

The sender reads an hour, asks `decide()`, and only carries the answer out:

    LEAVE   not the sender's business (still Accumulating, or already in a final phase)
    WAIT    Pending, but its jitter (`sendAfter`) or backoff (`nextAttemptAt`) is not over
    SEND    Pending and due: claim it and call MeterUsage
    RESEND  found Sending: a claim whose outcome was never recorded; send the identical request
            (at once if the claim is ours; another instance's claim only `grace` after it was
            made, so an instance that stalled mid-send can still record its own outcome)
    EXPIRE  still unsent at the window's deadline minus the safety margin: Expired, never sent

The deadline test comes first and is inclusive (`now >= deadline - margin` expires), so a hour is
never sent in the last `margin` of its window, whatever its other fields say.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from entitlement_sidecar.operator import ledger
from entitlement_sidecar.operator.ledger import UNSENT, HourRecord, Phase


class Action(StrEnum):
    """The sender's next step for one hour (see the module docstring)."""

    LEAVE = "leave"
    WAIT = "wait"
    SEND = "send"
    RESEND = "resend"
    EXPIRE = "expire"


@dataclass(frozen=True)
class Decision:
    """An action, and for EXPIRE the message recorded with it, for WAIT the moment to look again."""

    action: Action
    message: str = ""
    until: datetime | None = None


def decide(
    record: HourRecord,
    now: datetime,
    margin: timedelta,
    *,
    me: str = "",
    grace: timedelta = timedelta(0),
) -> Decision:
    """The next step for `record` at `now`, stopping `margin` before the 6-hour window ends;
    `me` is the deciding instance, `grace` how long another instance's claim is left alone."""
    if record.phase not in UNSENT:
        return Decision(Action.LEAVE)
    if now >= record.deadline - margin:
        return Decision(Action.EXPIRE, _expiry_message(record))
    if record.phase is Phase.SENDING:
        settled_by = record.claimed_at + grace if record.claimed_at else None
        if record.owner != me and settled_by is not None and now < settled_by:
            return Decision(Action.WAIT, until=settled_by)
        return Decision(Action.RESEND)
    due = max(
        (t for t in (record.send_after, record.next_attempt_at) if t is not None), default=None
    )
    if due is not None and now < due:
        return Decision(Action.WAIT, until=due)
    return Decision(Action.SEND)


def _expiry_message(record: HourRecord) -> str:
    deadline = ledger.to_time(record.deadline)
    if record.phase is Phase.SENDING:
        return (
            f"outcome unknown: {record.owner} crashed while sending and the 6-hour window"
            f" (deadline {deadline}) closed before a resend; it may have been billed once:"
            " check the seller reports"
        )
    return f"not sent within the 6-hour window (deadline {deadline})"
