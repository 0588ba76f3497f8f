"""The env the chart renders is accepted by the real settings models, with the intended values."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from entitlement_sidecar.operator.settings import OperatorSettings
from entitlement_sidecar.operator.settings import load_settings as load_operator_settings
from entitlement_sidecar.sidecar.settings import FIELDS, load_settings
from tests.delivery.helm import OPERATOR_CHART, Doc, Helm, container, find, pod_spec


def plain_env(c: Doc) -> dict[str, str]:
    """A container's literal env values (downward-API entries skipped)."""
    return {e["name"]: e["value"] for e in c["env"] if "value" in e}


def use_rendered_env(
    monkeypatch: pytest.MonkeyPatch, c: Doc, prefix: str, fields: set[str]
) -> None:
    """Make the container's rendered env the process env; every prefixed name must be a field."""
    env = plain_env(c)
    known = {prefix + name.upper() for name in fields}
    assert {n for n in env if n.startswith(prefix)} <= known
    for name in list(os.environ):
        if name.startswith(prefix):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("shape", ["native", "classic", "init"], ids=["native", "classic", "init"])
def test_sidecar_settings_accept_the_rendered_env(
    helm: Helm, example_chart: Path, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """SidecarSettings loads the chart's env for each shape; each ENTITLEMENT_ name is a field."""
    values: dict[str, Any] = {
        "entitlement": {
            "region": "eu-west-1",
            "logFormat": "text",
            "sidecar": {"shape": shape, "port": 19841, "startupTimeoutSeconds": 900},
        }
    }
    spec = pod_spec(helm.template(example_chart, values=values))
    where = "containers" if shape == "classic" else "initContainers"
    sidecar = container(spec[where], "entitlement-sidecar")
    use_rendered_env(monkeypatch, sidecar, "ENTITLEMENT_", set(FIELDS))
    settings = load_settings()
    assert settings.product_code == "exampleproductcode0000001"
    assert settings.port == 19841
    assert settings.startup_timeout == 900
    assert settings.region == "eu-west-1"
    assert settings.log_format == "text"
    assert str(settings.status_dir) == "/var/run/entitlement"
    assert settings.verify_signature is True


def test_operator_settings_accept_the_rendered_env(
    helm: Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OperatorSettings loads the chart's env; each ENTITLEMENT_OPERATOR_ name is a field."""
    values = {
        "productCode": "exampleproductcode0000001",
        "region": "us-west-2",
        "dimensions": ["nodes", "vcpu_hours"],
        "tagKeys": ["team"],
        "namespaces": ["a", "b"],
        "dryRun": True,
        "sendJitterSeconds": 30,
        "retentionDays": 7,
    }
    docs = helm.template(OPERATOR_CHART, values=values, namespace="billing")
    operator = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    fields = set(OperatorSettings.model_fields)
    use_rendered_env(monkeypatch, operator, "ENTITLEMENT_OPERATOR_", fields)
    settings = load_operator_settings()
    assert settings.product_code == "exampleproductcode0000001"
    assert tuple(settings.dimensions) == ("nodes", "vcpu_hours")
    assert tuple(settings.tag_keys) == ("team",)
    assert tuple(settings.namespaces) == ("a", "b")
    assert settings.ledger_namespace == "billing"
    assert settings.dry_run is True
    assert settings.send_jitter_seconds == 30
    assert settings.retention_days == 7
    assert settings.region == "us-west-2"
