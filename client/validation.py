"""Type checks shared by the TOML loaders (sweep specs, gate configs): TOML's bool is not a number."""

from __future__ import annotations

import math
from typing import Any


def is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def is_finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
