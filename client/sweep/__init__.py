"""Landscape sweeps (client side, torch-free): specs, points, many servers, resume, summaries.

    from safety_landscape.client.sweep import preset, run_sweep, write_outputs
    from safety_landscape.client.store import ResultStore

    spec = preset("quick")
    with ResultStore("out/results.sqlite") as store:
        run_sweep(spec, store, targets=["10.0.0.1:50051", "10.0.0.2:50051"])
        write_outputs(Path("out"), store)    # summary.json (with "visage"), plots/, report.html

Modules: ``spec`` (SweepSpec, TOML, presets, validation), ``points`` (grid -> keyed points),
``fleet`` (targets, agreement checks, the worker pool with failover), ``runner`` (run_sweep,
progress), ``capability`` (MMLU accuracy / perplexity inputs scored at the same points),
``summary`` (VISAGE, capability, plots, report from the store alone). See docs/sweeps.md.
"""

from .capability import CapabilityMetric, load_capability
from .fleet import Fleet, ServerFacts, WorkerPool, expand_targets
from .points import ModelFacts, Plan, Point, build_plan
from .runner import Progress, ProgressBar, SweepResult, run_sweep
from .spec import (BaseTerm, Capability, DirectionRecipe, Grid, PromptSource, SpecError, SweepSpec, load_spec, preset,
                   spec_from_dict, validate)
from .summary import load_sweep, summarize_sweep, write_outputs

__all__ = [
    "BaseTerm", "Capability", "CapabilityMetric", "load_capability",
    "DirectionRecipe", "Fleet", "Grid", "ModelFacts", "Plan", "Point", "Progress", "ProgressBar", "PromptSource",
    "ServerFacts", "SpecError", "SweepResult", "SweepSpec", "WorkerPool", "build_plan", "expand_targets",
    "load_spec", "load_sweep", "preset", "run_sweep", "spec_from_dict", "summarize_sweep", "validate",
    "write_outputs",
]
