"""From a ``ServerConfig`` to a ready ``Engine``: check everything before listening, build after.

``check_config`` is fast and runs before the server listens (a typo in --model, a missing
prompt file or a memory plan that does not fit is an exit code, not a crash loop);
``build_engine_factory`` returns the slow part. ``plan_for_config`` makes the memory plan
(``engine/memory_plan.py``) from the model's config on the meta device, or, for a GGUF file
(whose config is slow to read), from the loaded model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import structlog

from .candidates.roots import CandidateRoots
from .config import ServerConfig
from .config_parser import check_values
from .engine.engine import Engine
from .engine.memory_plan import MemoryPlan, PlanSettings, geometry, plan_memory, refuse_unless_fits
from .engine.prompts import PromptSet, PromptSetRegistry, Replacement, load_prompt_file, server_prompt_sets
from .models.host_memory import return_large_frees
from .models.loading import LoadedModel, ModelSource, load_model, resolve_device, resolve_dtype, resolve_model
from .models.placement import DEVICE_MAP_STRATEGIES, DeviceSpace, host_space, read_device_map, visible_devices
from .models.shapes import meta_model, model_config
from .registry import ModelRegistry, RegistryFile


def _prompt_sets(config: ServerConfig) -> tuple[list[PromptSet], list[Replacement]]:
    """The built-in sets and the operator's (one named like a built-in replaces it: engine/prompts.py)."""
    sets = []
    for name, spec in config.prompt_sets:
        path, kind = spec, "harmful"
        head, sep, tail = spec.rpartition(":")
        if sep and tail in ("harmful", "benign"):
            path, kind = head, tail
        sets.append(load_prompt_file(path, name=name, kind=kind))
    return server_prompt_sets(sets)


def check_config(config: ServerConfig) -> ModelSource:
    """Everything that can fail before listening: the settings' bounds, the model and judge names,
    the registry, the candidate roots, the prompt files, TLS, the memory plan; raises a ``LandscapeError`` or
    ``ValueError`` saying which. Returns where the model will be read from."""
    check_values(config)
    source = resolve_model(config.model, config.revision)
    if config.judge_model:
        resolve_model(config.judge_model)
    if config.registry:
        ModelRegistry.from_file(config.registry)
    CandidateRoots(config.candidates.roots)  # each root must be a folder
    PromptSetRegistry(_prompt_sets(config)[0])
    if bool(config.tls_cert) != bool(config.tls_key):
        raise ValueError("TLS needs both --tls-cert and --tls-key")
    plan = plan_for_config(config, slow=False)
    if plan is not None and config.memory_check:
        refuse_unless_fits(plan)
    return source


def plan_for_config(config: ServerConfig, *, loaded: LoadedModel | None = None, slow: bool = True) -> MemoryPlan | None:
    """The memory plan of ``config``; None for a GGUF model before loading unless ``slow``. With
    ``loaded``, the plan of that model (where it came from is its own ``source``)."""
    source = loaded.source if loaded is not None else resolve_model(config.model, config.revision)
    if loaded is None and source.kind == "gguf" and not slow:
        return None
    dtype = resolve_dtype(config.dtype, resolve_device(config.device))
    model_cfg = loaded.model.config if loaded is not None else model_config(source)
    model = loaded.model if loaded is not None else meta_model(model_cfg, dtype)
    limits = config.limits
    settings = PlanSettings(
        dtype=dtype, max_batch_size=limits.max_batch_size, max_prompt_tokens=limits.max_prompt_tokens,
        max_new_tokens=limits.max_new_tokens, max_directions=limits.max_directions, storage=config.direction_storage,
        pristine=config.pristine, checkpoint=source.kind == "hf-dir",
    )
    spaces = visible_devices(config.device, several=bool(config.device_map))
    strategy = config.device_map if config.device_map in DEVICE_MAP_STRATEGIES else ""
    given = read_device_map(Path(config.device_map)) if config.device_map and not strategy else None
    if loaded is not None:  # planned after loading: what the model took was free before
        held = {d: sum(p.numel() * p.element_size() for p in loaded.model.parameters() if str(p.device) == d)
                for d in loaded.devices}
        spaces = [DeviceSpace(d.name, d.capacity + held.get(d.name, 0)) for d in spaces]
        given = loaded.device_map or {"": str(loaded.device)}
    return plan_memory(geometry(model, model_cfg, dtype), settings, spaces, host_space(),
                       strategy=strategy, device_map=given, model=model)


def load_planned(config: ServerConfig) -> tuple[LoadedModel, MemoryPlan]:
    """Load the model where its plan puts it; a GGUF model is planned once loaded (refused then
    when ``memory_check`` and it does not fit). Freed tensors go back to the system from here on
    (``return_large_frees``), so a sweep's host memory stays near the plan."""
    return_large_frees()
    plan = plan_for_config(config, slow=False)
    device_map = plan.device_map if plan is not None and len(set(plan.device_map.values())) > 1 else None
    source = resolve_model(config.model, config.revision)
    loaded = load_model(source, device=config.device, dtype=config.dtype, device_map=device_map)
    if plan is None:
        plan = plan_for_config(config, loaded=loaded)
        assert plan is not None
        if config.memory_check:
            refuse_unless_fits(plan)
    return loaded, plan


def planned_engine(config: ServerConfig, loaded: LoadedModel, plan: MemoryPlan) -> Engine:
    """The engine of a loaded model, with the plan's storage and place of theta0."""
    sets, replaced = _prompt_sets(config)
    log = structlog.get_logger("safety_landscape.server")
    for r in replaced:  # the operator's file wins over the built-in set of its name; said once, here
        (log.info if r.same_prompts else log.warning)(
            "an operator prompt set replaces the built-in set of the same name", prompt_set=r.name,
            same_prompts=r.same_prompts, builtin_sha256=r.builtin_sha256, served_sha256=r.operator_sha256)
    classifier = None
    if config.judge_model:
        classifier = load_model(resolve_model(config.judge_model), device=config.device, dtype=config.dtype)
    return Engine(
        loaded,
        limits=config.limits,
        direction_storage=plan.storage,
        pristine=plan.pristine,
        registry=RegistryFile(config.registry) if config.registry else None,
        prompt_sets=PromptSetRegistry(sets),
        classifier=classifier,
        classifier_format=config.judge_format,
        judge_threshold=config.judge_threshold,
        model_name=config.model_name,
        memory_plan=plan,
        candidates=config.candidates,
    )


def build_engine_factory(config: ServerConfig) -> Callable[[], Engine]:
    def build() -> Engine:
        loaded, plan = load_planned(config)
        return planned_engine(config, loaded, plan)

    return build
