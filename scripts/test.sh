#!/usr/bin/env bash
# The test suite: set up .venv if needed, lint and type-check (scripts/lint.sh: ruff, strict
# mypy), then pytest (CPU, no network, no GPU; slow real-model tests are opt-in with:
# scripts/test.sh -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/lint.sh
exec .venv/bin/python -m pytest "$@"
