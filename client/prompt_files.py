"""Read a prompt file on the client (its prompts are sent inline): the formats and checks of the
server's named sets, from the reader both sides share (:mod:`safety_landscape.common.prompt_files`).
What the reader flags (HarmBench copyright behaviours, ignored system turns) is logged as a
warning (stderr), so a user sees it before trusting the verdicts.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from safety_landscape.common.prompt_files import PromptFileError, load_prompt_file

from .errors import ValidationError

__all__ = ["read_prompts"]

log = structlog.get_logger("safety_landscape.client")


def read_prompts(path: str | Path, *, column: str | None = None) -> list[str]:
    """The prompts of a prompt file, in order; a bad or missing file is a ValidationError."""
    try:
        prompts = load_prompt_file(path, column=column)
    except PromptFileError as exc:
        raise ValidationError(str(exc)) from exc
    for warning in prompts.warnings:
        log.warning(warning, prompt_file=str(path))
    return list(prompts.prompts)
