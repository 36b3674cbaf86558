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
adaptive walk that skips the broken plateau), with ``progress`` for the bar. From the store alone:
``stored`` reads a sweep back, ``summary`` computes its answers (VISAGE, capability; the document
``summary_doc``) with ``intervals`` giving every number its 95 % interval, ``figures`` draws the
plots, ``page`` lays out report.html and ``output_folder`` writes all three. See docs/sweeps.md and
docs/statistics.md.
"""

from .capability import CapabilityMetric, load_capability
from .fleet import Fleet, ServerFacts, WorkerPool, expand_targets
from .output_folder import write_outputs
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
from .stored import load_sweep
from .summary import summarize_sweep

__all__ = [
    "BaseTerm", "Capability", "CapabilityMetric", "DirectionRecipe", "Fleet", "Grid", "ModelFacts", "Plan", "Point",
    "Progress", "ProgressBar", "PromptSource", "ResolvedSpec", "ServerFacts", "SpecError", "SweepResult", "SweepSpec",
    "WorkerPool", "build_plan", "expand_targets", "load_capability", "load_spec", "load_sweep", "preset", "resolve",
    "run_sweep", "spec_from_dict", "summarize_sweep", "validate", "write_outputs",
]
