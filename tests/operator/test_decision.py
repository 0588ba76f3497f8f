"""`decide()`: what the sender does with an hour, at the edges of its window, jitter, backoff."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from entitlement_sidecar.operator.decision import Action, decide
from entitlement_sidecar.operator.ledger import HourRecord, Phase

HOUR = datetime(2026, 11, 28, 10, tzinfo=UTC)
DEADLINE = datetime(2026, 11, 28, 16, 59, 59, tzinfo=UTC)  # 10:59:59 + 6 h
MARGIN = timedelta(minutes=10)
LAST_CHANCE = DEADLINE - MARGIN
US = timedelta(microseconds=1)
SEND_AFTER = datetime(2026, 11, 28, 11, 2, 30, tzinfo=UTC)
RETRY_AT = datetime(2026, 11, 28, 11, 20, tzinfo=UTC)
PENDING = HourRecord(
    name="users-2026112810-x",
    product_code="prod-paid",
    dimension="users",
    hour=HOUR,
    phase=Phase.PENDING,
    send_after=SEND_AFTER,
    owner="operator-a",
)


@pytest.mark.parametrize(
    ("record", "now", "action"),
    [
        (PENDING, LAST_CHANCE - US, Action.SEND),
        (PENDING, LAST_CHANCE, Action.EXPIRE),
        (PENDING, LAST_CHANCE + US, Action.EXPIRE),
        (replace(PENDING, phase=Phase.SENDING), LAST_CHANCE - US, Action.RESEND),
        (replace(PENDING, phase=Phase.SENDING), LAST_CHANCE, Action.EXPIRE),
        (replace(PENDING, next_attempt_at=LAST_CHANCE + US), LAST_CHANCE - US, Action.WAIT),
        (replace(PENDING, next_attempt_at=LAST_CHANCE + US), LAST_CHANCE, Action.EXPIRE),
        (PENDING, SEND_AFTER - US, Action.WAIT),
        (PENDING, SEND_AFTER, Action.SEND),
        (replace(PENDING, next_attempt_at=RETRY_AT), RETRY_AT - US, Action.WAIT),
        (replace(PENDING, next_attempt_at=RETRY_AT), RETRY_AT, Action.SEND),
        (replace(PENDING, send_after=None), HOUR + timedelta(hours=1), Action.SEND),
        (replace(PENDING, phase=Phase.ACCUMULATING), LAST_CHANCE + US, Action.LEAVE),
        *[
            (replace(PENDING, phase=phase), LAST_CHANCE + US, Action.LEAVE)
            for phase in (Phase.SENT, Phase.DRY_RUN, Phase.SKIPPED, Phase.FAILED, Phase.EXPIRED)
        ],
    ],
    ids=[
        "pending-1us-before-deadline-minus-margin-sends",
        "pending-at-deadline-minus-margin-expires",
        "pending-1us-after-deadline-minus-margin-expires",
        "sending-1us-before-deadline-minus-margin-resends",
        "sending-at-deadline-minus-margin-expires",
        "backoff-past-the-last-chance-waits-until-then",
        "backoff-past-the-last-chance-then-expires",
        "1us-before-send-after-waits",
        "at-send-after-sends",
        "1us-before-backoff-end-waits",
        "at-backoff-end-sends",
        "no-jitter-recorded-sends",
        "accumulating-is-left",
        "sent-is-left",
        "dry-run-is-left",
        "skipped-is-left",
        "failed-is-left",
        "expired-is-left",
    ],
)
def test_the_next_step_at_each_edge(record: HourRecord, now: datetime, action: Action) -> None:
    """Each row: the action for this record at this instant, one microsecond either side."""
    assert action == decide(record, now, MARGIN).action


def test_waiting_says_until_when() -> None:
    """A wait carries the instant from which the hour is due."""
    assert decide(PENDING, SEND_AFTER - US, MARGIN).until == SEND_AFTER


@pytest.mark.parametrize(
    ("phase", "start"),
    [
        (Phase.PENDING, "not sent within the 6-hour window (deadline 2026-11-28T16:59:59Z)"),
        (Phase.SENDING, "outcome unknown: operator-a crashed while sending"),
    ],
    ids=["never-claimed", "claimed-then-lost"],
)
def test_expiry_says_whether_the_hour_may_have_been_billed(phase: Phase, start: str) -> None:
    """An expired Pending hour was not sent; an expired Sending one may have been billed once."""
    assert decide(replace(PENDING, phase=phase), LAST_CHANCE, MARGIN).message.startswith(start)


CLAIMED = datetime(2026, 11, 28, 11, 3, tzinfo=UTC)
GRACE = timedelta(minutes=5)
SENDING = replace(PENDING, phase=Phase.SENDING, owner="operator-a", claimed_at=CLAIMED)


@pytest.mark.parametrize(
    ("me", "now", "action"),
    [
        ("operator-b", CLAIMED + GRACE - US, Action.WAIT),
        ("operator-b", CLAIMED + GRACE, Action.RESEND),
        ("operator-a", CLAIMED + US, Action.RESEND),
        ("operator-b", LAST_CHANCE, Action.EXPIRE),
    ],
    ids=[
        "another-claim-1us-before-its-grace-ends-waits",
        "another-claim-at-its-grace-end-is-resent",
        "own-claim-is-resent-at-once",
        "another-claim-at-deadline-minus-margin-expires",
    ],
)
def test_another_instances_claim_is_left_alone_for_the_grace(
    me: str, now: datetime, action: Action
) -> None:
    """A Sending hour claimed by another instance (maybe stalled, maybe dead) is resent only
    once the grace after its claim is over; one of our own is resent at once."""
    assert action == decide(SENDING, now, MARGIN, me=me, grace=GRACE).action
