"""Frozen dataclasses that are JSON documents: ``to_json`` and ``from_json`` follow from the fields.

A document type (the sweep metadata, summary.json) lists each of its keys once, as a typed field;
writing it and reading it back are derived from those fields, so adding a key to a document is
one line, and code elsewhere reads attributes, never string keys::

    @dataclass(frozen=True)
    class Spread(JsonCodec):
        mean: float
        std: float
        n: int
        ci95: Interval | None = field(default=None, metadata=ABSENT_IF_NONE)  # no "ci95" key when None

Field types that are read: ``str``, ``int``, ``float`` (an int is accepted as is), ``bool``,
``Any``, ``X | None``, ``tuple[X, ...]`` (a JSON array; ``tuple[X, Y]`` a fixed one),
``Mapping[str, X]`` (a JSON object), and any class with its own ``from_json`` (another document).
Nothing is coerced: what a file holds is what is read, and a value of the wrong type raises
``ValueError`` naming where it is. A field named ``extra`` (``Mapping[str, Any]``) keeps the keys
the type does not know, so a document written by a later client reads back and writes out
unchanged; a key missing from the JSON takes the field's default (a required field raises).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Self, Union, cast

__all__ = ["ABSENT_IF_NONE", "JsonCodec"]

_ABSENT_IF_NONE = "json_absent_if_none"
#: A field's metadata: when the value is None the key is left out of the JSON (an optional section).
ABSENT_IF_NONE: Mapping[str, bool] = MappingProxyType({_ABSENT_IF_NONE: True})


class JsonCodec:
    """Mixin for a frozen dataclass whose instances are JSON documents (see the module docstring)."""

    def to_json(self) -> dict[str, Any]:
        """The document as JSON values (tuples become lists); ``from_json(to_json(x)) == x``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(cast(Any, self)):
            value = getattr(self, f.name)
            if f.name == "extra" or (value is None and f.metadata.get(_ABSENT_IF_NONE)):
                continue
            out[f.name] = _encode(value)
        out.update(_encode(getattr(self, "extra", {})))
        return out

    @classmethod
    def from_json(cls, data: Any) -> Self:
        """The document from its JSON; ``ValueError`` naming the key for a missing or mistyped value."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        hints, known, kwargs = _hints(cast(Any, cls)), set(), {}
        for f in dataclasses.fields(cast(Any, cls)):
            if f.name == "extra":
                continue
            known.add(f.name)
            if f.name in data:
                kwargs[f.name] = _decode(hints[f.name], data[f.name], f"{cls.__name__}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{cls.__name__}: the JSON has no {f.name!r}")
        if "extra" in hints:
            kwargs["extra"] = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs)


def _encode(value: Any) -> Any:
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, Mapping):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    """A document type's field types, resolved once (a pure function of the type, memoised)."""
    return typing.get_type_hints(cls)


_PLAIN: dict[type, tuple[type, ...]] = {str: (str,), int: (int,), float: (int, float), bool: (bool,)}


def _decode(tp: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _decode(inner[0], value, where) if len(inner) == 1 else value
    if isinstance(tp, type) and hasattr(tp, "from_json"):
        return tp.from_json(value)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a JSON array, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ValueError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_decode(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin in (Mapping, dict):
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a JSON object, got {type(value).__name__}")
        return {k: _decode(args[1], v, f"{where}[{k!r}]") for k, v in value.items()}
    allowed = _PLAIN.get(tp)
    if allowed is not None and (not isinstance(value, allowed) or (tp is not bool and isinstance(value, bool))):
        raise ValueError(f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value
