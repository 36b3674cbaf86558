"""Directions and perturbation terms as a user writes them (``--at``), read and written back.

One grammar names every direction a sweep uses, so any point can be evaluated again from the
command line (``visage evaluate --at TERM=COEF ...``):

- ``seed:N`` a random direction, with optional ``,KEY:VALUE`` parts that set each field of its
  recipe: ``stream:per_tensor|reference``, ``index:I`` (draw I of the stream: a sweep's direction
  ``d<I>``), ``normalization:layer|filter|none``, ``selection:reference|biasbn|all``,
  ``tied:once|reference``, and ``include:PATTERN`` / ``exclude:PATTERN`` (repeatable). A part
  left out takes the default of ``visage direction create``: per_tensor stream, draw 0, layer
  normalisation, the reference selection, tied tensors once. A sweep's directions use the
  *reference* stream unless its spec says otherwise, so its direction ``d1`` of seed 123 is
  ``seed:123,stream:reference,index:1``: bare ``seed:123`` is another direction;
- ``interp:NAME`` toward the registry checkpoint NAME (1.0 = its weights); ``adapter:NAME`` a
  registry LoRA adapter's merged delta;
- ``d-<id>`` a direction the server already holds (``visage direction list``).

A term is ``DIRECTION=COEFFICIENT`` (the last ``=`` splits them). :func:`direction_text` writes a
spec back in this grammar (stream and index always, the other parts where they differ from the
defaults), so ``parse_direction(direction_text(spec)) == spec``. A pattern holding a comma cannot
be written here (``visage direction create`` and its ``d-`` id can).
"""

from __future__ import annotations

import difflib

from safety_landscape.common.names import NORMALIZATIONS, SELECTIONS, STREAMS, TIED_RULES
from safety_landscape.v1 import landscape_pb2 as pb

from .builders import adapter_direction, interpolation_direction, random_direction, random_direction_names
from .errors import ValidationError

__all__ = ["RANDOM_PARTS", "direction_text", "parse_direction", "parse_term", "term_text"]

#: The parts a random direction's text may carry after ``seed:N``, with the names each accepts
#: (None: a number, or a tensor-name pattern).
RANDOM_PARTS: dict[str, tuple[str, ...] | None] = {
    "stream": STREAMS, "index": None, "normalization": NORMALIZATIONS, "selection": SELECTIONS, "tied": TIED_RULES,
    "include": None, "exclude": None,
}
_FORMS = "seed:N[,stream:S][,index:I][,...], interp:NAME, adapter:NAME or d-<id>"


def _close(word: str, known: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else f" (one of {', '.join(known)})"


def _random(text: str, seed: str, parts: list[str]) -> pb.DirectionSpec:
    if not seed.isdigit():
        raise ValidationError(f"{text!r}: seed:N takes a whole number, got {seed!r}")
    values: dict[str, str] = {}
    patterns: dict[str, list[str]] = {"include": [], "exclude": []}
    for part in parts:
        key, sep, value = part.partition(":")
        if key not in RANDOM_PARTS or not sep or not value:
            what = f"unknown part {key!r}{_close(key, list(RANDOM_PARTS))}" if key not in RANDOM_PARTS else \
                f"part {part!r} needs a value ({key}:VALUE)"
            raise ValidationError(f"{text!r}: {what}; a random direction is seed:N with optional parts "
                                  + ", ".join(f"{k}:..." for k in RANDOM_PARTS))
        if key in patterns:
            patterns[key].append(value)
            continue
        if key in values:
            raise ValidationError(f"{text!r}: {key} is given twice")
        names = RANDOM_PARTS[key]
        if names is not None and value not in names:
            raise ValidationError(f"{text!r}: unknown {key} {value!r}{_close(value, names)}")
        if names is None and not value.isdigit():
            raise ValidationError(f"{text!r}: {key} takes a whole number >= 0, got {value!r}")
        values[key] = value
    return random_direction(int(seed), normalization=values.get("normalization", "layer"),
                            selection=values.get("selection", "reference"), include=patterns["include"],
                            exclude=patterns["exclude"], stream=values.get("stream", "per_tensor"),
                            index=int(values.get("index", "0")), tied=values.get("tied", "once"))


def parse_direction(text: str) -> str | pb.DirectionSpec:
    """A direction's text: its spec, or the id (``d-...``) of a direction the server holds."""
    if text.startswith("d-") and len(text) > 2:
        return text
    head, *parts = text.split(",")
    kind, sep, name = head.partition(":")
    if not sep or not name:
        raise ValidationError(f"{text!r}: a direction is {_FORMS}")
    if kind == "seed":
        return _random(text, name, parts)
    if kind in ("interp", "adapter"):
        if parts:
            raise ValidationError(f"{text!r}: {kind}:NAME takes no other parts (a random direction's parts go "
                                  "after seed:N)")
        return interpolation_direction(name) if kind == "interp" else adapter_direction(name)
    raise ValidationError(f"{text!r}: unknown kind {kind!r}{_close(kind, ['seed', 'interp', 'adapter'])}; "
                          f"a direction is {_FORMS}")


def parse_term(value: str) -> tuple[str | pb.DirectionSpec, float]:
    """``DIRECTION=COEFFICIENT`` as (direction, coefficient)."""
    text, sep, coef = value.rpartition("=")
    if not sep or not text:
        raise ValidationError(f"{value!r}: use DIRECTION=COEFFICIENT, e.g. seed:123,stream:reference,index:0=0.25, "
                              "interp:NAME=1.0 or d-0123abcd=0.5")
    try:
        coefficient = float(coef)
    except ValueError:
        raise ValidationError(f"{value!r}: {coef!r} is not a number") from None
    return parse_direction(text), coefficient


def direction_text(direction: str | pb.DirectionSpec) -> str:
    """The text of a direction in this grammar (its id, if it is one); ValueError for a pattern
    that holds a comma."""
    if isinstance(direction, str):
        return direction
    kind = direction.WhichOneof("kind")
    if kind == "interpolation":
        return f"interp:{direction.interpolation.target}"
    if kind == "adapter":
        return f"adapter:{direction.adapter.adapter}"
    if kind != "random":
        raise ValueError(f"a direction spec with no kind: {direction}")
    r = direction.random
    normalization, selection, stream, tied = random_direction_names(r)
    parts = [f"seed:{r.seed}", f"stream:{stream}", f"index:{r.index}"]
    parts += [f"{k}:{v}" for k, v, default in (("normalization", normalization, "layer"),
                                                ("selection", selection, "reference"), ("tied", tied, "once"))
              if v != default]
    for key, patterns in (("include", r.include), ("exclude", r.exclude)):
        for pattern in patterns:
            if "," in pattern:
                raise ValueError(f"the {key} pattern {pattern!r} holds a comma, which --at cannot write; create the "
                                 "direction with visage direction create and name it by its d- id")
            parts.append(f"{key}:{pattern}")
    return ",".join(parts)


def term_text(direction: str | pb.DirectionSpec, coefficient: float) -> str:
    """``DIRECTION=COEFFICIENT``, the coefficient written exactly (``repr``)."""
    return f"{direction_text(direction)}={coefficient!r}"
