"""From a ``ServerConfig`` to a ready ``Engine``: check everything before listening, build after.

``check_config`` is fast and runs before the server listens (a typo in --model or a missing
prompt file is an exit code, not a crash loop); ``build_engine_factory`` returns the slow part.
"""

from __future__ import annotations

from collections.abc import Callable

from .config import ServerConfig
from .engine.engine import Engine
from .engine.prompts import PromptSet, PromptSetRegistry, builtin_prompt_sets, load_prompt_file
from .models.loading import load_model, resolve_model
from .registry import ModelRegistry
from .settings import check_values


def _prompt_sets(config: ServerConfig) -> list[PromptSet]:
    sets = list(builtin_prompt_sets().values())
    for name, spec in config.prompt_sets:
        path, kind = spec, "harmful"
        head, sep, tail = spec.rpartition(":")
        if sep and tail in ("harmful", "benign"):
            path, kind = head, tail
        sets.append(load_prompt_file(path, name=name, kind=kind))
    return sets


def check_config(config: ServerConfig) -> None:
    """Everything that can fail before listening: the settings' bounds, the model and judge names,
    the registry, the prompt files, TLS; raises a ``LandscapeError`` or ``ValueError`` saying which."""
    check_values(config)
    resolve_model(config.model)
    if config.judge_model:
        resolve_model(config.judge_model)
    if config.registry:
        ModelRegistry.from_file(config.registry)
    PromptSetRegistry(_prompt_sets(config))
    if bool(config.tls_cert) != bool(config.tls_key):
        raise ValueError("TLS needs both --tls-cert and --tls-key")


def build_engine_factory(config: ServerConfig) -> Callable[[], Engine]:
    def build() -> Engine:
        loaded = load_model(resolve_model(config.model), device=config.device, dtype=config.dtype)
        classifier = None
        if config.judge_model:
            classifier = load_model(resolve_model(config.judge_model), device=config.device, dtype=config.dtype)
        return Engine(
            loaded,
            limits=config.limits,
            direction_storage=config.direction_storage,
            registry=ModelRegistry.from_file(config.registry) if config.registry else None,
            prompt_sets=PromptSetRegistry(_prompt_sets(config)),
            classifier=classifier,
        )

    return build
