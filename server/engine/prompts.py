"""Prompt sets on the server: its domain errors over the common reader, the built-in mini sets,
and the registry of named sets.

Reading prompt files and inline lists is :mod:`safety_landscape.common.prompt_files` (formats,
checks and messages are documented there); this module gives the server's view of it: every
problem becomes ``InvalidArgument`` (a missing file ``NotFound``), with the reader's message.

Built-in sets (``server/data/``): ``advbench`` (AdvBench's ``harmful_behaviors.csv``, 520 rows,
MIT licence, shipped unchanged: ``server/data/advbench/README.md``), ``harmful-mini`` (40
AdvBench-style harmful requests across the usual categories) and ``benign-mini``; line i of
``benign_mini.txt`` is the benign twin of line i of ``harmful_mini.txt`` (same shape, same order,
same count), for paired over-refusal checks.

An operator's set (``--prompt-set NAME=FILE``) named like a built-in one *replaces* it: the
operator's configuration wins, so ``--prompt-set advbench=harmful_behaviors.csv`` keeps working
and serves the operator's file. :func:`server_prompt_sets` says which built-ins were replaced and
whether the content differs (the server logs it); the served set's sha256 is what clients see and
what every sweep point's key holds, so a different file never passes for the built-in one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import ParamSpec

from safety_landscape.common import prompt_files as common
from safety_landscape.common.prompt_files import PROMPT_FILE_FORMATS
from safety_landscape.server import errors

_P = ParamSpec("_P")

__all__ = [
    "PROMPT_FILE_FORMATS",
    "PromptSet",
    "PromptSetRegistry",
    "Replacement",
    "builtin_prompt_sets",
    "inline_prompt_set",
    "load_prompt_file",
    "server_prompt_sets",
]

#: The built-in AdvBench file (a copy of llm-attacks' ``harmful_behaviors.csv``) and its sha256.
ADVBENCH_FILE = "advbench/harmful_behaviors.csv"
ADVBENCH_FILE_SHA256 = "6cd1a5c63c07610d7eb67307772ee5606017ee950b5770ab288a2c487489d3e1"


@contextmanager
def _domain_errors() -> Iterator[None]:
    """The common reader's errors as the server's: NotFound for a missing file, else InvalidArgument."""
    try:
        yield
    except common.PromptFileNotFoundError as exc:
        raise errors.NotFound(str(exc)) from exc
    except common.PromptFileError as exc:
        raise errors.InvalidArgument(str(exc)) from exc


@dataclasses.dataclass(frozen=True)
class PromptSet(common.PromptSet):
    """A named, ordered, immutable list of prompts whose errors are the server's domain errors."""

    @classmethod
    def of(cls, ps: common.PromptSet) -> PromptSet:
        return cls(**{f.name: getattr(ps, f.name) for f in dataclasses.fields(ps)})  # the reader's flags too

    def head(self, limit: int) -> PromptSet:
        """The first ``limit`` prompts (0 = all; more than there are = all), name unchanged."""
        with _domain_errors():
            head = super().head(limit)
        return head if isinstance(head, PromptSet) else PromptSet.of(head)


def _on_the_server(read: Callable[_P, common.PromptSet]) -> Callable[_P, PromptSet]:
    """``read`` (a common reader) returning the server's PromptSet and raising its domain errors."""

    @functools.wraps(read)
    def server_read(*args: _P.args, **kwargs: _P.kwargs) -> PromptSet:
        with _domain_errors():
            return PromptSet.of(read(*args, **kwargs))

    return server_read


#: Load a prompt file (formats: :mod:`safety_landscape.common.prompt_files`); the name defaults to the stem.
load_prompt_file = _on_the_server(common.load_prompt_file)
#: A prompt set named "inline" from prompts given in a request.
inline_prompt_set = _on_the_server(common.inline_prompt_set)


def builtin_prompt_sets() -> dict[str, PromptSet]:
    """The packaged "advbench" (520 rows), "harmful-mini" and "benign-mini" (line i of one twins
    line i of the other)."""
    data = resources.files("safety_landscape.server").joinpath("data")
    out = {}
    for name, filename, kind in (
        ("harmful-mini", "harmful_mini.txt", "harmful"),
        ("benign-mini", "benign_mini.txt", "benign"),
    ):
        text = data.joinpath(filename).read_text(encoding="utf-8")
        with _domain_errors():
            out[name] = PromptSet.of(common.text_prompt_set(name, text, kind=kind, where=f"built-in {filename}"))
    advbench = data.joinpath(*ADVBENCH_FILE.split("/"))
    if hashlib.sha256(advbench.read_bytes()).hexdigest() != ADVBENCH_FILE_SHA256:
        raise errors.FailedPrecondition(
            f"the built-in {ADVBENCH_FILE} is not the file this package shipped (its sha256 differs); "
            "reinstall the package, and serve another AdvBench file with --prompt-set advbench=FILE"
        )
    with resources.as_file(advbench) as path, _domain_errors():
        out["advbench"] = PromptSet.of(common.load_prompt_file(path, name="advbench", fmt="advbench-csv"))
    return out


@dataclasses.dataclass(frozen=True)
class Replacement:
    """An operator's prompt set that took the place of the built-in set of the same name."""

    name: str
    builtin_sha256: str
    operator_sha256: str

    @property
    def same_prompts(self) -> bool:
        return self.builtin_sha256 == self.operator_sha256


def server_prompt_sets(operator_sets: Iterable[PromptSet]) -> tuple[list[PromptSet], list[Replacement]]:
    """The sets a server holds: the built-in ones, then the operator's; an operator's set named like
    a built-in one replaces it (listed in the second value). Two operator sets of one name stay an
    error (:meth:`PromptSetRegistry.add`)."""
    sets: dict[str, PromptSet] = builtin_prompt_sets()
    builtin = dict(sets)
    replaced: list[Replacement] = []
    extra: list[PromptSet] = []
    for ps in operator_sets:
        if ps.name in builtin and sets[ps.name] is builtin[ps.name]:
            replaced.append(Replacement(ps.name, builtin[ps.name].sha256, ps.sha256))
            sets[ps.name] = ps
        else:
            extra.append(ps)
    return [*sets.values(), *extra], replaced


class PromptSetRegistry:
    """Prompt sets by name (not thread-safe for writes: fill it at start-up)."""

    def __init__(self, sets: Iterable[PromptSet] = ()) -> None:
        self._sets: dict[str, PromptSet] = {}
        for ps in sets:
            self.add(ps)

    def add(self, ps: PromptSet) -> None:
        """Register ``ps``; a second set under the same name is an error."""
        if ps.name in self._sets:
            raise errors.InvalidArgument(
                f'a prompt set named "{ps.name}" is already registered; give this one another name.'
            )
        self._sets[ps.name] = ps

    def get(self, name: str) -> PromptSet:
        try:
            return self._sets[name]
        except KeyError:
            raise errors.NotFound(
                f'unknown prompt set "{name}".' + errors.did_you_mean(name, self._sets)
            ) from None

    def list(self) -> list[PromptSet]:
        return [self._sets[n] for n in sorted(self._sets)]

    def __contains__(self, name: object) -> bool:
        return name in self._sets
