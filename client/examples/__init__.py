"""The example sweep specs and gate configs that ship inside the package, so that an installed
``visage`` can hand a user a file to edit (``visage sweep --print-spec quick``, ``visage gate
init``) without a clone of the repository.

``sweeps/`` holds the sweep specs (``quick.toml`` is the quick preset as a file), ``gate/`` the
gate configs (``starter.toml`` is what ``visage gate init`` writes: every key, commented). These
files are the source; the repository's ``examples/sweeps`` and ``examples/gate`` are copies of
them, kept identical by ``tests/test_examples.py``.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from ..errors import ValidationError

__all__ = ["GATE_STARTER", "gate_examples", "gate_text", "sweep_examples", "sweep_text"]

#: The gate config ``visage gate init`` writes.
GATE_STARTER = "starter"


def _folder(kind: str) -> Traversable:
    return resources.files(__name__).joinpath(kind)


def _names(kind: str, suffix: str = ".toml") -> list[str]:
    return sorted(p.name.removesuffix(suffix) for p in _folder(kind).iterdir() if p.name.endswith(suffix))


def _text(kind: str, name: str) -> str:
    names = _names(kind)
    if name not in names:
        raise ValidationError(f"no {kind} example {name!r}; use one of {', '.join(names)}")
    return _folder(kind).joinpath(f"{name}.toml").read_text(encoding="utf-8")


def sweep_examples() -> list[str]:
    """The names of the shipped sweep specs (``quick``, ``paper``, ...)."""
    return _names("sweeps")


def sweep_text(name: str) -> str:
    """The shipped sweep spec ``name`` as TOML text (comments included), ready to save and edit."""
    return _text("sweeps", name)


def gate_examples() -> list[str]:
    """The names of the shipped gate configs (``starter``, ``release``, ...)."""
    return _names("gate")


def gate_text(name: str = GATE_STARTER) -> str:
    """The shipped gate config ``name`` as TOML text (comments included)."""
    return _text("gate", name)
