"""The README's scenario reference, generated from the scenario's pydantic models.

Every key of `Scenario` (and of the models under it: products, faults, customers, callers) is a
row: its path, type, default and the field's description. The README holds the rendered table
between two markers; a test renders it again and fails when they differ, so the reference cannot
drift from the code. `python -m entitlement_sidecar.emulator.reference README.md` rewrites it.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from entitlement_sidecar.emulator.scenario import Scenario

BEGIN = "<!-- scenario-reference:begin (generated from emulator/scenario.py; do not edit) -->"
END = "<!-- scenario-reference:end -->"


def _nested(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """(path suffix, model) when a field holds models: `.<key>.` for dicts, `[].` for lists."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is dict and isinstance(args[1], type) and issubclass(args[1], BaseModel):
        return ".<key>.", args[1]
    if origin is tuple and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return "[].", args[0]
    return None


def _type(annotation: Any) -> str:
    """A short readable type: `string`, `list of integer`, `one of a, b`, `map of ...`."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in {types.UnionType, typing.Union}:
        kept = [a for a in args if a is not type(None)]
        text = " or ".join(_type(a) for a in kept)
        return f"{text} or null" if len(kept) < len(args) else text
    if origin is tuple:
        return f"list of {_inner(args[0])}"
    if origin is dict:
        return f"map of {_inner(args[0])} to {_inner(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    names = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _inner(annotation: Any) -> str:
    text = _type(annotation)
    return f"({text})" if " or " in text else text


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value)}`"


def rows(model: type[BaseModel] = Scenario, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key path, type, default, effect) for every field, nested models expanded."""
    result = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        nested = _nested(field.annotation)
        kind = _type(field.annotation)
        result.append((path, kind, _default(field), field.description or ""))
        if nested:
            suffix, inner = nested
            result.extend(rows(inner, f"{path}{suffix}"))
    return result


def markdown() -> str:
    """The reference table, between its markers."""
    lines = [BEGIN, "| key | type | default | effect |", "|---|---|---|---|"]
    for path, kind, default, effect in rows():
        lines.append(f"| `{path}` | {kind} | {default} | {effect} |")
    lines.append(END)
    return "\n".join(lines)


def rewrite(text: str) -> str:
    """`text` (the README) with the block between the markers replaced by a fresh rendering."""
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    if not rest:
        raise ValueError("the README has no scenario-reference markers")
    return head + markdown() + tail


def main(argv: list[str]) -> int:
    """Rewrite the reference in the README files named on the command line."""
    for name in argv:
        path = Path(name)
        path.write_text(rewrite(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
