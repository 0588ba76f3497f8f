"""`entitlement-sidecar emulator` as a real process: address line, key dir, signals, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.emulator.helpers import error_code


@contextmanager
def running(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start the emulator process and yield it with its URL from the first stdout line."""
    command = ["emulator", "--host", "127.0.0.1", "--port", "0", *args]
    process = subprocess.Popen(
        [sys.executable, "-m", "entitlement_sidecar", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:"), line
        yield process, line.removeprefix("listening on ")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def client(url: str) -> object:
    """An unchanged boto3 client pointed at `url` the way users do it."""
    return boto3.session.Session().client(
        "meteringmarketplace",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="AKIDCLI",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}),
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serves_then_exits_zero_on_signal(tmp_path: Path, signum: int) -> None:
    """It serves RegisterUsage, writes the key ring, and exits 0 on SIGTERM/SIGINT."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text("key_versions: [1, 2]\nproducts: {prod-paid: {}}\n")
    keys = tmp_path / "keys"
    with running("--scenario", str(scenario), "--public-key-dir", str(keys)) as (process, url):
        reply = client(url).register_usage(ProductCode="prod-paid", PublicKeyVersion=2)  # type: ignore[attr-defined]
        assert reply["Signature"].count(".") == 2
        assert sorted(p.name for p in keys.iterdir()) == ["1.pem", "2.pem"]
        assert (keys / "2.pem").read_text().startswith("-----BEGIN PUBLIC KEY-----")
        process.send_signal(signum)
        assert process.wait(timeout=10) == 0
        assert process.stderr is not None
        assert "RegisterUsage AKIDCLI -> 200" in process.stderr.read()


def test_clock_offset_option(tmp_path: Path) -> None:
    """--clock-offset shifts the clock: one hour ago is in the future when set two hours back."""
    with running("--clock-offset", "-7200") as (process, _url):
        meter = client(_url)
        with pytest.raises(ClientError) as caught:
            meter.meter_usage(  # type: ignore[attr-defined]
                ProductCode="prod-paid",
                Timestamp=datetime.now(UTC) - timedelta(hours=1),
                UsageDimension="users",
                UsageQuantity=1,
            )
        assert error_code(caught.value) == "TimestampOutOfBoundsException"
        process.terminate()
        assert process.wait(timeout=10) == 0


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"products: {p: {error: Nope}}\n", "products.p.error"),
        (None, "No such file"),
        (b"\xff\xfe region: x\n", "not UTF-8"),
        (b"[" * 100_000, "nested too deeply"),
        (b"clock_offset_seconds: .nan\n", "clock_offset_seconds"),
    ],
    ids=["invalid-key", "missing-file", "not-utf8", "nested-too-deeply", "nan-clock-offset"],
)
def test_bad_scenario_exits_2_with_one_line(
    tmp_path: Path, content: bytes | None, fragment: str
) -> None:
    """A bad scenario file prints one line on stderr (no traceback) and exits 2."""
    path = tmp_path / "bad.yaml"
    if content is not None:
        path.write_bytes(content)
    result = subprocess.run(
        [sys.executable, "-m", "entitlement_sidecar", "emulator", "--scenario", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert result.stdout == ""


def test_unusable_key_dir_exits_2_with_one_line(tmp_path: Path) -> None:
    """A --public-key-dir that cannot be created is one line on stderr and exit code 2."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = subprocess.run(
        [sys.executable, "-m", "entitlement_sidecar", "emulator", "--public-key-dir", str(blocker)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    "option",
    [["--port", "99999"], ["--port", "-1"], ["--port", "x"], ["--clock-offset", "nan"]],
    ids=["port-too-large", "port-negative", "port-not-a-number", "nan-clock-offset"],
)
def test_bad_options_are_usage_errors(option: list[str]) -> None:
    """Out-of-range or non-finite options exit 2 with argparse's usage message, no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "entitlement_sidecar", "emulator", *option],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert "Traceback" not in result.stderr
    assert option[0] in result.stderr


@pytest.mark.parametrize(
    "problem", ["bad-scenario", "port-taken"], ids=["bad-scenario", "port-taken"]
)
def test_a_failed_start_leaves_no_temporary_directory(tmp_path: Path, problem: str) -> None:
    """Exit 2 on a bad scenario or a taken port removes the key directory it had created."""
    import socket

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("no_such_key: 1\n")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        args = (
            ["--scenario", str(scenario)]
            if problem == "bad-scenario"
            else ["--port", str(taken.getsockname()[1])]
        )
        result = subprocess.run(
            [sys.executable, "-m", "entitlement_sidecar", "emulator", *args],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "TMPDIR": str(scratch)},
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert list(scratch.iterdir()) == []


def test_the_python_api_leaves_no_temporary_directory_when_start_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`with Emulator(...)` on a taken port, or with a bad scenario, removes its key directory."""
    import socket
    import tempfile

    from entitlement_sidecar.emulator import Emulator
    from entitlement_sidecar.emulator.scenario import ScenarioError

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(ScenarioError):
        Emulator({"no_such_key": 1})
    with (
        socket.create_server(("127.0.0.1", 0)) as taken,
        pytest.raises(OSError, match="in use"),
        Emulator(port=taken.getsockname()[1]),
    ):
        pass
    assert list(tmp_path.iterdir()) == []
