"""The sweep spec's types: what a landscape sweep measures, with every field's default.

A :class:`SweepSpec` names the grid (``kind`` + :class:`Grid`), the directions' recipe
(:class:`DirectionRecipe`), the harmful prompts and the optional benign (over-refusal) prompts
(:class:`PromptSource`), fixed :class:`BaseTerm` s, the optional :class:`Capability` controls,
the system prompts, chat format, judge and generation settings. The rules a value must follow
are :mod:`.rules`; the TOML layout is :mod:`.loading`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ...errors import ValidationError

__all__ = ["BASE_KINDS", "BENIGN_AT", "DEFAULT_STOP_AFTER", "KINDS", "BaseTerm", "Capability", "DirectionRecipe",
           "Grid", "PromptSource", "SpecError", "SweepSpec"]

#: An adaptive sweep's default ``stop_after``: the least k whose walk, replayed on every full grid
#: measured so far, gives VISAGE within +-1 of the full grid by both rules on every series
#: (docs/performance.md, "Adaptive sweeps replayed on full grids"). k = 2, the default
#: before, stopped one point short of a stray point below 100 % and was off by 14 points.
DEFAULT_STOP_AFTER = 3

KINDS = ("1d-random", "2d-random", "1d-interpolation", "2d-interpolation-random", "2d-interpolation")
BENIGN_AT = ("all", "origin")
BASE_KINDS = ("interp", "adapter", "seed")


class SpecError(ValidationError):
    """A sweep spec with one or more problems; ``.problems`` lists ``"field: what is wrong"``.

    Example::

        try:
            load_spec("quick.toml")
        except SpecError as exc:
            for problem in exc.problems:    # every problem at once, each naming its field
                print(problem)
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"invalid sweep spec ({len(problems)} problem{'s' * (len(problems) != 1)}):\n  "
                         + "\n  ".join(self.problems))


@dataclass(frozen=True)
class Grid:
    """The coefficients. Random axes: ``points`` values over ``range``. Interpolation axis:
    ``a in linspace(-extra/steps, 1 + extra/steps, steps + 2*extra + 1)`` toward ``target``; the
    ``2d-interpolation`` kind's second axis ``b`` (the same values) toward ``target_b``: the
    origin model at (0, 0), ``target`` at (1, 0), ``target_b`` at (0, 1).
    ``adaptive``: measure each ASR series from its centre outward, stopping a side after
    ``stop_after`` consecutive points at 100 % (the rest assumed on the plateau, never measured);
    ``edge_resolution`` > 0 (1D): bisect each edge off the grid to that width
    (:mod:`~safety_landscape.client.sweep.planner`).

    Example::

        spec = preset("quick").replace(grid=Grid(directions=3, points=11, range=(-0.5, 0.5)))
    """

    directions: int = 1
    points: int = 21
    range: tuple[float, float] = (-0.5, 0.5)
    target: str = ""
    steps: int = 10
    extra: int = 0
    adaptive: bool = False
    stop_after: int = DEFAULT_STOP_AFTER
    edge_resolution: float = 0.0
    target_b: str = ""


@dataclass(frozen=True)
class DirectionRecipe:
    """How random directions are drawn. Direction ``i`` is draw ``index=i`` of ``seed``: with the
    "reference" stream that is exactly the authors' i-th ``torch.manual_seed(123)`` draw on a
    model without tied tensors; ``tied = "reference"`` makes it so on a tied model too (a draw for
    each state-dict name, docs/method.md section 1), "once" perturbs a tied tensor once.

    Example::

        spec = preset("quick").replace(direction=DirectionRecipe(seed=7, stream="per_tensor"))
    """

    seed: int = 123
    stream: str = "reference"
    normalization: str = "layer"
    selection: str = "reference"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    tied: str = "once"


@dataclass(frozen=True)
class PromptSource:
    """A server-side named set (``set``) or a local file read here and sent inline (``file``;
    ``column``: its CSV column or JSONL field), the first ``limit`` prompts (0 = all).

    Example::

        spec = preset("quick").replace(prompts=PromptSource(file="harmful_behaviors.csv", limit=80))
    """

    set: str = ""
    file: str = ""
    column: str = ""
    limit: int = 0
    at: str = "all"  # benign only: "all" points or the "origin" (theta0 + base) only


@dataclass(frozen=True)
class BaseTerm:
    """A fixed perturbation term added to every point: ``interp:NAME`` (toward a registered
    checkpoint; 1.0 = its weights), ``adapter:NAME`` or ``seed:N`` (a random direction: draw 0
    of seed N, layer-normalised, per-tensor stream).

    Example::

        spec = preset("quick").replace(base=(BaseTerm("adapter:safety-lora", 1.0),))  # around the adapted model
    """

    direction: str
    coefficient: float = 1.0


@dataclass(frozen=True)
class Capability:
    """Capability controls scored at every point (docs/method.md section 6), on the
    same server right after the point's safety evaluation. ``mc_file``: MMLU-style questions
    (accuracy, %), the first ``shots`` are the few-shot examples and are not scored, then at most
    ``limit`` (0 = all) are. ``perplexity_file`` (one text per line, or JSONL with "text") or
    ``fluency`` (the built-in texts): perplexity. ``mc_format``: the MMLU prompt and answer
    letters, "harness" (lm-evaluation-harness's) or "reference" (the authors' code).

    Example::

        spec = preset("quick").replace(capability=Capability(fluency=True))  # perplexity at every point
    """

    mc_file: str = ""
    shots: int = 0
    limit: int = 0
    perplexity_file: str = ""
    fluency: bool = False
    mc_format: str = "harness"


@dataclass(frozen=True)
class SweepSpec:
    """A landscape sweep: the ``kind`` of landscape and its ``grid``, how directions are drawn, the
    prompts (and ``benign`` ones for over-refusal), fixed ``base`` terms, optional capability
    controls, the system prompts and chat format, the judge, and the generation. Start from
    :func:`preset` or a TOML file (:func:`load_spec`); ``replace`` changes fields.

    Example::

        spec = preset("quick").replace(name="quick-64", max_new_tokens=64)
        run = sweep_landscape(spec, out="runs/quick-64")
    """

    name: str = "sweep"
    kind: str = "1d-random"
    grid: Grid = field(default_factory=Grid)
    direction: DirectionRecipe = field(default_factory=DirectionRecipe)
    prompts: PromptSource = field(default_factory=PromptSource)
    benign: PromptSource | None = None
    base: tuple[BaseTerm, ...] = ()
    capability: Capability | None = None
    system_prompts: tuple[str, ...] = ("default",)  # presets, or texts no one could take for a mistyped preset
    system_prompt_texts: tuple[str, ...] = ()  # custom texts taken as given (e.g. one word)
    chat_format: str = "tokenizer"
    judge: str = "keyword"
    keywords: tuple[str, ...] = ()
    max_new_tokens: int = 128
    do_sample: bool = False
    sample_seed: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    early_stop: bool = True
    # The server's coherence referee (outcomes: refused / complied / incoherent); off: only the
    # paper's ASR is measured, cheaper (docs/performance.md), and `visage rejudge` adds the outcomes later.
    referee: bool = True
    points_per_call: int = 4  # most grid points a server takes from the queue at once

    @property
    def two_d(self) -> bool:
        return self.kind.startswith("2d")

    def replace(self, **changes: Any) -> SweepSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (stored as the sweep's metadata; ``spec_from_dict`` reads it back)."""
        return dataclasses.asdict(self)
