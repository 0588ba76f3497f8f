"""`make demo`: the narrated walk-through runs real sidecars against the emulator and passes."""

from __future__ import annotations

from entitlement_sidecar import demo


def test_the_demo_walks_through_all_five_pods() -> None:
    """Entitled, lapsed, forged, throttled and usage-reporting pods behave as narrated; exit 0."""
    lines: list[str] = []
    assert demo.run_demo(say=lines.append) == 0
    text = "\n".join(lines)
    for expected in (
        "check --verify   -> exit 0",
        "reason=CustomerNotEntitledException",
        "reason=SignatureInvalid",
        '"ThrottlingException": 2',
        "exit codes [0, 0, 0, 0]",
        '"duplicates": 1',
        "the partial hour is sent at once",
        "jobs           5",
        "allocations: 2 {'team': 'ads'}, 3 {'team': 'search'}",
    ):
        assert expected in text
