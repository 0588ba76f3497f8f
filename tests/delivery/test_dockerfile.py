"""The Dockerfile: hadolint-clean, two stages, numeric non-root user, read-only-root friendly."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from entitlement_sidecar.sidecar.defaults import DEFAULT_STARTUP_TIMEOUT
from tests.delivery.helm import REPO

DOCKERFILE = REPO / "Dockerfile"
SELLER = REPO / "examples" / "seller-image" / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def stages(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Instructions per named stage (`FROM x AS name`)."""
    result: dict[str, list[tuple[str, str]]] = {}
    current = "_preamble"
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            current = rest.split(" AS ")[-1] if " AS " in rest else rest
            result[current] = []
        result.setdefault(current, []).append((keyword, rest))
    return result


def effective(path: Path, stage: str) -> list[tuple[str, str]]:
    """A stage's instructions including those it inherits from its parent stages."""
    all_stages = stages(path)
    chain: list[tuple[str, str]] = []
    name = stage
    while name in all_stages:
        body = all_stages[name]
        chain = body[1:] + chain
        name = body[0][1].split(" AS ")[0]
    return chain


def args_of(stage: str, keyword: str) -> list[str]:
    """Arguments of every `keyword` instruction in effect for a stage of our Dockerfile."""
    return [rest for kw, rest in effective(DOCKERFILE, stage) if kw == keyword]


@pytest.mark.parametrize("path", [DOCKERFILE, SELLER], ids=["image", "seller-example"])
def test_hadolint_is_clean(path: Path) -> None:
    """hadolint reports nothing for the Dockerfile."""
    proc = subprocess.run(
        [str(HADOLINT), "-f", "json", str(path)], capture_output=True, text=True, check=False
    )
    assert json.loads(proc.stdout or "[]") == [], proc.stdout
    assert proc.returncode == 0


def test_base_is_an_argument_and_default_is_python_slim() -> None:
    """`ARG BASE=python:3.12-slim` comes first and every base stage is `FROM ${BASE}`."""
    first = instructions(DOCKERFILE)[0]
    assert first == ("ARG", "BASE=python:3.12-slim")
    froms = [rest for keyword, rest in instructions(DOCKERFILE) if keyword == "FROM"]
    assert all(f.startswith("${BASE} ") or f.split(" AS ")[0] in stages(DOCKERFILE) for f in froms)


@pytest.mark.parametrize("target", ["sidecar", "operator"], ids=["sidecar", "operator"])
def test_runtime_copies_only_the_virtualenv(target: str) -> None:
    """The shipped stage copies the built virtualenv from a build stage and nothing else."""
    copies = [rest for keyword, rest in effective(DOCKERFILE, target) if keyword == "COPY"]
    assert len(copies) == 1
    assert re.fullmatch(
        r"--from=build(-operator)? /opt/entitlement-sidecar /opt/entitlement-sidecar", copies[0]
    )
    runs = " ".join(rest for keyword, rest in effective(DOCKERFILE, target) if keyword == "RUN")
    assert "pip install" not in runs


@pytest.mark.parametrize("target", ["sidecar", "operator"], ids=["sidecar", "operator"])
def test_runs_as_numeric_non_root_user(target: str) -> None:
    """The last USER of each shipped stage is the numeric 65532:65532."""
    users = args_of(target, "USER")
    assert users[-1] == "65532:65532"


def test_read_only_root_friendly_environment() -> None:
    """No byte-code writes, TMPDIR on the status volume, pip caches off, pip removed."""
    text = DOCKERFILE.read_text()
    runtime = " ".join(
        rest for keyword, rest in effective(DOCKERFILE, "sidecar") if keyword == "ENV"
    )
    assert "PYTHONDONTWRITEBYTECODE=1" in runtime
    assert "TMPDIR=/var/run/entitlement" in runtime
    assert "--no-cache-dir" in text
    assert "pip uninstall --yes pip" in text
    assert args_of("sidecar", "VOLUME") == ['["/var/run/entitlement"]']


def test_sidecar_target_is_the_default_with_healthcheck_entrypoint_and_cmd() -> None:
    """The last stage is the sidecar: entrypoint, cmd run, HEALTHCHECK check covering the budget."""
    assert list(stages(DOCKERFILE))[-1] == "sidecar"
    sidecar = dict(effective(DOCKERFILE, "sidecar"))
    assert sidecar["ENTRYPOINT"] == '["entitlement-sidecar"]'
    assert sidecar["CMD"] == '["run"]'
    assert sidecar["HEALTHCHECK"].endswith('CMD ["entitlement-sidecar", "check"]')
    start_period = re.search(r"--start-period=(\d+)s", sidecar["HEALTHCHECK"])
    assert start_period, "a start period keeps a long startup from counting as unhealthy"
    assert int(start_period.group(1)) >= DEFAULT_STARTUP_TIMEOUT + 60
    operator = dict(effective(DOCKERFILE, "operator"))
    assert operator["CMD"] == '["operator"]'
    assert operator["HEALTHCHECK"] == "NONE"


def test_extras_build_argument_installs_the_operator_extra() -> None:
    """`--build-arg EXTRAS=operator` installs `.[operator]` into the default image."""
    build = " ".join(rest for _, rest in stages(DOCKERFILE)["build"])
    assert 'ARG EXTRAS=""' in " ".join(f"{k} {r}" for k, r in stages(DOCKERFILE)["build"])
    assert 'spec=".[${EXTRAS}]"' in build


def test_oci_labels_are_set() -> None:
    """The image carries the standard OCI labels."""
    labels = " ".join(
        rest for keyword, rest in effective(DOCKERFILE, "sidecar") if keyword == "LABEL"
    )
    for key in ("title", "description", "version", "revision", "licenses", "base.name"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    """.dockerignore excludes everything except the files the Dockerfile copies."""
    lines = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and line[0] != "#"
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for keyword, rest in instructions(DOCKERFILE):
        if keyword == "COPY" and not rest.startswith("--from"):
            copied |= {part.rstrip("/") for part in rest.split()[:-1]}
    assert copied == allowed


def test_seller_example_bakes_keys_and_trusted_codes_into_the_release_policy() -> None:
    """The seller example builds FROM ours, copies its key ring, then bakes the release policy
    with its trusted product codes (never an ENV a pod spec could override), as root, and goes
    back to the numeric non-root user."""
    steps = instructions(SELLER)
    assert steps[0][1].startswith("BASE=entitlement-sidecar:")
    copy = steps.index(("COPY", "keys/ /etc/entitlement-sidecar/keys/"))
    bake = next(i for i, (k, r) in enumerate(steps) if k == "RUN" and "policy bake" in r)
    assert copy < bake
    assert "--profile release" in steps[bake][1]
    assert '--set "ENTITLEMENT_TRUSTED_PRODUCT_CODES=${TRUSTED_PRODUCT_CODES}"' in steps[bake][1]
    for name in ("PRODUCT_SKU", "LICENSE_ENTITLEMENTS", "LICENSE_POLICY"):  # contract products
        assert f'--set "ENTITLEMENT_{name}=${{{name}}}"' in steps[bake][1]
    assert steps[bake - 1] == ("USER", "0")
    assert steps[-1] == ("USER", "65532:65532")
    assert not any(k == "ENV" and "ENTITLEMENT_" in r for k, r in steps)


def test_the_image_bakes_its_policy_and_runs_python_isolated() -> None:
    """The build bakes the image policy (release unless POLICY says otherwise) and the command
    runs `python -IB`, so a PYTHONPATH in the pod spec cannot load code into the sidecar."""
    build = stages(DOCKERFILE)["build"]
    assert ("ARG", "POLICY=release") in build
    steps = " ".join(rest for keyword, rest in build if keyword == "RUN")
    assert "'#!/opt/entitlement-sidecar/bin/python -IB'" in steps
    assert "> /opt/entitlement-sidecar/bin/entitlement-sidecar" in steps
    assert 'entitlement-sidecar policy bake --profile "${POLICY}"' in steps
