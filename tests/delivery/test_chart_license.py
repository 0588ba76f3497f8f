"""The sidecar chart's `license` values: env the settings accept, the Anywhere Secret, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from entitlement_sidecar.aws import rules
from entitlement_sidecar.sidecar.license.wants import MAX_UNITS
from entitlement_sidecar.sidecar.settings import FIELDS, load_settings
from tests.delivery.helm import SIDECAR_CHART, Doc, Helm, HelmError, container, pod_spec
from tests.delivery.test_chart_shapes import strict_validate
from tests.delivery.test_settings_contract import plain_env, use_rendered_env

SECRET_DIR = "/var/run/secrets/entitlement-license"
SEATS: dict[str, Any] = {"productSku": "prod-7f3a9c", "entitlements": ["seats=1"]}


def values(shape: str = "native", product_code: str = "", **license_: Any) -> dict[str, Any]:
    return {
        "entitlement": {
            "productCode": product_code,
            "sidecar": {"shape": shape},
            "license": license_,
        }
    }


def rendered(helm: Helm, chart: Path, doc: dict[str, Any], shape: str = "native") -> Doc:
    spec = pod_spec(helm.template(chart, values=doc))
    where = "containers" if shape == "classic" else "initContainers"
    return {"spec": spec, "sidecar": container(spec[where], "entitlement-sidecar")}


@pytest.mark.parametrize("shape", ["native", "classic"])
def test_license_values_become_settings_the_sidecar_accepts(
    helm: Helm, example_chart: Path, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """A contract product without a product code: SKU, units, timings load into SidecarSettings."""
    doc = values(
        shape,
        **SEATS,
        checkout="provisional",
        policy="lock",
        graceSeconds=600,
        heartbeatSeconds=300,
        region="eu-west-1",
        waitSeconds=15,
        checkinSeconds=20,
    )
    docs = helm.template(example_chart, values=doc)
    strict_validate(docs, "1.33.0")
    spec = pod_spec(docs)
    sidecar = container(
        spec["containers" if shape == "classic" else "initContainers"], "entitlement-sidecar"
    )
    assert "ENTITLEMENT_PRODUCT_CODE" not in plain_env(sidecar)
    use_rendered_env(monkeypatch, sidecar, "ENTITLEMENT_", set(FIELDS))
    settings = load_settings()
    assert (settings.mode, settings.product_sku, settings.product_code) == (
        "license-manager",
        "prod-7f3a9c",
        None,
    )
    assert (settings.license_entitlements, settings.license_checkout, settings.policy) == (
        "seats=1",
        "provisional",
        "lock",
    )
    assert (settings.license_grace_seconds, settings.heartbeat_seconds) == (600, 300)
    assert (settings.license_region, settings.license_wait_seconds) == ("eu-west-1", 15)
    assert (settings.license_checkin_seconds, settings.anywhere) == (20, False)


def test_empty_decisions_leave_the_image_s(helm: Helm, example_chart: Path) -> None:
    """Only the SKU and the run-time timings are rendered when the rest is left to the image."""
    sidecar = rendered(helm, example_chart, values(productSku="prod-7f3a9c"))["sidecar"]
    names = {name for name in plain_env(sidecar) if name.startswith("ENTITLEMENT_LICENSE_")}
    assert names == {"ENTITLEMENT_LICENSE_WAIT_SECONDS", "ENTITLEMENT_LICENSE_CHECKIN_SECONDS"}
    assert plain_env(sidecar)["ENTITLEMENT_PRODUCT_SKU"] == "prod-7f3a9c"


def test_register_usage_is_the_default(helm: Helm, example_chart: Path) -> None:
    """No SKU: no License Manager variable at all, and no Secret volume."""
    result = rendered(helm, example_chart, {})
    env = plain_env(result["sidecar"])
    assert not [n for n in env if n.startswith(("ENTITLEMENT_LICENSE_", "ENTITLEMENT_PRODUCT_SKU"))]
    assert env["ENTITLEMENT_PRODUCT_CODE"]
    assert not [v for v in result["spec"]["volumes"] if v["name"].endswith("-license-token")]


def test_the_anywhere_secret_is_mounted_and_selects_its_credentials(
    helm: Helm, example_chart: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`anywhere.secretName`: the buyer's Secret read-only, its two keys, the Anywhere defaults."""
    doc = values(**SEATS, anywhere={"secretName": "awsmp-license-token"})
    docs = helm.template(example_chart, values=doc)
    strict_validate(docs, "1.33.0")
    spec = pod_spec(docs)
    sidecar = container(spec["initContainers"], "entitlement-sidecar")
    volume = next(v for v in spec["volumes"] if v["name"] == "entitlement-status-license-token")
    assert volume["secret"] == {
        "secretName": "awsmp-license-token",
        "items": [
            {"key": "license_token", "path": "license_token"},
            {"key": "iam_role", "path": "iam_role"},
        ],
    }
    mount = next(m for m in sidecar["volumeMounts"] if m["name"] == volume["name"])
    assert mount == {"name": volume["name"], "mountPath": SECRET_DIR, "readOnly": True}
    use_rendered_env(monkeypatch, sidecar, "ENTITLEMENT_", set(FIELDS))
    settings = load_settings()
    assert (str(settings.license_anywhere_dir), settings.anywhere) == (SECRET_DIR, True)
    assert (settings.policy, settings.heartbeat_seconds) == ("report", 86400)
    for c in spec["containers"]:  # the app never sees the buyer's license token
        assert all(m["name"] != volume["name"] for m in c.get("volumeMounts", []))


def test_the_init_shape_takes_drawdown_or_tiers(helm: Helm, example_chart: Path) -> None:
    """A one-shot `register` holds nothing to return: perpetual units and tiers render."""
    declared: list[dict[str, Any]] = [
        {"productSku": "prod-7f3a9c", "entitlements": ["deployments=1"], "checkout": "perpetual"},
        {"productSku": "prod-7f3a9c", "entitlements": ["basic", "pro"]},
    ]
    for license_ in declared:
        sidecar = rendered(helm, example_chart, values("init", **license_))["sidecar"]
        assert sidecar["args"] == ["register"]


@pytest.mark.parametrize("skip_schema", [False, True], ids=["schema", "skip-schema"])
@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (values("init", **SEATS), "a floating seat needs a sidecar that keeps running"),
        (values("init", productSku="prod-7f3a9c"), "a floating seat needs a sidecar"),
        (values(productSku="prod 7f3a9c"), "is not a product ID|productSku"),
        (values(), "productCode is required|productCode.: minLength"),
    ],
    ids=["init-floating", "init-undeclared", "bad-sku", "neither-code-nor-sku"],
)
def test_templates_refuse_a_license_that_cannot_work(
    helm: Helm, example_chart: Path, doc: dict[str, Any], message: str, skip_schema: bool
) -> None:
    """Refused at render time, with the schema or without it."""
    flags = ("--skip-schema-validation",) if skip_schema else ()
    with pytest.raises(HelmError, match=message):
        helm.template(example_chart, values=doc, extra=flags)


def test_the_schema_copies_aws_s_rules() -> None:
    """The SKU pattern is `rules.PRODUCT_SKU`; the units' bound is the settings' bound."""
    schema = json.loads((SIDECAR_CHART / "values.schema.json").read_text())
    license_ = schema["properties"]["license"]["properties"]
    assert license_["productSku"]["pattern"] == f"^({rules.PRODUCT_SKU})?$"
    assert license_["productSku"]["maxLength"] == 255
    assert f"|{MAX_UNITS})" in license_["entitlements"]["items"]["pattern"]
    assert license_["heartbeatSeconds"]["maximum"] == rules.ANYWHERE_CHECK_SECONDS
