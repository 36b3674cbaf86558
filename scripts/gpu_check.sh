#!/usr/bin/env bash
# The one prepared GPU check: on a machine with one NVIDIA GPU and no network, this measures
# everything a GPU can tell us (the gpu-marked tests, the 8B-shape paper workload cut to fit, the
# memory plan against torch.cuda) within 10 minutes and writes every figure to ONE JSON file,
# OUT/gpu_check.json. What each stage runs and the exit codes: bench/gpu_check.py's docstring;
# how to read the figures: docs/performance.md, "The GPU check".
#
#   scripts/gpu_check.sh [--out DIR] [--dry-run] [...]   # OUT: --out, else $OUT, else runs/gpu-check
#   scripts/gpu_check.sh --fetch-wheels                 # on a machine WITH network: fill .whl/
#
# No install is needed: the package is read from this checkout (laid out as links under a
# temporary folder, as scripts/lint.sh does). Python: $PYTHON, else .venv/bin/python, else python3.
# Packages a bare GPU image lacks travel as wheels in .whl/ (ignored by git): when the folder
# holds any, bench/gpu_check.py installs them into a temporary folder first (no index, no network).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# Pinned as constraints.txt pins them; what the GPU image (docs/performance.md) lacks or has older.
WHEELS=(grpcio grpcio-health-checking grpcio-reflection protobuf structlog tenacity)

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

if [ "${1:-}" = "--fetch-wheels" ]; then
  # For the GPU image's Python (GPU_PYTHON_VERSION, default 3.12) on x86-64 Linux.
  mkdir -p .whl
  for name in "${WHEELS[@]}"; do
    pin=$(grep -i "^${name}==" constraints.txt) || { echo "gpu_check: $name is not pinned in constraints.txt" >&2; exit 2; }
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "${GPU_PYTHON_VERSION:-3.12}" \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
      -d .whl "$pin"
  done
  ls .whl
  exit 0
fi

TREE=$(mktemp -d)
trap 'rm -rf "$TREE"' EXIT
mkdir -p "$TREE/safety_landscape"
for entry in __init__.py py.typed v1; do
  ln -s "$ROOT/protos/safety_landscape/$entry" "$TREE/safety_landscape/$entry"
done
for part in client server common; do
  ln -s "$ROOT/$part" "$TREE/safety_landscape/$part"
done
export PYTHONPATH="$TREE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" bench/gpu_check.py "$@"
