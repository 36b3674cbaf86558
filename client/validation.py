"""Type checks shared by the TOML loaders (sweep specs, gate configs): TOML's bool is not a number."""

from __future__ import annotations

import math
from typing import TypeGuard

__all__ = ["is_finite_number", "is_int"]


def is_int(x: object) -> TypeGuard[int]:
    return isinstance(x, int) and not isinstance(x, bool)


def is_finite_number(x: object) -> TypeGuard[int | float]:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
