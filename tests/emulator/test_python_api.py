"""The in-process API other parts rely on: start, register, meter, introspect."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from entitlement_sidecar.emulator import Emulator
from tests.emulator.helpers import verify


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


def test_unchanged_boto3_finds_it_through_the_endpoint_variable(emulator: Emulator) -> None:
    """A plain `boto3.client("meteringmarketplace")` in a subprocess reaches it via env only."""
    code = (
        "import boto3\n"
        "c = boto3.client('meteringmarketplace')\n"
        "print(c.register_usage(ProductCode='prod-paid', PublicKeyVersion=1)['Signature'])\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **emulator.env(access_key_id="AKIDSUBPROCESS")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.count(".") == 2
    assert [r["caller"] for r in emulator.records()["registrations"]] == ["AKIDSUBPROCESS"]


def test_stop_releases_the_port_and_own_key_dir() -> None:
    """Leaving the context closes the socket and removes a key directory it created."""
    with Emulator() as emu:
        url, keys = emu.url, emu.public_key_dir
        assert (keys / "1.pem").exists()
    assert not keys.exists()
    with pytest.raises(RuntimeError):
        _ = emu.url
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as probe:
        probe.bind((host, int(port)))


def test_readme_python_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The in-process example in the README's emulator section runs as printed."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("<!-- section:emulator -->", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(example, "README.md", "exec"), {})  # noqa: S102 (our own README)
    assert "'caller': 'AKIDPOD1'" in capsys.readouterr().out


def test_ipv6_loopback() -> None:
    """`host="::1"` serves on the IPv6 loopback with a bracketed URL."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        emu = Emulator(host="::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    try:
        assert emu.url.startswith("http://[::1]:")
        assert emu.client().register_usage(ProductCode="prod-paid", PublicKeyVersion=1)
    finally:
        emu.stop()


def test_reset_keeps_keys(emulator: Emulator) -> None:
    """After a reset the published keys are unchanged and still sign the tokens."""
    before = (emulator.public_key_dir / "1.pem").read_bytes()
    emulator.client().register_usage(ProductCode="prod-paid", PublicKeyVersion=1)
    emulator.reset()
    assert emulator.records()["registrations"] == []
    assert (emulator.public_key_dir / "1.pem").read_bytes() == before
    token = emulator.client().register_usage(ProductCode="prod-paid", PublicKeyVersion=1)
    verify(token["Signature"], before)
