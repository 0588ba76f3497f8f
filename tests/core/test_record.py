"""`Record`: the dataclass stand-in of the lean processes behaves like a frozen dataclass."""

from __future__ import annotations

import pytest

from entitlement_sidecar.record import Record


class Point(Record):
    __slots__ = ("x", "y")

    def __init__(self, x: int, y: int = 0) -> None:
        self.x = x
        self.y = y


class Other(Record):
    __slots__ = ("x", "y")

    def __init__(self, x: int, y: int = 0) -> None:
        self.x = x
        self.y = y


def test_equal_fields_make_equal_records_with_equal_hashes() -> None:
    """Two records of the same class with the same fields are equal and hash alike."""
    assert Point(1, 2) == Point(1, 2)
    assert hash(Point(1, 2)) == hash(Point(1, 2))
    assert Point(1, 2) != Point(2, 1)


def test_records_of_another_class_are_never_equal() -> None:
    """Same fields, different class: not equal."""
    assert Point(1, 2) != Other(1, 2)


def test_fields_cannot_be_reassigned_or_deleted_or_added() -> None:
    """Once set in `__init__`, a field is read-only; no attribute outside `__slots__` exists."""
    point = Point(1)
    with pytest.raises(AttributeError, match="read-only"):
        point.x = 5
    with pytest.raises(AttributeError, match="read-only"):
        del point.y
    with pytest.raises(AttributeError):
        point.z = 1


def test_repr_names_the_class_and_every_field() -> None:
    """The repr reads like a constructor call."""
    assert repr(Point(1, 2)) == "Point(x=1, y=2)"
