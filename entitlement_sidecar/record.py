"""Immutable value objects for the lean processes, without `dataclasses`.

`dataclasses` imports `inspect`, `typing` and `collections.abc`: most of the start time of a
`check --verify` exec probe. `Record` gives a class with `__slots__` what we used dataclasses for:
equality and hashing by value, a readable repr, and attributes that are set once and then
read-only. Subclasses list their fields in `__slots__` and assign them in a typed `__init__`.
"""

from __future__ import annotations


class Record:
    """Base of small value objects: fields are `__slots__`, each assigned once."""

    __slots__: tuple[str, ...] = ()

    def __setattr__(self, name: str, value: object) -> None:
        try:
            object.__getattribute__(self, name)
        except AttributeError:
            object.__setattr__(self, name, value)
            return
        raise AttributeError(f"{type(self).__name__}.{name} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__}.{name} is read-only")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"
