"""License Manager decisions are the image's: a release image fixes them, the pod spec cannot.

The attacks: a buyer switches an hourly image to License Manager mode (skipping RegisterUsage) by
setting a SKU they hold a license for, softens a contract image's `lock` to `report`, asks for
fewer units than the seller baked, or mounts their own SignedToken key over the image's (to go
with a fake endpoint that signs with it). Each runs against a real installation baked with the
release policy (its own virtualenv prefix) and the emulator standing in for AWS.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.errors import ConfigurationError
from entitlement_sidecar.sidecar import policy, status
from entitlement_sidecar.sidecar.rsakey import parse_spki_pem
from entitlement_sidecar.testing import clean_env, installation, release_image, run_sidecar

from .conftest import SEATS, seat_license, seats_in_use

HOURLY_PRODUCT = "prod-hourly"
LICENSES = [seat_license(seats=2)]


class Image:
    """A release installation and how to run its commands against `aws`."""

    def __init__(self, aws: Emulator, python: str, directory: Path) -> None:
        self.aws = aws
        self.python = python
        self.directory = directory

    def env(self, status_dir: Path, **extra: str) -> dict[str, str]:
        status_dir.mkdir(exist_ok=True)
        return clean_env(
            **self.aws.env(access_key_id="AKIDPOLICY"),
            ENTITLEMENT_STATUS_DIR=str(status_dir),
            ENTITLEMENT_BACKOFF_INITIAL="0.05",
            ENTITLEMENT_STARTUP_TIMEOUT="10",
            POD_UID="uid-policy",
            **extra,
        )

    def run(self, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return run_sidecar(self.python, *args, env=env)


@pytest.fixture(scope="module")
def aws() -> Iterator[Emulator]:
    with Emulator({"licenses": LICENSES}) as emu:
        yield emu


@pytest.fixture(scope="module")
def hourly(aws: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Image:
    """A seller's hourly image: release, its key ring, no SKU baked."""
    directory = tmp_path_factory.mktemp("hourly")
    python, _ = release_image(
        directory,
        aws.public_key_dir,
        "--set",
        f"ENTITLEMENT_TRUSTED_PRODUCT_CODES={HOURLY_PRODUCT}",
    )
    return Image(aws, python, directory)


@pytest.fixture(scope="module")
def contract(aws: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Image:
    """A seller's contract image: release, the SKU, one seat per pod, lock, its SignedToken key."""
    directory = tmp_path_factory.mktemp("contract")
    (directory / "no-ring").mkdir()
    key = directory / "license-token.pem"
    shutil.copy(aws.public_key_dir / "license-issuer.pem", key)
    python = installation(
        directory / "venv",
        *("--profile", "release", "--keys", str(directory / "no-ring")),
        *("--set", f"ENTITLEMENT_PRODUCT_SKU={SEATS}"),
        *("--set", "ENTITLEMENT_LICENSE_ENTITLEMENTS=seats=1"),
        *("--set", "ENTITLEMENT_LICENSE_POLICY=lock"),
        *("--set", f"ENTITLEMENT_LICENSE_TOKEN_KEY={key}"),
    )
    return Image(aws, python, directory)


@pytest.fixture(autouse=True)
def _fresh(aws: Emulator) -> None:
    aws.set_scenario({"licenses": LICENSES})
    aws.reset()


def test_release_fixes_every_license_decision_empty_unless_baked() -> None:
    """An unbaked release policy forces the License Manager decisions off / to their defaults."""
    baked = policy.release({})
    assert {name: baked.fixed[name] for name in policy.LICENSE_DECISIONS} == dict.fromkeys(
        policy.LICENSE_DECISIONS, ""
    )
    assert baked.apply({})["ENTITLEMENT_PRODUCT_SKU"] == ""
    with pytest.raises(ConfigurationError) as caught:
        baked.apply({"ENTITLEMENT_PRODUCT_SKU": SEATS})
    assert caught.value.variable == "ENTITLEMENT_PRODUCT_SKU"
    permissive = policy.Policy(policy.PERMISSIVE, {}, None)
    assert permissive.apply({"ENTITLEMENT_PRODUCT_SKU": SEATS})["ENTITLEMENT_PRODUCT_SKU"] == SEATS


@pytest.mark.parametrize("command", ["register", "run", "check"])
def test_an_hourly_image_cannot_be_switched_to_license_manager(
    hourly: Image, tmp_path: Path, command: str
) -> None:
    """A SKU in the pod spec of an image that baked none: exit 2 naming it, no AWS call."""
    env = hourly.env(
        tmp_path,
        ENTITLEMENT_PRODUCT_CODE=HOURLY_PRODUCT,
        ENTITLEMENT_PRODUCT_SKU=SEATS,
        ENTITLEMENT_LICENSE_ENTITLEMENTS="seats=1",
    )
    done = hourly.run(command, env=env)
    assert done.returncode == 2, done.stderr
    assert "ENTITLEMENT_PRODUCT_SKU=" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert hourly.aws.records()["requests"].get("CheckoutLicense", 0) == 0
    assert hourly.aws.records()["requests"].get("RegisterUsage", 0) == 0


def test_the_contract_image_checks_out_with_its_baked_decisions(
    contract: Image, tmp_path: Path
) -> None:
    """Nothing in the pod spec but the plumbing: the baked SKU, units and key do the work."""
    env = contract.env(tmp_path)
    done = contract.run("register", env=env)
    doc = status.read(str(tmp_path)) or {}
    assert done.returncode == 0, done.stderr
    assert (doc["mode"], doc["license"]["policy"], doc["license"]["signed_token_verified"]) == (
        "license-manager",
        "lock",
        True,
    )
    assert json.loads((tmp_path / "entitlements.json").read_text()) == {"seats": 1}
    assert contract.run("check", "--verify", "--entitlement", "seats", env=env).returncode == 0
    assert contract.run("license", "checkin", env=env).returncode == 0
    assert seats_in_use(contract.aws) == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ENTITLEMENT_LICENSE_POLICY", "report"),
        ("ENTITLEMENT_LICENSE_GRACE_SECONDS", "604800"),
        ("ENTITLEMENT_LICENSE_ENTITLEMENTS", "seats=1,extra=1"),
        ("ENTITLEMENT_LICENSE_HEARTBEAT_SECONDS", "86400"),
        ("ENTITLEMENT_PRODUCT_SKU", "prod-other"),
        ("ENTITLEMENT_LICENSE_TOKEN_KEY", "/tmp/mine.pem"),
    ],
    ids=["report", "week-of-grace", "other-units", "daily", "other-sku", "own-key-path"],
)
def test_a_contract_image_s_decisions_cannot_be_changed_at_run_time(
    contract: Image, tmp_path: Path, variable: str, value: str
) -> None:
    """Each seller decision given another value in the pod spec: exit 2 naming it, no checkout."""
    done = contract.run("register", env=contract.env(tmp_path, **{variable: value}))
    assert (done.returncode, f"{variable}=" in done.stderr) == (2, True), done.stderr
    assert contract.aws.records()["requests"].get("CheckoutLicense", 0) == 0


def test_run_time_plumbing_stays_the_buyer_s(contract: Image, tmp_path: Path) -> None:
    """The Region, wait and check-in timings are not seller decisions: they may be set."""
    env = contract.env(
        tmp_path,
        ENTITLEMENT_LICENSE_REGION="us-east-1",
        ENTITLEMENT_LICENSE_WAIT_SECONDS="5",
        ENTITLEMENT_LICENSE_CHECKIN_SECONDS="20",
    )
    assert contract.run("register", env=env).returncode == 0
    assert contract.run("license", "checkin", env=env).returncode == 0


def test_a_signed_token_key_mounted_over_the_image_s_is_refused(
    aws: Emulator, tmp_path: Path
) -> None:
    """The buyer's key at the baked path (to go with a server that signs with it): exit 2."""
    directory = tmp_path / "image"
    (directory / "no-ring").mkdir(parents=True)
    key = directory / "license-token.pem"
    shutil.copy(aws.public_key_dir / "license-issuer.pem", key)
    python = installation(
        directory / "venv",
        *("--profile", "release", "--keys", str(directory / "no-ring")),
        *("--set", f"ENTITLEMENT_PRODUCT_SKU={SEATS}"),
        *("--set", "ENTITLEMENT_LICENSE_ENTITLEMENTS=seats=1"),
        *("--set", f"ENTITLEMENT_LICENSE_TOKEN_KEY={key}"),
    )
    image = Image(aws, python, directory)
    baked = json.loads(image.run("policy", "show", env=clean_env()).stdout)
    assert baked["pinned_token_key"] == parse_spki_pem(key.read_bytes()).fingerprint
    shutil.copy(aws.public_key_dir / "1.pem", key)  # the mount: another key at the same path
    status_dir = tmp_path / "status"
    done = image.run("register", env=image.env(status_dir))
    assert done.returncode == 2
    assert "is not the SignedToken key this image pins" in done.stderr
    assert aws.records()["requests"].get("CheckoutLicense", 0) == 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ENTITLEMENT_PRODUCT_SKU": SEATS}, "ENTITLEMENT_LICENSE_ENTITLEMENTS is required"),
        (
            {"ENTITLEMENT_PRODUCT_SKU": SEATS, "ENTITLEMENT_LICENSE_ENTITLEMENTS": "seats=0"},
            "ENTITLEMENT_LICENSE_ENTITLEMENTS=",
        ),
        (
            {
                "ENTITLEMENT_PRODUCT_SKU": SEATS,
                "ENTITLEMENT_LICENSE_ENTITLEMENTS": "seats=1",
                "ENTITLEMENT_LICENSE_TOKEN_KEY": "/nonexistent/key.pem",
            },
            "ENTITLEMENT_LICENSE_TOKEN_KEY",
        ),
    ],
    ids=["sku-without-entitlements", "zero-units", "missing-token-key"],
)
def test_a_contract_bake_that_would_not_load_fails_the_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: dict[str, str], message: str
) -> None:
    """Build time, not the buyer's cluster, is where a bad contract configuration shows."""
    from entitlement_sidecar.sidecar.commands import policy as command

    ring = tmp_path / "ring"
    ring.mkdir()
    out = tmp_path / "policy.json"
    sets: list[str] = []
    for name, value in settings.items():
        sets += ["--set", f"{name}={value}"]
    code = command.main(
        ["bake", "--profile", "release", "--keys", str(ring), *sets, "--output", str(out)]
    )
    assert (code, out.exists()) == (2, False)
    assert message in capsys.readouterr().err
