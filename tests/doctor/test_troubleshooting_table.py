"""The README's troubleshooting table maps every status reason to a doctor check that exists."""

from __future__ import annotations

import re
from pathlib import Path

from botocore.loaders import create_loader

from entitlement_sidecar.doctor import cli
from entitlement_sidecar.sidecar.signature import CLAIM_MISMATCH, SIGNATURE_INVALID
from entitlement_sidecar.sidecar.trust import UNTRUSTED_PRODUCT_CODE

README = Path(__file__).parents[2] / "README.md"
OURS = {
    SIGNATURE_INVALID,
    CLAIM_MISMATCH,
    UNTRUSTED_PRODUCT_CODE,
    "InvalidConfiguration",
    "RegistrationFailed",
    "NetworkError",
    "CredentialsUnavailable",
    "CredentialsUnreadable",
}


def rows() -> dict[str, str]:
    """`reason` -> its doctor-check cell, from the troubleshooting section's reason table."""
    text = README.read_text()
    section = text.split("<!-- section:troubleshooting -->", 1)[1].split("<!-- section:", 1)[0]
    table: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            for reason in re.findall(r"`([A-Za-z0-9]+)`", cells[0]):
                table[reason] = cells[2]
    return table


def test_every_register_usage_error_and_our_reason_has_a_row() -> None:
    """The model's RegisterUsage errors and our own reason codes are all explained."""
    model = create_loader().load_service_model("meteringmarketplace", "service-2")
    modeled = {error["shape"] for error in model["operations"]["RegisterUsage"]["errors"]}
    assert (modeled | OURS) - set(rows()) == set()


def test_every_license_manager_reason_has_a_row() -> None:
    """The License Manager start gate's own reasons are explained too."""
    from entitlement_sidecar.sidecar.license import diagnosis
    from entitlement_sidecar.sidecar.license.gate import UNTRUSTED_SKU

    reasons = {
        value
        for name, value in vars(diagnosis).items()
        if name.isupper() and isinstance(value, str) and name != "UNIT_COUNT"
    }
    assert len(reasons) >= 7
    assert (reasons | {UNTRUSTED_SKU}) - set(rows()) == set()


def reason_constants() -> set[str]:
    """Every status reason our sidecar code defines (`NAME = "PascalCase"` in sidecar/)."""
    package = Path(cli.__file__).parents[1] / "sidecar"
    found: set[str] = set()
    for path in package.rglob("*.py"):
        found |= set(re.findall(r'^[A-Z_]+ = "([A-Z][A-Za-z]+)"$', path.read_text(), re.M))
    return found - {"Success"}


def test_every_reason_our_code_can_write_has_a_row() -> None:
    """Reasons of the License Manager gate, the start gate and the registration are explained,
    as are the errors the model declares for CheckoutLicense."""
    model = create_loader().load_service_model("license-manager", "service-2")
    checkout = {error["shape"] for error in model["operations"]["CheckoutLicense"]["errors"]}
    assert (reason_constants() | checkout) - set(rows()) == set()


def test_every_named_check_exists() -> None:
    """A check named in the table is one the doctor runs."""
    steps = {step.name for step in vars(cli).values() if isinstance(step, cli.Step)} | {"settings"}
    named = {name for cell in rows().values() for name in re.findall(r"`([a-z-]+)`", cell)}
    assert named - steps == set()
