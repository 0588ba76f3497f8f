"""Injected faults, token-bucket throttling, and correctness under many concurrent clients."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.testing import http_get
from tests.emulator.helpers import PAID, aws_error, error_code, loose_client, post, recent

PRODUCTS = {PAID: {"dimensions": ["users", "gb"]}}


def register(emu: Emulator, caller: str = "AKIDPOD1") -> str:
    """One RegisterUsage; the outcome as 'ok' or the error code."""
    try:
        emu.client(access_key_id=caller).register_usage(ProductCode=PAID, PublicKeyVersion=1)
    except ClientError as exc:
        return error_code(exc)
    return "ok"


def test_internal_error_fault_counts_down(emulator: Emulator) -> None:
    """`internal_error` with count 2 fails two calls with a 500, then calls succeed."""
    emulator.set_scenario(
        {
            "products": PRODUCTS,
            "faults": [{"op": "RegisterUsage", "kind": "internal_error", "count": 2}],
        }
    )
    outcomes = [register(emulator) for _ in range(3)]
    assert outcomes == ["InternalServiceErrorException"] * 2 + ["ok"]


def test_throttle_fault(emulator: Emulator) -> None:
    """`throttle` answers ThrottlingException; other operations are unaffected."""
    emulator.set_scenario(
        {"products": PRODUCTS, "faults": [{"op": "RegisterUsage", "kind": "throttle"}]}
    )
    assert register(emulator) == "ThrottlingException"
    emulator.client().meter_usage(ProductCode=PAID, Timestamp=recent(), UsageDimension="users")


def test_http_503_fault_is_not_json(emulator: Emulator) -> None:
    """`http_503` answers a plain 503 page like a load balancer."""
    emulator.set_scenario({"products": PRODUCTS, "faults": [{"kind": "http_503", "count": 1}]})
    with pytest.raises(ClientError) as caught:
        emulator.client().register_usage(ProductCode=PAID, PublicKeyVersion=1)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert register(emulator) == "ok"


def test_drop_fault_closes_the_connection(emulator: Emulator) -> None:
    """`drop` closes the connection without an answer."""
    emulator.set_scenario({"products": PRODUCTS, "faults": [{"kind": "drop", "count": 1}]})
    with pytest.raises(ConnectionClosedError):
        emulator.client().register_usage(ProductCode=PAID, PublicKeyVersion=1)
    assert register(emulator) == "ok"


def test_delay_fault_outlasts_a_short_read_timeout(emulator: Emulator) -> None:
    """`delay` holds the answer back, so a client with a shorter read timeout gives up."""
    emulator.set_scenario(
        {"products": PRODUCTS, "faults": [{"kind": "delay", "seconds": 2, "count": 1}]}
    )
    client = loose_client(emulator, read_timeout=0.2, connect_timeout=2)
    with pytest.raises(ReadTimeoutError):  # an unknown product: the late answer changes nothing
        client.register_usage(ProductCode="prod-unknown", PublicKeyVersion=1)
    assert register(emulator) == "ok"


def test_delay_then_error(emulator: Emulator) -> None:
    """A delay followed by an error fault: the request waits, then fails with the error."""
    faults: list[dict[str, Any]] = [
        {"kind": "delay", "seconds": 0.05, "count": 1},
        {"kind": "error", "code": "DisabledApiException", "count": 1},
    ]
    emulator.set_scenario({"products": PRODUCTS, "faults": faults})
    assert register(emulator) == "DisabledApiException"
    assert register(emulator) == "ok"


def test_reset_restores_fault_counters(emulator: Emulator) -> None:
    """After POST reset a counted fault fires again."""
    emulator.set_scenario({"products": PRODUCTS, "faults": [{"kind": "throttle", "count": 1}]})
    assert [register(emulator), register(emulator)] == ["ThrottlingException", "ok"]
    emulator.reset()
    assert register(emulator) == "ThrottlingException"


def test_quick_calls_over_the_quota_are_throttled(emulator: Emulator) -> None:
    """30 concurrent RegisterUsage at 5/s: some are throttled, the rest recorded exactly."""
    emulator.set_scenario({"products": PRODUCTS, "throttle": {"RegisterUsage": 5}})
    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(lambda i: register(emulator, f"AKIDPOD{i}"), range(30)))
    assert set(outcomes) <= {"ok", "ThrottlingException"}
    assert "ThrottlingException" in outcomes
    records = emulator.records()
    assert len(records["registrations"]) == outcomes.count("ok")
    assert records["requests"]["RegisterUsage"] == 30


@pytest.mark.parametrize(
    "throttle",
    [{"RegisterUsage": 0}, {"RegisterUsage": None}, None],
    ids=["zero", "null", "all-off"],
)
def test_throttling_can_be_disabled(emulator: Emulator, throttle: Any) -> None:
    """A rate of 0 or null (or `throttle: null`) turns the bucket off."""
    emulator.set_scenario({"products": PRODUCTS, "throttle": throttle})
    outcomes = [register(emulator) for _ in range(12)]
    assert outcomes == ["ok"] * 12


def test_buckets_are_per_account(emulator: Emulator) -> None:
    """Callers of different accounts do not share a bucket."""
    emulator.set_scenario(
        {
            "products": PRODUCTS,
            "throttle": {"RegisterUsage": 0.001},  # a burst of one, then one per 1000 s
            "caller_accounts": {"AKIDOTHER": "210987654321"},
        }
    )
    assert [register(emulator, "AKIDPOD1"), register(emulator, "AKIDPOD1")] == [
        "ok",
        "ThrottlingException",
    ]
    assert register(emulator, "AKIDOTHER") == "ok"


def test_many_pods_metering_at_once_get_exactly_one_record_each(emulator: Emulator) -> None:
    """40 pods sending their hour 3 times each, concurrently: 40 records, each id stable."""
    emulator.set_scenario({"products": PRODUCTS, "throttle": None})
    when = recent()

    def send(i: int) -> tuple[str, str]:
        caller = f"AKIDPOD{i % 40}"
        client = emulator.client(access_key_id=caller)
        reply = client.meter_usage(
            ProductCode=PAID, Timestamp=when, UsageDimension="users", UsageQuantity=i % 40
        )
        return caller, reply["MeteringRecordId"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        pairs = list(pool.map(send, range(120)))
    ids_by_caller: dict[str, set[str]] = {}
    for caller, record_id in pairs:
        ids_by_caller.setdefault(caller, set()).add(record_id)
    assert all(len(ids) == 1 for ids in ids_by_caller.values())
    records = emulator.records()["meter_usage"]
    assert sorted(r["caller"] for r in records) == sorted(ids_by_caller)
    assert {r["metering_record_id"] for r in records} == set().union(*ids_by_caller.values())


def test_meter_usage_throttling_default_quota(emulator: Emulator) -> None:
    """With the AWS default quota (10/s) a burst of 25 calls sees ThrottlingException."""
    client = emulator.client()
    outcomes = []
    for _ in range(25):
        try:
            client.meter_usage(
                ProductCode=PAID, Timestamp=recent(), UsageDimension="gb", UsageQuantity=0
            )
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(error_code(exc))
    assert "ThrottlingException" in outcomes


def test_aws_error_helper_sees_codes(emulator: Emulator) -> None:
    """A not-entitled RegisterUsage is a CustomerNotEntitledException on the wire."""
    with aws_error("CustomerNotEntitledException"):
        emulator.client().register_usage(ProductCode="prod-lapsed", PublicKeyVersion=1)


def test_a_held_request_does_not_block_others(emulator: Emulator) -> None:
    """While one request is parked by a `hold` fault, the state and other requests stay usable."""
    emulator.set_scenario(
        {"products": PRODUCTS, "faults": [{"op": "RegisterUsage", "kind": "hold", "count": 1}]}
    )
    slow = loose_client(emulator, read_timeout=30)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(slow.register_usage, ProductCode="prod-unknown", PublicKeyVersion=1)
        assert emulator.wait_held() == 1
        reply = emulator.client().meter_usage(
            ProductCode=PAID, Timestamp=recent(), UsageDimension="users", UsageQuantity=1
        )
        assert reply["MeteringRecordId"]
        assert not pending.done()
        assert emulator.release() == 1
        with aws_error("InvalidProductCodeException"):  # the request went on after its release
            pending.result()


@pytest.mark.parametrize(
    "let_go",
    [Emulator.release, Emulator.reset, lambda emu: emu.set_scenario({"products": PRODUCTS})],
    ids=["release", "reset", "scenario-swap"],
)
def test_release_reset_and_swap_let_held_requests_go(emulator: Emulator, let_go: Any) -> None:
    """A held request goes on after release(), a reset or a scenario swap."""
    emulator.set_scenario({"products": PRODUCTS, "faults": [{"kind": "hold", "count": 1}]})
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(register, emulator)
        emulator.wait_held()
        let_go(emulator)
        assert pending.result(timeout=30) == "ok"
    assert emulator.service.holds.held == 0


def test_a_hold_with_seconds_ends_by_itself(emulator: Emulator) -> None:
    """`seconds` caps a hold: nobody releases it, the request still gets its answer."""
    emulator.set_scenario(
        {"products": PRODUCTS, "faults": [{"kind": "hold", "seconds": 0.05, "count": 1}]}
    )
    assert register(emulator) == "ok"


def test_wait_held_times_out_when_nothing_is_held(emulator: Emulator) -> None:
    """wait_held names what it saw instead of blocking forever."""
    with pytest.raises(TimeoutError, match="0 request"):
        emulator.wait_held(timeout=0.01)


def test_held_and_release_over_http(emulator: Emulator) -> None:
    """GET /_emulator/held counts parked requests; POST /_emulator/release lets them go."""
    emulator.set_scenario({"products": PRODUCTS, "faults": [{"kind": "hold", "count": 1}]})
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(register, emulator)
        emulator.wait_held()
        assert http_get(emulator.url + "/_emulator/held") == (200, '{"held": 1}')
        released = post(emulator, b"", path="/_emulator/release")
        assert released == (200, {"released": 1})
        assert pending.result(timeout=30) == "ok"
    assert http_get(emulator.url + "/_emulator/held") == (200, '{"held": 0}')


def test_a_throttled_call_takes_no_token() -> None:
    """Calls refused by an empty bucket do not delay the next token: 5/s refills one per 0.2 s
    however many throttled calls came in between (the assumption bench_herd.py states)."""
    from entitlement_sidecar.emulator.state import TokenBucket

    bucket = TokenBucket(rate=5.0, tokens=5.0, last=0.0)
    assert all(bucket.take(0.0) for _ in range(5))
    assert not any(bucket.take(0.1) for _ in range(50))
    assert bucket.take(0.2)
    assert not bucket.take(0.2)
