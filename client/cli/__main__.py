"""``python -m safety_landscape.client.cli``: the ``visage`` command."""

import sys

from . import main

sys.exit(main())
