"""Operator settings from the environment, the CLI's exit codes, and the README contract."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from entitlement_sidecar.errors import ConfigurationError
from entitlement_sidecar.operator.metrics import Metrics, MetricsServer
from entitlement_sidecar.operator.settings import OperatorSettings, env_name, load_settings

REPO = Path(__file__).resolve().parents[2]
REQUIRED = {
    "ENTITLEMENT_OPERATOR_PRODUCT_CODE": "prod-paid",
    "ENTITLEMENT_OPERATOR_DIMENSIONS": "users, gb",
    "POD_NAMESPACE": "billing",
}


def operator_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("<!-- section:operator -->")
    end = text.index("<!-- section:", start + 1)
    return text[start:end]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [*OperatorSettings.model_fields, "pod_namespace"]:
        monkeypatch.delenv(env_name(name), raising=False)
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_every_setting_is_documented_in_the_readme() -> None:
    """Each settings field appears, as its environment variable, in the README section."""
    section = operator_section()
    missing = [env_name(f) for f in OperatorSettings.model_fields if env_name(f) not in section]
    assert missing == []


def test_defaults_and_comma_lists(env: pytest.MonkeyPatch) -> None:
    """Comma lists are split and sorted; the ledger namespace defaults to POD_NAMESPACE."""
    env.setenv("ENTITLEMENT_OPERATOR_TAG_KEYS", "team,env")
    settings = load_settings()
    assert settings.dimensions == ("gb", "users")
    assert settings.tag_keys == ("env", "team")
    assert settings.ledger_namespace == "billing"
    assert (settings.namespaces, settings.send_zero, settings.dry_run) == ((), False, False)
    assert settings.metrics_port == 9842


@pytest.mark.parametrize(
    ("name", "value", "variable"),
    [
        ("ENTITLEMENT_OPERATOR_PRODUCT_CODE", "bad code!", "ENTITLEMENT_OPERATOR_PRODUCT_CODE"),
        ("ENTITLEMENT_OPERATOR_DIMENSIONS", " , ", "ENTITLEMENT_OPERATOR_DIMENSIONS"),
        ("ENTITLEMENT_OPERATOR_TAG_KEYS", "a,b,c,d", "ENTITLEMENT_OPERATOR_TAG_KEYS"),
        ("ENTITLEMENT_OPERATOR_TAG_KEYS", "namespace", "ENTITLEMENT_OPERATOR_TAG_KEYS"),
        ("ENTITLEMENT_OPERATOR_TAG_KEYS", "bad*key", "ENTITLEMENT_OPERATOR_TAG_KEYS"),
        ("ENTITLEMENT_OPERATOR_METRICS_PORT", "70000", "ENTITLEMENT_OPERATOR_METRICS_PORT"),
        (
            "ENTITLEMENT_OPERATOR_SEND_JITTER_SECONDS",
            "-1",
            "ENTITLEMENT_OPERATOR_SEND_JITTER_SECONDS",
        ),
    ],
    ids=[
        "product-code",
        "no-dimensions",
        "four-tag-keys",
        "reserved-tag-key",
        "bad-tag-key",
        "port",
        "jitter",
    ],
)
def test_invalid_values_name_the_variable(
    env: pytest.MonkeyPatch, name: str, value: str, variable: str
) -> None:
    """An invalid value fails with one line naming the variable."""
    env.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert caught.value.variable == variable
    assert "\n" not in str(caught.value)


def test_missing_ledger_namespace_is_reported(env: pytest.MonkeyPatch) -> None:
    """Without POD_NAMESPACE or LEDGER_NAMESPACE the operator refuses to start."""
    env.delenv("POD_NAMESPACE")
    with pytest.raises(ConfigurationError, match="LEDGER_NAMESPACE: is required"):
        load_settings()


def test_cli_exits_2_on_bad_configuration(tmp_path: Path) -> None:
    """`entitlement-sidecar operator` without its required settings exits 2 with one line."""
    done = subprocess.run(
        [sys.executable, "-m", "entitlement_sidecar", "operator"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert re.fullmatch(
        r"entitlement-sidecar operator: ENTITLEMENT_OPERATOR_\w+: .+\n", done.stderr
    )


def test_cli_help_exits_0() -> None:
    """`--help` prints the usage and exits 0."""
    done = subprocess.run(
        [sys.executable, "-m", "entitlement_sidecar", "operator", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "ENTITLEMENT_OPERATOR_PRODUCT_CODE" in done.stdout


def test_metrics_are_served_over_http() -> None:
    """/metrics serves the Prometheus text format (our metrics under their names, and the
    standard process ones) and /livez answers ok while the loop ticks."""
    metrics = Metrics()
    metrics.sends.inc(dimension="users", result="Sent")
    metrics.tick_completed()
    server = MetricsServer(metrics, 0, host="127.0.0.1").start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:  # noqa: S310
            body = answer.read().decode()
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        with urllib.request.urlopen(f"{base}/livez", timeout=5) as answer:  # noqa: S310
            assert answer.read() == b"ok\n"
    finally:
        server.stop()
    assert 'entitlement_operator_sends_total{dimension="users",result="Sent"} 1.0' in body
    assert "# TYPE entitlement_operator_ambiguous_resends_total counter" in body
    assert "entitlement_operator_last_tick_timestamp_seconds " in body
    assert "process_resident_memory_bytes " in body


def test_livez_fails_when_the_loop_stops_ticking(monkeypatch: pytest.MonkeyPatch) -> None:
    """/livez answers 503 once no tick completed for 4 tick intervals plus a minute."""
    metrics = Metrics()
    metrics.tick_completed()
    started = time.monotonic()
    server = MetricsServer(metrics, 0, host="127.0.0.1", tick_seconds=15).start()
    try:
        url = f"http://127.0.0.1:{server.port}/livez"
        monkeypatch.setattr(time, "monotonic", lambda: started + 4 * 15 + 59)
        with urllib.request.urlopen(url, timeout=5) as answer:
            assert answer.status == 200
        monkeypatch.setattr(time, "monotonic", lambda: started + 4 * 15 + 61)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=5)
        assert refused.value.code == 503
    finally:
        server.stop()
