"""The sidecar chart's usage values: env the settings accept, volume sized, bad values refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from entitlement_sidecar.aws import rules
from entitlement_sidecar.sidecar import defaults
from entitlement_sidecar.sidecar.settings import FIELDS, load_settings
from tests.delivery.helm import SIDECAR_CHART, Doc, Helm, HelmError, container, pod_spec
from tests.delivery.test_chart_shapes import strict_validate
from tests.delivery.test_settings_contract import plain_env, use_rendered_env

USAGE = {
    "dimensions": ["gb_scanned", "jobs"],
    "tagKeys": ["team", "env"],
    "journalBytes": 1048576,
    "sendJitterSeconds": 60,
    "shutdownTimeoutSeconds": 25,
}


def values(shape: str, **usage: Any) -> dict[str, Any]:
    return {"entitlement": {"sidecar": {"shape": shape, "usage": usage}}}


def sidecar_and_volume(docs: list[Doc], shape: str) -> tuple[Doc, Doc]:
    spec = pod_spec(docs)
    where = "containers" if shape == "classic" else "initContainers"
    volume = next(v for v in spec["volumes"] if v["name"] == "entitlement-status")
    return container(spec[where], "entitlement-sidecar"), volume


@pytest.mark.parametrize("shape", ["native", "classic"])
def test_intake_values_become_settings_the_sidecar_accepts(
    helm: Helm, example_chart: Path, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """The rendered ENTITLEMENT_USAGE_* load into SidecarSettings with the intended values."""
    docs = helm.template(example_chart, values=values(shape, **USAGE))
    strict_validate(docs, "1.33.0")
    sidecar, volume = sidecar_and_volume(docs, shape)
    use_rendered_env(monkeypatch, sidecar, "ENTITLEMENT_", set(FIELDS))
    settings = load_settings()
    assert settings.usage_dimensions == ("gb_scanned", "jobs")
    assert settings.usage_tag_keys == ("team", "env")
    assert (settings.usage_port, settings.usage_journal_bytes) == (9843, 1048576)
    assert (settings.usage_send_jitter, settings.usage_shutdown_timeout) == (60, 25)
    assert volume["emptyDir"] == {"medium": "Memory", "sizeLimit": 2 * 1048576 + 1048576}


def test_intake_is_off_by_default(helm: Helm, example_chart: Path) -> None:
    """No dimensions: no ENTITLEMENT_USAGE_* at all, the status volume keeps its 2Mi."""
    sidecar, volume = sidecar_and_volume(helm.template(example_chart), "native")
    assert not [name for name in plain_env(sidecar) if name.startswith("ENTITLEMENT_USAGE_")]
    assert volume["emptyDir"]["sizeLimit"] == "2Mi"


@pytest.mark.parametrize("skip_schema", [False, True], ids=["schema", "skip-schema"])
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"shape": "init"}, "keeps running"),
        ({"port": 9841}, "is the probe port"),
    ],
    ids=["init-shape", "probe-port"],
)
def test_templates_refuse_an_intake_that_cannot_work(
    helm: Helm, example_chart: Path, extra: dict[str, Any], message: str, skip_schema: bool
) -> None:
    """An init container exits and the probe port is taken: render fails, schema or not."""
    usage = {"dimensions": ["jobs"], **{k: v for k, v in extra.items() if k != "shape"}}
    doc = values(extra.get("shape", "native"), **usage)
    flags = ("--skip-schema-validation",) if skip_schema else ()
    with pytest.raises(HelmError, match=message):
        helm.template(example_chart, values=doc, extra=flags)


@pytest.mark.parametrize(
    "usage",
    [
        {"dimensions": [f"d{n}" for n in range(25)]},
        {"dimensions": ["a,b"]},
        {"dimensions": ["a", "a"]},
        {"dimensions": ["a"], "tagKeys": ["a", "b", "c", "d", "e", "f"]},
        {"dimensions": ["a"], "tagKeys": ["bad!"]},
        {"dimensions": ["a"], "journalBytes": 1024},
        {"dimensions": ["a"], "sendJitterSeconds": 3600},
        {"dimensions": ["a"], "shutdownTimeoutSeconds": 0},
        {"dimensions": ["a"], "colour": "blue"},
    ],
    ids=[
        "25-dimensions",
        "comma",
        "twice",
        "6-tag-keys",
        "bad-tag-key",
        "tiny-journal",
        "long-jitter",
        "no-shutdown-time",
        "unknown-key",
    ],
)
def test_the_schema_refuses_what_the_sidecar_would(
    helm: Helm, example_chart: Path, usage: dict[str, Any]
) -> None:
    """Bad usage values stop `helm template` with the key named, before any pod starts."""
    with pytest.raises(HelmError, match="usage"):
        helm.template(example_chart, values=values("native", **usage))


def test_the_schema_limits_are_the_programs_limits() -> None:
    """Dimension count and length, tag keys and the number ranges come from one place each."""
    schema = json.loads((SIDECAR_CHART / "values.schema.json").read_text())
    usage = schema["properties"]["sidecar"]["properties"]["usage"]["properties"]
    assert usage["dimensions"]["maxItems"] == rules.DIMENSIONS_PER_PRODUCT
    assert usage["dimensions"]["items"]["maxLength"] == rules.DIMENSION_MAX
    assert usage["tagKeys"]["maxItems"] == rules.TAG_KEYS_PER_REQUEST
    assert usage["tagKeys"]["items"]["pattern"] == rules.anchored(rules.TAG_KEY)
    assert (usage["journalBytes"]["minimum"], usage["journalBytes"]["maximum"]) == (
        defaults.MIN_USAGE_JOURNAL_BYTES,
        defaults.MAX_USAGE_JOURNAL_BYTES,
    )
    assert usage["sendJitterSeconds"]["maximum"] == defaults.MAX_USAGE_SEND_JITTER
    assert usage["shutdownTimeoutSeconds"]["maximum"] == defaults.MAX_USAGE_SHUTDOWN_TIMEOUT
