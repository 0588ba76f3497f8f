"""The in-process API other parts rely on: start, register, meter, introspect."""

from __future__ import annotations

from datetime import UTC, datetime

from entitlement_sidecar.emulator import Emulator


def test_register_and_meter_round_trip(emulator: Emulator) -> None:
    """A boto3 client gets a token and a record id, and both show up in the records."""
    client = emulator.client(access_key_id="AKIDPOD1")
    token = client.register_usage(ProductCode="prod-paid", PublicKeyVersion=1, Nonce="n1")
    assert token["Signature"].count(".") == 2
    reply = client.meter_usage(
        ProductCode="prod-paid",
        Timestamp=datetime.now(UTC),
        UsageDimension="users",
        UsageQuantity=3,
    )
    records = emulator.records()
    assert [reply["MeteringRecordId"]] == [r["metering_record_id"] for r in records["meter_usage"]]
    assert [r["nonce"] for r in records["registrations"]] == ["n1"]
    assert (emulator.public_key_dir / "1.pem").read_bytes().startswith(b"-----BEGIN PUBLIC KEY")
