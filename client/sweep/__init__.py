"""Landscape sweeps (client side, torch-free): specs, points, many servers, resume, summaries.

    from safety_landscape.client.sweep import preset, run_sweep, write_outputs
    from safety_landscape.client.store import ResultStore

    spec = preset("quick")
    with ResultStore("out/results.sqlite") as store:
        run_sweep(spec, store, targets=["10.0.0.1:50051", "10.0.0.2:50051"])
        write_outputs(Path("out"), store)    # summary.json (with "visage"), plots/, report.html

A spec flows one way: ``spec`` (SweepSpec, TOML, presets, validation) -> ``resolve`` (its local
files read once: prompt files, ``capability`` inputs) -> ``points`` (the plan: keyed points) ->
``fleet`` (targets, agreement checks, the worker pool with failover; ``claims``: several
processes on one store split the tasks) -> ``runner`` (run_sweep: the order of all that, and the
records with their completions; ``planner`` names the points of each round: the full grid, or an
adaptive walk that skips the broken plateau), with ``progress`` for the bar. ``summary`` answers
from the store alone (VISAGE, capability, plots), ``intervals`` gives every number its 95 %
interval and ``report_page`` lays out report.html. See docs/sweeps.md and docs/statistics.md.
"""

from .capability import CapabilityMetric, load_capability
from .fleet import Fleet, ServerFacts, WorkerPool, expand_targets
from .points import ModelFacts, Plan, Point, build_plan
from .progress import Progress, ProgressBar
from .resolve import ResolvedSpec, resolve
from .runner import SweepResult, run_sweep
from .spec import (
                   BaseTerm,
                   Capability,
                   DirectionRecipe,
                   Grid,
                   PromptSource,
                   SpecError,
                   SweepSpec,
                   load_spec,
                   preset,
                   spec_from_dict,
                   validate,
)
from .summary import load_sweep, summarize_sweep, write_outputs

__all__ = [
    "BaseTerm", "Capability", "CapabilityMetric", "DirectionRecipe", "Fleet", "Grid", "ModelFacts", "Plan", "Point",
    "Progress", "ProgressBar", "PromptSource", "ResolvedSpec", "ServerFacts", "SpecError", "SweepResult", "SweepSpec",
    "WorkerPool", "build_plan", "expand_targets", "load_capability", "load_spec", "load_sweep", "preset", "resolve",
    "run_sweep", "spec_from_dict", "summarize_sweep", "validate", "write_outputs",
]
