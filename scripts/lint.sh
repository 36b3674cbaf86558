#!/usr/bin/env bash
# Lint (ruff: rules and import order) and type-check (mypy, strict) the project. Run by
# scripts/test.sh before the tests; needs the .venv that scripts/setup.sh makes.
# `scripts/lint.sh ruff` or `scripts/lint.sh mypy` runs one of the two.
#
# mypy reads server/ and client/ as the package they are installed as (safety_landscape.server,
# safety_landscape.client): the import root is spread over three folders (pyproject.toml's
# package-dir), so it is laid out here as links under a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WHAT=${1:-all}
status=0
if [ "$WHAT" != mypy ]; then
  .venv/bin/ruff check . || status=1
fi
[ "$WHAT" != ruff ] || exit $status
TREE=$(mktemp -d)
trap 'rm -rf "$TREE"' EXIT
mkdir -p "$TREE/safety_landscape"
for entry in __init__.py py.typed v1; do
  ln -s "$ROOT/protos/safety_landscape/$entry" "$TREE/safety_landscape/$entry"
done
for part in client server common; do
  [ -d "$ROOT/$part" ] && ln -s "$ROOT/$part" "$TREE/safety_landscape/$part"
done
packages=()
for part in client server common; do
  [ -d "$ROOT/$part" ] && packages+=(-p "safety_landscape.$part")
done
(cd "$TREE" && MYPYPATH="$TREE" "$ROOT/.venv/bin/mypy" --config-file "$ROOT/pyproject.toml" \
  --cache-dir "$ROOT/.mypy_cache" "${packages[@]}") || status=1
exit $status
