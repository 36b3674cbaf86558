"""The plain forms ``Client`` methods take: a weight state as (direction, coefficient) pairs
(:data:`At`, :func:`to_perturbation`), and the rule that a method's keywords and a protobuf
``settings=`` message are alternatives (the keywords' defaults are the builders', read from them).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

from google.protobuf.message import Message

from safety_landscape.v1 import landscape_pb2 as pb

from .builders import evaluation_settings, generation, perturbation
from .errors import ValidationError

__all__ = ["EVALUATION_DEFAULTS", "GENERATION_DEFAULTS", "At", "evaluation", "one_of", "to_perturbation"]

#: A weight state as ``Client`` methods take it (None: theta0): (direction, coefficient) pairs,
#: where a direction is an id ("d-...") or a spec (``random_direction(123)``,
#: ``interpolation_direction("ckpt")``, ``adapter_direction("lora")``); or {direction id:
#: coefficient}; or a ``Perturbation`` message (``perturbation(...)``).
At: TypeAlias = pb.Perturbation | Mapping[str, float] | Iterable[tuple[str | pb.DirectionSpec, float]] | None


def to_perturbation(at: At) -> pb.Perturbation:
    """``at`` (see :data:`At`) as a ``Perturbation`` message; a malformed term is a ValidationError."""
    if at is None:
        return pb.Perturbation()
    if isinstance(at, pb.Perturbation):
        return at
    if isinstance(at, str | bytes | Message):
        raise ValidationError(f"at: give (direction, coefficient) pairs, e.g. [(random_direction(123), 0.25)], "
                              f"not a {type(at).__name__}")
    terms: list[tuple[str | pb.DirectionSpec, float]] = []
    for term in at.items() if isinstance(at, Mapping) else at:
        if not (isinstance(term, tuple | list) and len(term) == 2 and isinstance(term[0], str | pb.DirectionSpec)
                and isinstance(term[1], int | float) and not isinstance(term[1], bool)):
            raise ValidationError(f"at: each term is a (direction, coefficient) pair, a direction being an id (d-...) "
                                  f"or a spec (random_direction(123)); got {term!r}")
        terms.append((term[0], float(term[1])))
    return perturbation(terms)


# The keyword defaults of the builders the methods' keywords stand for (one source: the builders).
GENERATION_DEFAULTS = {k: p.default for k, p in inspect.signature(generation).parameters.items()}
EVALUATION_DEFAULTS = {k: p.default for k, p in inspect.signature(evaluation_settings).parameters.items()}


def _given(options: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[str]:
    """The options that differ from their defaults (a list equal to a default tuple does not)."""
    def same(value: Any, default: Any) -> bool:
        if isinstance(value, list | tuple) and isinstance(default, list | tuple):
            return tuple(value) == tuple(default)
        return bool(value == default)

    return sorted(k for k, v in options.items() if not same(v, defaults[k]))


def one_of(settings: Message | None, options: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    """ValidationError when both ``settings`` and keywords other than their defaults are given:
    the keywords would be dropped without a word."""
    if settings is not None and (given := _given(options, defaults)):
        raise ValidationError(f"give settings= or the keywords ({', '.join(given)}), not both: the keywords build "
                              "the settings")


def evaluation(settings: pb.EvaluationSettings | None, scope: Mapping[str, Any]) -> pb.EvaluationSettings:
    """``settings``, or the settings ``evaluation_settings`` builds from the keywords (never both).
    ``scope``: a ``Client`` method's ``locals()``; its names that are ``evaluation_settings``'
    keywords are the options (each method takes every one of them), the rest are ignored."""
    options = {name: scope[name] for name in EVALUATION_DEFAULTS}
    one_of(settings, options, EVALUATION_DEFAULTS)
    return settings if settings is not None else evaluation_settings(**options)
