"""How a reply type is read from a protobuf message: :class:`ProtoReply`, whose ``from_proto``
follows from the dataclass's fields. The reply types themselves: :mod:`.server_state` (what a
server holds and accepts) and :mod:`.call_results` (what its work returns).

Each reply type lists the fields a caller reads, named as in the v1 contract
(``protos/safety_landscape/v1/landscape.proto``), and keeps the whole message as ``proto`` (for
what the type leaves out, and for ``MessageToDict``; left out of ``repr`` and ``==``). Reading a reply follows from the fields, as
:mod:`.json_codec` does for documents: a field of a reply type is read from the message field of
the same name, so adding one is one line::

    @dataclass(frozen=True)
    class RegistryEntry(ProtoReply):
        message_type = pb.RegistryEntry
        name: str
        kind: str
        proto: pb.RegistryEntry = field(repr=False, compare=False)

How a message field is read: a scalar as it is; a repeated field as a tuple; an enum as its short
lower-case name (``FINISH_REASON_EOS`` -> ``"eos"``, unspecified -> ``""``); a nested message as
its reply type (a field typed ``X | None`` is None when the message leaves it unset, and so is an
``optional`` scalar); a field typed as a protobuf message (``DirectionInfo.spec``) as the message.
A reply field the message does not have is an error when the type is first read, never a silent
default.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from typing import Any, ClassVar, Self, Union, cast

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

__all__ = ["ProtoReply"]



class ProtoReply:
    """Mixin for a frozen dataclass read from one protobuf message (see the module docstring)."""

    #: The message type the reply is read from (checked against the fields when first read).
    message_type: ClassVar[type[Message]]

    @classmethod
    def from_proto(cls, message: Message) -> Self:
        """The reply read from ``message`` (kept as ``.proto``)."""
        if not isinstance(message, cls.message_type):
            raise TypeError(f"{cls.__name__} reads a {cls.message_type.__name__}, not a {type(message).__name__}")
        kwargs = {name: read(message) for name, read in _readers(cast(Any, cls))}
        return cast(Self, cast(Any, cls)(**kwargs, proto=message))


@functools.cache
def _readers(cls: Any) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    """(field name, how to read it from the message) for each field of ``cls`` but ``proto``."""
    hints = typing.get_type_hints(cls)
    by_name = cls.message_type.DESCRIPTOR.fields_by_name
    out = []
    for f in dataclasses.fields(cast(Any, cls)):
        if f.name == "proto":
            continue
        if f.name not in by_name:
            raise TypeError(f"{cls.__name__}.{f.name}: {cls.message_type.__name__} has no field {f.name!r}")
        out.append((f.name, _reader(by_name[f.name], hints[f.name], f"{cls.__name__}.{f.name}")))
    return tuple(out)


def _optional(tp: Any) -> tuple[Any, bool]:
    """(the type inside ``X | None``, whether None is allowed)."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return inner[0], len(inner) < len(typing.get_args(tp))
    return tp, False


def _enum_name(fd: FieldDescriptor) -> Callable[[int], str]:
    enum = fd.enum_type
    prefix = next((v.name.removesuffix("UNSPECIFIED") for v in enum.values if v.name.endswith("_UNSPECIFIED")), "")

    def name(value: int) -> str:
        described = enum.values_by_number.get(value)
        if described is None:  # a value this client's contract does not know yet
            return str(value)
        return "" if described.name.endswith("_UNSPECIFIED") else described.name.removeprefix(prefix).lower()

    return name


def _reader(fd: FieldDescriptor, tp: Any, where: str) -> Callable[[Any], Any]:
    inner, nullable = _optional(tp)
    repeated = fd.is_repeated
    if repeated:
        if typing.get_origin(inner) is not tuple:
            raise TypeError(f"{where}: a repeated field is read as tuple[X, ...]")
        inner = typing.get_args(inner)[0]
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        if isinstance(inner, type) and issubclass(inner, ProtoReply):
            reply = inner
            if repeated:
                return lambda m: tuple(reply.from_proto(x) for x in getattr(m, fd.name))
            if nullable:
                return lambda m: reply.from_proto(getattr(m, fd.name)) if m.HasField(fd.name) else None
            return lambda m: reply.from_proto(getattr(m, fd.name))
        if not (isinstance(inner, type) and issubclass(inner, Message)):
            raise TypeError(f"{where}: a message field is read as a reply type or a protobuf message")
        if repeated:
            return lambda m: tuple(getattr(m, fd.name))
        return lambda m: getattr(m, fd.name) if not nullable or m.HasField(fd.name) else None
    convert: Callable[[Any], Any] = _enum_name(fd) if fd.type == FieldDescriptor.TYPE_ENUM else (lambda v: v)
    if repeated:
        return lambda m: tuple(convert(v) for v in getattr(m, fd.name))
    if fd.has_presence and nullable:
        return lambda m: convert(getattr(m, fd.name)) if m.HasField(fd.name) else None
    return lambda m: convert(getattr(m, fd.name))
