"""The sender child's round: identical resends, allocations within AWS limits, healable refusals."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from entitlement_sidecar.aws import rules
from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.sidecar.settings import SidecarSettings
from entitlement_sidecar.sidecar.usage.events import Event
from entitlement_sidecar.sidecar.usage.journal import Journal
from entitlement_sidecar.sidecar.usage.sender import Round, allocations, client_token
from entitlement_sidecar.testing import ShiftedClock

from .conftest import H10, HOUR, PRODUCT

H11 = H10 + HOUR


def test_the_client_token_is_fixed_by_instance_dimension_and_hour() -> None:
    """64 hex characters (AWS's limit), the same for every send of one record, else different."""
    token = client_token(PRODUCT, "pod-1", "gb", H10)
    assert len(token) == rules.CLIENT_TOKEN_MAX
    assert token == client_token(PRODUCT, "pod-1", "gb", H10)
    others = {
        client_token(PRODUCT, "pod-2", "gb", H10),
        client_token(PRODUCT, "pod-1", "jobs", H10),
        client_token(PRODUCT, "pod-1", "gb", H11),
        client_token("prod-other", "pod-1", "gb", H10),
    }
    assert token not in others
    assert len(others) == 4


def test_more_than_2500_tag_sets_keep_the_largest_and_bill_the_rest_untagged() -> None:
    """2,499 largest tag sets keep their tags; the rest joins the untagged share; sum exact."""
    raw = [[[["team", f"t{n:04d}"]], n + 1] for n in range(3000)] + [[[], 7]]
    result = allocations(raw)
    assert len(result) == rules.ALLOCATIONS_PER_REQUEST
    assert sum(a.quantity for a in result) == Decimal(sum(n + 1 for n in range(3000)) + 7) / 10**6
    untagged = next(a for a in result if not a.tags)
    assert untagged.quantity == Decimal(sum(n + 1 for n in range(501)) + 7) / 10**6
    assert allocations(raw) == result  # deterministic: a resend is identical
    assert allocations(list(reversed(raw))) == result


@pytest.fixture
def sealed_journal(tmp_path: Path) -> Path:
    """A status dir whose journal holds hour 10 sealed: gb 1.5 (tagged and not), jobs 2."""
    journal = Journal(tmp_path, 1 << 20, H10 + 60)
    journal.append(
        [
            Event("gb", 1_000_000, None, None, (("team", "a"),)),
            Event("gb", 500_000, None, None, ()),
            Event("jobs", 2_000_000, None, None, ()),
        ],
        H10 + 60,
    )
    journal.compact({H10: H11 - 1})
    journal.close()
    return tmp_path


def settings(status_dir: Path) -> SidecarSettings:
    return SidecarSettings(product_code=PRODUCT, status_dir=status_dir)


def run_round(
    status_dir: Path, client: Any, now: float, instance: str = "pod-1"
) -> list[dict[str, Any]]:
    out = io.StringIO()
    Round(settings(status_dir), now, 10.0, out).run(client, instance)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_resend_of_an_unrecorded_round_gets_the_same_records(
    sealed_journal: Path, tmp_path: Path
) -> None:
    """Two rounds over the same sealed hour (the first's results lost): same ids, one record."""
    clock = ShiftedClock(tmp_path / "clock")
    clock.jump_to(H11 + 120)
    with Emulator({"products": {PRODUCT: {"dimensions": ["gb", "jobs"]}}}, now=clock.now) as emu:
        client = emu.client(access_key_id="AKIDPOD1")
        first = run_round(sealed_journal, client, clock.time())
        second = run_round(sealed_journal, client, clock.time())
        records = emu.records()["meter_usage"]
    assert [(r["d"], r["r"]) for r in first] == [("gb", "Sent"), ("jobs", "Sent")]
    assert [r["id"] for r in second] == [r["id"] for r in first]
    assert len(records) == 2
    gb = next(r for r in records if r["dimension"] == "gb")
    assert gb["allocations"] == [
        {"quantity": "0.5", "tags": {}},
        {"quantity": "1", "tags": {"team": "a"}},
    ]


def test_a_refusal_of_our_own_permissions_is_retried_not_failed(sealed_journal: Path) -> None:
    """AccessDeniedException (a role without aws-marketplace:MeterUsage) is transient for us.

    The emulator does not model IAM, so this one answer comes from botocore's Stubber.
    """
    from entitlement_sidecar.aws.metering import make_client

    client = make_client("us-east-1")
    with Stubber(client) as stub:
        for _ in range(2):
            stub.add_client_error("meter_usage", "AccessDeniedException", "not allowed", 400)
        results = run_round(sealed_journal, client, H11 + 120)
    assert [(r["d"], r["r"], r["c"]) for r in results] == [
        ("gb", "Transient", "AccessDeniedException"),
        ("jobs", "Transient", "AccessDeniedException"),
    ]


def test_an_hour_past_its_window_is_reported_expired_without_a_call(sealed_journal: Path) -> None:
    """No call starts within 30 s of the window's end: Expired, and the client is never used."""
    results = run_round(sealed_journal, client=None, now=H11 - 1 + 6 * HOUR - 30)
    assert [(r["d"], r["r"]) for r in results] == [("gb", "Expired"), ("jobs", "Expired")]


def test_a_fleet_sending_at_once_is_throttled_and_each_pod_billed_once(tmp_path: Path) -> None:
    """Twelve pods' rounds in the same second against a 6 calls/s quota: the throttled calls
    are retried inside the round and every pod's two records land, once each."""
    import threading

    clock = ShiftedClock(tmp_path / "clock")
    clock.jump_to(H11 + 120)
    pods = []
    for n in range(12):
        status_dir = tmp_path / f"pod-{n}"
        status_dir.mkdir()
        journal = Journal(status_dir, 1 << 20, H10 + 60)
        journal.append(
            [Event("gb", 1_000_000 + n, None, None, ()), Event("jobs", 1, None, None, ())], H10 + 60
        )
        journal.compact({H10: H11 - 1})
        journal.close()
        pods.append(status_dir)
    scenario = {
        "products": {PRODUCT: {"dimensions": ["gb", "jobs"]}},
        "throttle": {"MeterUsage": 6},
    }
    results: dict[int, list[dict[str, Any]]] = {}
    with Emulator(scenario, now=clock.now) as emu:
        clients = [emu.client(access_key_id=f"AKIDFLEET{n}") for n in range(12)]

        def pod(n: int) -> None:
            results[n] = run_round(pods[n], clients[n], clock.time(), f"pod-{n}")

        threads = [threading.Thread(target=pod, args=(n,)) for n in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        records = emu.records()["meter_usage"]
    assert sorted((r["caller"], r["dimension"]) for r in records) == sorted(
        (f"AKIDFLEET{n}", d) for n in range(12) for d in ("gb", "jobs")
    )
    outcomes = [r for lines in results.values() for r in lines]
    assert sum(r["r"] == "Sent" for r in outcomes) == 24
    assert any(r.get("c") == "ThrottlingException" for r in outcomes)  # the quota did bite
