"""Request validation driven by botocore's own service model (types, required, lengths, patterns).

botocore checks little on the client side (minimums only), so the emulator has to be the strict
one: it walks the operation's input shape from the installed botocore model and answers the way a
JSON 1.1 service does. Wrong JSON types are a `SerializationException`; broken constraints are a
`ValidationException` listing every violation ("2 validation errors detected: ..."). Constraints on
allocations and tags answer the modeled `InvalidUsageAllocationsException` / `InvalidTagException`
instead, which is what the service documents for them. Unknown members are ignored, as JSON
services do for forward compatibility.

Members to which AWS's Smithy model gives a default (`smithy.api#default` with `addedDefault`)
are the exception botocore cannot show: its JSON model drops the trait, but Smithy-generated
clients send the default on every call, and the service reads it as "not set". `SMITHY_DEFAULTS`
lists them; a member equal to its default is removed before validation.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from botocore.loaders import create_loader
from botocore.model import ListShape, ServiceModel, Shape, StructureShape

from entitlement_sidecar.emulator.protocol import ApiError, serialization_error

# Constraint failures inside these shapes answer a modeled error instead of ValidationException.
_SHAPE_ERRORS = {
    "TagList": "InvalidTagException",
    "TagKey": "InvalidTagException",
    "TagValue": "InvalidTagException",
    "UsageAllocations": "InvalidUsageAllocationsException",
    "AllocatedUsageQuantity": "InvalidUsageAllocationsException",
    "AllocatedUsageQuantityAsDecimalString": "InvalidUsageAllocationsException",
}


# Every member with a Smithy default in the Metering model (aws-sdk-js-v3's
# codegen/sdk-codegen/aws-models/marketplace-metering.json): structure shape -> member -> default.
# Both are `""` with `smithy.api#addedDefault`; no other member of the service has a default.
SMITHY_DEFAULTS: dict[str, dict[str, object]] = {
    "BatchMeterUsageRequest": {"ProductCode": ""},
    "UsageRecord": {"CustomerIdentifier": ""},
}


@functools.cache
def service_model(service: str = "meteringmarketplace") -> ServiceModel:
    """The installed botocore model of `service` (loaded once per process)."""
    loader = create_loader()
    return ServiceModel(loader.load_service_model(service, "service-2"))


def validate_input(
    operation: str, body: dict[str, Any], *, service: str = "meteringmarketplace"
) -> dict[str, Any]:
    """`body` without members equal to their Smithy default, or the error a real endpoint answers
    when it breaks `operation`'s input shape (of `service`'s botocore model)."""
    shape = service_model(service).operation_model(operation).input_shape
    assert shape is not None
    body = without_defaults(shape, body)
    found: list[tuple[str, str]] = []
    _walk(shape, body, "", found)
    plain = [message for code, message in found if code == "ValidationException"]
    if plain:
        count = len(plain)
        noun = "error" if count == 1 else "errors"
        raise ApiError(
            "ValidationException", f"{count} validation {noun} detected: " + "; ".join(plain)
        )
    if found:
        raise ApiError(*found[0])
    return body


def without_defaults(shape: Shape, value: Any) -> Any:
    """`value` with every member that equals its Smithy default removed (it means "not set")."""
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        defaults = SMITHY_DEFAULTS.get(shape.name, {})
        kept = {}
        for name, item in value.items():
            member = shape.members.get(name)
            if name in defaults and item == defaults[name] and type(item) is type(defaults[name]):
                continue
            kept[name] = item if member is None else without_defaults(member, item)
        return kept
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [without_defaults(shape.member, item) for item in value]
    return value


def _member_path(prefix: str, name: str) -> str:
    camel = name[:1].lower() + name[1:]
    return f"{prefix}.{camel}" if prefix else camel


def _walk(shape: Shape, value: Any, path: str, found: list[tuple[str, str]]) -> None:
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            raise serialization_error(f"Expected an object at '{path or 'body'}'")
        for name in shape.required_members:
            if value.get(name) is None:
                _fail(shape, None, _member_path(path, name), "Member must not be null", found)
        for name, member in shape.members.items():
            if value.get(name) is not None:
                _walk(member, value[name], _member_path(path, name), found)
        return
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            raise serialization_error(f"Expected a list at '{path}'")
        _check_range(shape, value, len(value), path, found, what="length")
        for index, item in enumerate(value, start=1):
            _walk(shape.member, item, f"{path}.{index}.member", found)
        return
    _check_scalar(shape, value, path, found)


def _check_scalar(shape: Shape, value: Any, path: str, found: list[tuple[str, str]]) -> None:
    kind = shape.type_name
    if kind == "string":
        if not isinstance(value, str):
            raise serialization_error(f"Expected a string at '{path}'")
        _check_range(shape, value, len(value), path, found, what="length")
        pattern = shape.metadata.get("pattern")
        # The whole value must match (as the service's validator does): with `search`, the
        # model's `$` would also match before a trailing newline ("team-a\n" would pass).
        if pattern is not None and re.fullmatch(pattern, value) is None:
            _fail(
                shape,
                value,
                path,
                f"Member must satisfy regular expression pattern: {pattern}",
                found,
            )
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            _fail(shape, value, path, f"Member must satisfy enum value set: {enum}", found)
    elif kind in {"integer", "long"}:
        if isinstance(value, bool) or not isinstance(value, int):
            raise serialization_error(f"Expected an integer at '{path}'")
        _check_range(shape, value, value, path, found, what="value")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise serialization_error(f"Expected a boolean at '{path}'")
    elif kind == "timestamp" and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise serialization_error(f"Expected epoch seconds (a number) at '{path}'")


def _check_range(
    shape: Shape, value: Any, measure: int, path: str, found: list[tuple[str, str]], *, what: str
) -> None:
    """The model's min/max: on a string's or list's length, or on an integer's value."""
    lowest, highest = shape.metadata.get("min"), shape.metadata.get("max")
    if lowest is not None and measure < lowest:
        message = f"Member must have {what} greater than or equal to {lowest}"
        _fail(shape, value, path, message, found)
    if highest is not None and measure > highest:
        message = f"Member must have {what} less than or equal to {highest}"
        _fail(shape, value, path, message, found)


def _fail(shape: Shape, value: Any, path: str, rule: str, found: list[tuple[str, str]]) -> None:
    shown = "null" if value is None else repr(value if isinstance(value, str) else "...")
    if len(shown) > 80:
        shown = shown[:76] + "...'"
    message = f"Value {shown} at '{path}' failed to satisfy constraint: {rule}"
    found.append((_SHAPE_ERRORS.get(shape.name, "ValidationException"), message))
