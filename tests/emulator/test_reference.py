"""The README's scenario reference is generated from the scenario model and stays true."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from entitlement_sidecar.emulator.reference import markdown, rows
from entitlement_sidecar.emulator.scenario import CallerKeys, Customer, Fault, Product, Scenario

README = Path(__file__).parents[2] / "README.md"


def test_the_readme_holds_the_generated_reference() -> None:
    """The table between the markers is exactly what the model renders today (regenerate with
    `python -m entitlement_sidecar.emulator.reference README.md`)."""
    assert markdown() in README.read_text(encoding="utf-8")


def test_every_key_of_every_scenario_model_has_a_row_and_an_effect() -> None:
    """No field is missing from the reference, and none is left without a description."""
    models: list[tuple[str, type[BaseModel]]] = [
        ("", Scenario),
        ("products.<key>.", Product),
        ("faults[].", Fault),
        ("customers.<key>.", Customer),
        ("callers.<key>.", CallerKeys),
    ]
    table = {path: effect for path, _, _, effect in rows()}
    for prefix, model in models:
        for name in model.model_fields:
            assert table.get(prefix + name), f"{prefix}{name} has no row or no effect"
