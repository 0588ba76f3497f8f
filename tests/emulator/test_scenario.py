"""The scenario format: defaults, files, key files, and errors that name the bad key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from entitlement_sidecar.emulator import DEFAULT_SCENARIO, Emulator, ScenarioError, load_scenario
from entitlement_sidecar.emulator.signing import public_pem
from tests.emulator.helpers import verify

EXAMPLE = """
region: us-east-1
key_versions: [1, 2]          # RSA keys generated at start unless key files are given
expired_key_versions: [2]
products:
  prod-paid:     {entitled: true, dimensions: [users, gb]}
  prod-lapsed:   {entitled: false}
  prod-onprem:   {error: PlatformNotSupportedException}
throttle: {RegisterUsage: 5, MeterUsage: 10}
faults: [{op: RegisterUsage, kind: internal_error, count: 2},
         {op: MeterUsage, kind: delay, seconds: 3}]
customers: {token-abc: {customer_aws_account_id: "123456789012", product: prod-paid}}
"""


def test_default_scenario() -> None:
    """Without a file: prod-paid (users, gb), prod-lapsed, key version 1, AWS quotas."""
    scenario = load_scenario(None)
    assert scenario.products["prod-paid"].dimensions == ("users", "gb")
    assert scenario.products["prod-lapsed"].entitled is False
    assert scenario.key_versions == (1,)
    assert (scenario.rate("RegisterUsage"), scenario.rate("MeterUsage")) == (5, 10)
    assert scenario.rate("BatchMeterUsage") == 10
    assert load_scenario(DEFAULT_SCENARIO) == scenario


def test_issue_example_loads_from_yaml_and_json(tmp_path: Path) -> None:
    """The documented YAML example loads, and so does the same data as JSON."""
    yaml_file = tmp_path / "s.yaml"
    yaml_file.write_text(EXAMPLE)
    from_yaml = load_scenario(yaml_file)
    json_file = tmp_path / "s.json"
    json_file.write_text(json.dumps(from_yaml.model_dump(mode="json")))
    assert load_scenario(json_file) == from_yaml
    assert from_yaml.products["prod-onprem"].error == "PlatformNotSupportedException"
    assert [f.kind for f in from_yaml.faults] == ["internal_error", "delay"]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"prodcts": {}}, "prodcts"),
        ({"region": "mars"}, "region"),
        ({"key_versions": []}, "key_versions"),
        ({"key_versions": [1], "expired_key_versions": [3]}, "key version 3"),
        ({"products": {"bad code": {}}}, "bad code"),
        ({"products": {"p": {"error": "NopeException"}}}, "products.p.error"),
        ({"products": {"p": {"entitled": "maybe"}}}, "products.p.entitled"),
        ({"faults": [{"kind": "explode"}]}, "faults.0.kind"),
        ({"faults": [{"kind": "error"}]}, "needs `code`"),
        ({"faults": [{"kind": "delay"}]}, "needs `seconds`"),
        ({"faults": [{"kind": "throttle", "count": 0}]}, "faults.0.count"),
        ({"throttle": {"Foo": 1}}, "unknown operation 'Foo'"),
        ({"customers": {"t": {"customer_aws_account_id": "1", "product": "nope"}}}, "customers.t"),
        ({"claims_case": "snake"}, "claims_case"),
        ({"client_token_scope": "region"}, "client_token_scope"),
        ({"key_files": {"x": "a.pem"}}, "key_files"),
    ],
    ids=[
        "unknown-key",
        "region",
        "no-versions",
        "expired-not-listed",
        "product-code",
        "unmodeled-error",
        "entitled-type",
        "fault-kind",
        "error-without-code",
        "delay-without-seconds",
        "zero-count",
        "throttle-op",
        "customer-product",
        "claims-case",
        "token-scope",
        "key-file-version",
    ],
)
def test_errors_name_the_bad_key(data: dict[str, Any], fragment: str) -> None:
    """A bad scenario raises one line that names the offending key."""
    with pytest.raises(ScenarioError) as caught:
        load_scenario(data)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(None, "No such file"), ("a: [1, 2", "not valid YAML"), ("- 1\n- 2\n", "top level")],
    ids=["missing", "broken-yaml", "not-a-mapping"],
)
def test_file_errors(tmp_path: Path, content: str | None, fragment: str) -> None:
    """Unreadable or malformed files give one clear line."""
    path = tmp_path / "scenario.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ScenarioError, match=fragment):
        load_scenario(path)


def test_key_files_are_used(tmp_path: Path) -> None:
    """A given private key signs the tokens and its public half is published."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "k1.pem").write_bytes(pem)
    scenario = {"key_files": {1: str(tmp_path / "k1.pem")}, "products": {"prod-paid": {}}}
    with Emulator(scenario, public_key_dir=tmp_path / "keys") as emu:
        assert (tmp_path / "keys" / "1.pem").read_bytes() == public_pem(key)
        token = emu.client().register_usage(ProductCode="prod-paid", PublicKeyVersion=1)
        verify(token["Signature"], public_pem(key))
    assert (tmp_path / "keys" / "1.pem").exists()


def test_bad_key_file(tmp_path: Path) -> None:
    """A key file that is not an RSA private key is a scenario error naming key_files."""
    (tmp_path / "k.pem").write_text("not a key")
    with pytest.raises(ScenarioError, match="key_files"):
        Emulator({"key_files": {1: str(tmp_path / "k.pem")}})


def test_readme_scenario_example_is_valid(tmp_path: Path) -> None:
    """The README's scenario example loads, its relative key file next to the scenario file."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("<!-- section:emulator -->", 1)[1].split("### Scenario file", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "v1.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path = tmp_path / "scenario.yaml"
    path.write_text(block)  # key_files: {1: keys/v1.pem}, relative to the scenario file
    scenario = load_scenario(path)
    assert scenario.products["prod-forged"].sign_with_unlisted_key is True
    with Emulator(scenario) as emu:
        assert (emu.public_key_dir / "1.pem").read_bytes() == public_pem(key)
        client = emu.client()
        for _ in range(2):  # the example's internal_error fault, count 2
            with pytest.raises(client.exceptions.InternalServiceErrorException):
                client.register_usage(ProductCode="prod-paid", PublicKeyVersion=1)
        token = client.register_usage(ProductCode="prod-paid", PublicKeyVersion=1)
        verify(token["Signature"], public_pem(key))


def test_the_fault_operation_names_are_every_operation_the_emulator_serves() -> None:
    """The `op` enum a scenario file is checked with lists exactly the served operations."""
    from typing import get_args

    from entitlement_sidecar.emulator.scenario import ALL_OPERATIONS, Fault

    literal = next(arg for arg in get_args(Fault.model_fields["op"].annotation) if get_args(arg))
    assert get_args(literal) == ALL_OPERATIONS
