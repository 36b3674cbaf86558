"""``python -m safety_landscape.client.cli``: the ``visage`` command (importing this module runs nothing)."""

import sys

from . import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
