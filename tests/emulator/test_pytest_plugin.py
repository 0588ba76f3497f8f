"""The pytest plugin sellers get with the package: the `metering_emulator` fixture."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from entitlement_sidecar.emulator.harness import MeteringEmulator
from entitlement_sidecar.testing import clean_env

README = Path(__file__).parents[2] / "README.md"


def readme_example() -> str:
    """The example test printed in the README section for sellers."""
    section = README.read_text(encoding="utf-8").split("<!-- example:pytest-plugin -->", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def run_pytest(directory: Path) -> subprocess.CompletedProcess[str]:
    """A fresh pytest in `directory`: no conftest of ours, the plugin comes from the entry point."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(directory)],
        cwd=directory,
        env=clean_env(AWS_EC2_METADATA_DISABLED="true"),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_the_readme_example_passes_in_a_sellers_project(tmp_path: Path) -> None:
    """The README's example, saved as a seller's test file, passes with nothing but the package
    installed; scenario files next to the test and a conftest override work the same way."""
    (tmp_path / "test_readme_example.py").write_text(readme_example())
    (tmp_path / "scenario.yaml").write_text("products: {prod-file: {dimensions: [seats]}}\n")
    (tmp_path / "test_scenario_sources.py").write_text(
        "import pytest\n\n\n"
        '@pytest.mark.metering_scenario("scenario.yaml")\n'
        "def test_marker_file(metering_emulator):\n"
        '    reply = metering_emulator.client().register_usage(ProductCode="prod-file", '
        "PublicKeyVersion=1)\n"
        '    assert reply["Signature"]\n\n\n'
        "def test_default_scenario(metering_emulator):\n"
        '    assert metering_emulator.client().register_usage(ProductCode="prod-paid", '
        'PublicKeyVersion=1)["Signature"]\n'
    )
    override = tmp_path / "overridden"
    override.mkdir()
    (override / "conftest.py").write_text(
        "import pytest\n\n\n"
        "@pytest.fixture\n"
        "def metering_scenario():\n"
        '    return {"products": {"prod-dir": {"entitled": False}}}\n'
    )
    (override / "test_directory_scenario.py").write_text(
        "def test_directory_wide_scenario(metering_emulator):\n"
        "    client = metering_emulator.client()\n"
        "    try:\n"
        '        client.register_usage(ProductCode="prod-dir", PublicKeyVersion=1)\n'
        "    except client.exceptions.CustomerNotEntitledException:\n"
        "        return\n"
        '    raise AssertionError("prod-dir should not be entitled")\n'
    )
    proc = run_pytest(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout


def test_the_fixture_sets_nothing_global(metering_emulator: MeteringEmulator) -> None:
    """No environment variable and no default boto3 session are touched."""
    import boto3

    before = dict(os.environ)
    metering_emulator.client().register_usage(ProductCode="prod-paid", PublicKeyVersion=1)
    env = metering_emulator.env("AKIDPOD7")
    assert env["AWS_ENDPOINT_URL_MARKETPLACE_METERING"] == metering_emulator.url
    assert dict(os.environ) == before
    assert boto3.DEFAULT_SESSION is None


@pytest.mark.metering_scenario({"products": {"prod-x": {"dimensions": ["users"]}}})
def test_the_marker_sets_the_scenario(metering_emulator: MeteringEmulator) -> None:
    """A mapping in the marker is the scenario; the public key directory holds the key ring."""
    assert set(metering_emulator.service.scenario.products) == {"prod-x"}
    assert (metering_emulator.public_key_dir / "1.pem").read_bytes().startswith(b"-----BEGIN")
    assert metering_emulator.region == "us-east-1"


def test_the_clock_moves_and_keeps_running(metering_emulator: MeteringEmulator) -> None:
    """advance() and set_time() move the emulator clock; MeterUsage's window follows it."""
    start = metering_emulator.now()
    metering_emulator.advance(hours=1, minutes=30)
    assert timedelta(minutes=89) < metering_emulator.now() - start < timedelta(minutes=91)
    moment = datetime(2030, 1, 31, 23, 59, tzinfo=UTC)
    metering_emulator.set_time(moment)
    assert timedelta(0) <= metering_emulator.now() - moment < timedelta(minutes=1)
    reply = metering_emulator.client().meter_usage(
        ProductCode="prod-paid", Timestamp=moment - timedelta(hours=5), UsageDimension="users"
    )
    assert (
        metering_emulator.records()["meter_usage"][0]["metering_record_id"]
        == reply["MeteringRecordId"]
    )
    with pytest.raises(ValueError, match="aware"):
        metering_emulator.set_time(datetime(2030, 1, 1))


def test_each_test_gets_its_own_port() -> None:
    """Two fixtures side by side listen on different free ports and stop cleanly."""
    with MeteringEmulator() as first, MeteringEmulator() as second:
        assert first.url != second.url


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    """Every pytest run of an installed package loads the plugin: it imports only pytest."""
    code = (
        "import sys, entitlement_sidecar.pytest_plugin\n"
        "heavy = {'boto3', 'botocore', 'pydantic', 'cryptography', 'yaml', 'http.server'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.strip() == "[]"
