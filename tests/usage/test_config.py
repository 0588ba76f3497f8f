"""The usage settings: the lean reader of `run` and the children's settings model agree."""

from __future__ import annotations

import os
from typing import Any

import pytest

from entitlement_sidecar.errors import ConfigurationError
from entitlement_sidecar.sidecar.settings import load_settings
from entitlement_sidecar.sidecar.usage import config


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Replace the ENTITLEMENT_* variables with the given ones (product code always set)."""

    def use(**values: str) -> dict[str, str]:
        for name in list(os.environ):
            if name.startswith("ENTITLEMENT_"):
                monkeypatch.delenv(name)
        for name, value in {"ENTITLEMENT_PRODUCT_CODE": "prod-paid", **values}.items():
            monkeypatch.setenv(name, value)
        return dict(os.environ)

    return use


def test_intake_is_off_without_dimensions(environment: Any) -> None:
    """No (or only blank) dimensions: no intake for either reader."""
    env = environment(ENTITLEMENT_USAGE_DIMENSIONS=" , ")
    assert config.load(env, 9841) is None
    assert load_settings().usage_dimensions == ()


def test_defaults_and_values_agree(environment: Any) -> None:
    """Defaults (port 9843, 4 MiB, 300 s jitter, 20 s shutdown) and set values read alike."""
    env = environment(ENTITLEMENT_USAGE_DIMENSIONS="gb_scanned, jobs")
    lean, full = config.load(env, 9841), load_settings()
    assert lean is not None
    assert (lean.dimensions, lean.port, lean.journal_bytes) == (
        ("gb_scanned", "jobs"),
        9843,
        4 << 20,
    )
    assert (lean.send_jitter, lean.shutdown_timeout, lean.socket, lean.tag_keys) == (
        300.0,
        20.0,
        None,
        (),
    )
    assert (full.usage_dimensions, full.usage_port, full.usage_journal_bytes) == (
        lean.dimensions,
        lean.port,
        lean.journal_bytes,
    )
    env = environment(
        ENTITLEMENT_USAGE_DIMENSIONS="a",
        ENTITLEMENT_USAGE_PORT="19843",
        ENTITLEMENT_USAGE_SOCKET="/var/run/entitlement/usage.sock",
        ENTITLEMENT_USAGE_TAG_KEYS="team, env",
        ENTITLEMENT_USAGE_JOURNAL_BYTES="65536",
        ENTITLEMENT_USAGE_SEND_JITTER="0",
        ENTITLEMENT_USAGE_SHUTDOWN_TIMEOUT="45",
    )
    lean, full = config.load(env, 9841), load_settings()
    assert lean is not None
    assert (
        full.usage_port,
        full.usage_socket,
        full.usage_tag_keys,
        full.usage_journal_bytes,
        full.usage_send_jitter,
        full.usage_shutdown_timeout,
    ) == (19843, lean.socket, ("team", "env"), 65536, 0.0, 45.0)
    assert (lean.port, lean.tag_keys, lean.shutdown_timeout) == (19843, ("team", "env"), 45.0)


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"ENTITLEMENT_USAGE_DIMENSIONS": ",".join(f"d{n}" for n in range(25))}, "DIMENSIONS"),
        ({"ENTITLEMENT_USAGE_DIMENSIONS": "a," + "x" * 256}, "DIMENSIONS"),
        ({"ENTITLEMENT_USAGE_DIMENSIONS": "a,b,a"}, "DIMENSIONS"),
        ({"ENTITLEMENT_USAGE_PORT": "9841"}, "PORT"),
        ({"ENTITLEMENT_USAGE_PORT": "70000"}, "PORT"),
        ({"ENTITLEMENT_USAGE_SOCKET": "usage.sock"}, "SOCKET"),
        ({"ENTITLEMENT_USAGE_SOCKET": "/" + "s" * 120}, "SOCKET"),
        ({"ENTITLEMENT_USAGE_TAG_KEYS": "team,bad!"}, "TAG_KEYS"),
        ({"ENTITLEMENT_USAGE_TAG_KEYS": "a,b,c,d,e,f"}, "TAG_KEYS"),
        ({"ENTITLEMENT_USAGE_JOURNAL_BYTES": "1024"}, "JOURNAL_BYTES"),
        ({"ENTITLEMENT_USAGE_JOURNAL_BYTES": "lots"}, "JOURNAL_BYTES"),
        ({"ENTITLEMENT_USAGE_SEND_JITTER": "901"}, "SEND_JITTER"),
        ({"ENTITLEMENT_USAGE_SEND_JITTER": "-1"}, "SEND_JITTER"),
        ({"ENTITLEMENT_USAGE_SHUTDOWN_TIMEOUT": "0"}, "SHUTDOWN_TIMEOUT"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_both_readers_refuse_the_same_values_naming_the_variable(
    environment: Any, values: dict[str, str], variable: str
) -> None:
    """`run` (lean) and the children (pydantic) stop on the same bad value, naming it."""
    env = environment(**{"ENTITLEMENT_USAGE_DIMENSIONS": "a", **values})
    with pytest.raises(ConfigurationError) as lean:
        config.load(env, 9841)
    with pytest.raises(ConfigurationError) as full:
        load_settings()
    assert lean.value.variable == full.value.variable == f"ENTITLEMENT_USAGE_{variable}"
