"""Read a prompt file on the client (sent inline): the same formats and checks as the server's
named sets, by reusing the server's pure-Python reader (``server.engine.prompts`` needs no torch).
"""

from __future__ import annotations

from pathlib import Path

from .errors import ValidationError


def read_prompts(path: str | Path, *, column: str | None = None) -> list[str]:
    from safety_landscape.server.engine.prompts import load_prompt_file
    from safety_landscape.server.errors import LandscapeError

    try:
        return list(load_prompt_file(path, column=column).prompts)
    except LandscapeError as exc:
        raise ValidationError(str(exc)) from exc
