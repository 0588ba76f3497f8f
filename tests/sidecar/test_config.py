"""Settings: typed, validated up front, one line per mistake; the README documents every one."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entitlement_sidecar.errors import ConfigurationError
from entitlement_sidecar.sidecar import envlite, status
from entitlement_sidecar.sidecar.settings import FIELDS, env_name, load_settings

README = Path(__file__).parents[2] / "README.md"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Replace the ENTITLEMENT_* variables with the given ones."""

    def use(**values: str) -> None:
        for name in list(os.environ):
            if name.startswith("ENTITLEMENT_"):
                monkeypatch.delenv(name)
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return use


def test_defaults_match_the_issue_and_the_lean_readers(environment: Any) -> None:
    """Defaults are the documented ones, and `run`/`check` read the same values."""
    environment(ENTITLEMENT_PRODUCT_CODE="prod-paid")
    loaded = load_settings()
    assert (
        loaded.public_key_version,
        loaded.port,
        loaded.startup_timeout,
        loaded.verify_signature,
        loaded.region,
    ) == (1, 9841, 1800.0, True, None)
    assert Path("/var/run/entitlement") == loaded.status_dir
    assert Path("/etc/entitlement-sidecar/keys") == loaded.public_keys
    env = dict(os.environ)
    assert loaded.port == envlite.port(env)
    assert str(loaded.status_dir) == envlite.status_dir(env)
    assert str(loaded.public_keys) == envlite.public_keys(env)
    assert loaded.public_key_version == envlite.public_key_version(env)


def test_trusted_product_codes_are_a_comma_list(environment: Any) -> None:
    """`a, b,,c` is the set {a, b, c} for both readers."""
    environment(ENTITLEMENT_PRODUCT_CODE="a", ENTITLEMENT_TRUSTED_PRODUCT_CODES="a, b,,c")
    assert frozenset({"a", "b", "c"}) == load_settings().trusted_product_codes
    assert frozenset({"a", "b", "c"}) == envlite.trusted_product_codes(dict(os.environ))


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({}, "ENTITLEMENT_PRODUCT_CODE"),
        ({"ENTITLEMENT_PRODUCT_CODE": "has space"}, "ENTITLEMENT_PRODUCT_CODE"),
        ({"ENTITLEMENT_PUBLIC_KEY_VERSION": "0"}, "ENTITLEMENT_PUBLIC_KEY_VERSION"),
        ({"ENTITLEMENT_PORT": "70000"}, "ENTITLEMENT_PORT"),
        ({"ENTITLEMENT_STARTUP_TIMEOUT": "soon"}, "ENTITLEMENT_STARTUP_TIMEOUT"),
        ({"ENTITLEMENT_VERIFY_SIGNATURE": "perhaps"}, "ENTITLEMENT_VERIFY_SIGNATURE"),
        ({"ENTITLEMENT_LOG_FORMAT": "xml"}, "ENTITLEMENT_LOG_FORMAT"),
        ({"ENTITLEMENT_LOG_LEVEL": "LOUD"}, "ENTITLEMENT_LOG_LEVEL"),
    ],
    ids=[
        "missing-product",
        "bad-product",
        "version-0",
        "port-range",
        "timeout-text",
        "verify-word",
        "log-format",
        "log-level",
    ],
)
def test_invalid_values_name_their_variable_in_one_line(
    environment: Any, values: dict[str, str], variable: str
) -> None:
    """Each bad value raises ConfigurationError naming the variable, in a single line."""
    environment(**{"ENTITLEMENT_PRODUCT_CODE": "prod-paid", **values} if values else {})
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert variable == caught.value.variable
    assert "\n" not in str(caught.value)
    assert variable in str(caught.value)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    field=st.sampled_from(sorted(FIELDS)),
    value=st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
        max_size=40,
    ),
)
def test_no_value_crashes_settings_parsing(environment: Any, field: str, value: str) -> None:
    """Any string in any variable gives settings or a ConfigurationError, nothing else."""
    environment(**{"ENTITLEMENT_PRODUCT_CODE": "prod-paid", env_name(field): value})
    variables: list[str] = []
    try:
        load_settings()
    except ConfigurationError as error:
        variables.append(error.variable)
    env = dict(os.environ)
    for reader in (envlite.port, envlite.public_key_version):
        try:
            reader(env)
        except ConfigurationError as error:
            variables.append(error.variable)
    assert all(name.startswith("ENTITLEMENT_") for name in variables)


def _section(name: str) -> str:
    text = README.read_text()
    start = text.index(f"<!-- section:{name} -->")
    following = text.find("<!-- section:", start + 1)
    return text[start : following if following > 0 else None]


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    """The README configuration table has a row for every SidecarSettings field."""
    table = _section("configuration")
    rows = {m.group(1) for m in re.finditer(r"^\| `(ENTITLEMENT_[A-Z_]+)` \|", table, re.M)}
    assert {env_name(field) for field in FIELDS} <= rows


def test_every_status_field_is_in_the_readme_status_table() -> None:
    """The README status table has a row for every status.json field."""
    table = _section("status")
    rows = {m.group(1) for m in re.finditer(r"^\| `([a-z0-9_]+)` \|", table, re.M)}
    assert set(status.FIELDS) <= rows


def test_the_readme_lists_every_endpoint_and_exit_code() -> None:
    """Endpoints and exit codes are documented."""
    table = _section("endpoints")
    for needle in ("/livez", "/readyz", "/status", "/metrics", "| 0 |", "| 1 |", "| 2 |", "| 3 |"):
        assert needle in table
