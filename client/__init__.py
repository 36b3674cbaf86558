"""Torch-free client of the safety-landscape service: one server (:class:`Client`), request
builders, errors, sweep specs and the sweep runner, the result store, figures and comparisons,
and the release gate.

The public API is what this module exports (``__all__``); every name documents an example. The
server is the one given, else ``VISAGE_SERVER``; the token the one given, else ``VISAGE_TOKEN``,
else the file named by ``VISAGE_TOKEN_FILE``.

Example::

    from safety_landscape.client import Client, load_run, sweep_landscape

    with Client("127.0.0.1:50051") as c:
        print(c.info().model_name)
        print(c.evaluate(prompt_set="harmful-mini", limit=8, max_new_tokens=32).asr)
    run = sweep_landscape(server="127.0.0.1:50051", preset="quick", out="runs/quick")
    points, visage = run.frame(), run.visage        # a DataFrame (pandas), VISAGE
    run = load_run("runs/quick")                    # the same folder, read back later

Submodules are implementation detail unless they are named here. Names load on first use, so
``import safety_landscape.client`` (and ``visage --help``) does not import grpc or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .builders import (
        adapter_direction,
        chat_format,
        evaluation_settings,
        generation,
        interpolation_direction,
        perturbation,
        random_direction,
        system_prompt,
    )
    from .call_results import Evaluation, Generation, PointEvaluation, PromptSetInfo, Scores, WeightState
    from .client import Client, Timeouts, TlsConfig
    from .compare import Run, load_run, write_comparison
    from .errors import (
        CancelledError,
        DeadlineExceededError,
        FailedPreconditionError,
        FleetError,
        InternalError,
        InvalidArgumentError,
        NotFoundError,
        PermissionDeniedError,
        ResourceExhaustedError,
        RpcFailed,
        StoreError,
        UnauthenticatedError,
        UnavailableError,
        ValidationError,
        VisageError,
    )
    from .gate import run_gate
    from .landscape import sweep_landscape
    from .plots import figure_1d, figure_side_by_side, figures_2d, save_figure
    from .records import Completion, PointDetail, PointRecord, Series
    from .server_state import DirectionInfo, DirectionList, RegistryEntry, ServerInfo
    from .store import ResultStore
    from .sweep import (
        BaseTerm,
        Capability,
        DirectionRecipe,
        Grid,
        PromptSource,
        SpecError,
        SweepResult,
        SweepSpec,
        load_spec,
        preset,
        run_sweep,
        spec_from_dict,
    )

# name -> the submodule that defines it (imported on first use of the name).
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("Client", "Timeouts", "TlsConfig"), ".client"),
    **dict.fromkeys(("adapter_direction", "chat_format", "evaluation_settings", "generation", "interpolation_direction",
                     "perturbation", "random_direction", "system_prompt"), ".builders"),
    **dict.fromkeys(("CancelledError", "DeadlineExceededError", "FailedPreconditionError", "FleetError", "InternalError",
                     "InvalidArgumentError", "NotFoundError", "PermissionDeniedError", "ResourceExhaustedError",
                     "RpcFailed", "StoreError", "UnauthenticatedError", "UnavailableError", "ValidationError", "VisageError"),
                   ".errors"),
    **dict.fromkeys(("Completion", "PointDetail", "PointRecord", "Series"), ".records"),
    **dict.fromkeys(("Evaluation", "Generation", "PointEvaluation", "PromptSetInfo", "Scores", "WeightState"),
                   ".call_results"),
    **dict.fromkeys(("DirectionInfo", "DirectionList", "RegistryEntry", "ServerInfo"), ".server_state"),
    "ResultStore": ".store",
    **dict.fromkeys(("BaseTerm", "Capability", "DirectionRecipe", "Grid", "PromptSource", "SpecError", "SweepResult",
                     "SweepSpec", "load_spec", "preset", "run_sweep", "spec_from_dict"), ".sweep"),
    "run_gate": ".gate",
    **dict.fromkeys(("figure_1d", "figure_side_by_side", "figures_2d", "save_figure"), ".plots"),
    **dict.fromkeys(("Run", "load_run", "write_comparison"), ".compare"),
    "sweep_landscape": ".landscape",
}

__all__ = [
    "BaseTerm",
    "CancelledError",
    "Capability",
    "Client",
    "Completion",
    "DeadlineExceededError",
    "DirectionInfo",
    "DirectionList",
    "DirectionRecipe",
    "Evaluation",
    "FailedPreconditionError",
    "FleetError",
    "Generation",
    "Grid",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "PointDetail",
    "PointEvaluation",
    "PointRecord",
    "PromptSetInfo",
    "PromptSource",
    "RegistryEntry",
    "ResourceExhaustedError",
    "ResultStore",
    "RpcFailed",
    "Run",
    "Scores",
    "Series",
    "ServerInfo",
    "SpecError",
    "StoreError",
    "SweepResult",
    "SweepSpec",
    "Timeouts",
    "TlsConfig",
    "UnauthenticatedError",
    "UnavailableError",
    "ValidationError",
    "VisageError",
    "WeightState",
    "adapter_direction",
    "chat_format",
    "evaluation_settings",
    "figure_1d",
    "figure_side_by_side",
    "figures_2d",
    "generation",
    "interpolation_direction",
    "load_run",
    "load_spec",
    "perturbation",
    "preset",
    "random_direction",
    "run_gate",
    "run_sweep",
    "save_figure",
    "spec_from_dict",
    "sweep_landscape",
    "system_prompt",
    "write_comparison",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
