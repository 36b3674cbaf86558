"""Read a prompt file on the client (its prompts are sent inline): the formats and checks of the
server's named sets, from the reader both sides share (:mod:`safety_landscape.common.prompt_files`).
"""

from __future__ import annotations

from pathlib import Path

from safety_landscape.common.prompt_files import PromptFileError, load_prompt_file

from .errors import ValidationError

__all__ = ["read_prompts"]


def read_prompts(path: str | Path, *, column: str | None = None) -> list[str]:
    """The prompts of a prompt file, in order; a bad or missing file is a ValidationError."""
    try:
        return list(load_prompt_file(path, column=column).prompts)
    except PromptFileError as exc:
        raise ValidationError(str(exc)) from exc
