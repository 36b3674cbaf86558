#!/usr/bin/env bash
# The main job: start a server on the built-in default real model (smollm2-135m-instruct), run
# a quick 1D safety-landscape sweep on it, and leave a plot, an HTML report and a VISAGE score
# under runs/main/ (a few minutes on a 2-core CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
MODEL=${VISAGE_MODEL:-smollm2-135m-instruct}
OUT=${OUT:-runs/main}
mkdir -p "$OUT"
PORT_FILE="$OUT/server.port"
rm -f "$PORT_FILE"
.venv/bin/visage-server --model "$MODEL" --listen 127.0.0.1:0 --port-file "$PORT_FILE" \
  --log-format json 2>"$OUT/server.log" &
SERVER_PID=$!
trap 'kill -TERM $SERVER_PID 2>/dev/null; wait $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  [ -s "$PORT_FILE" ] && break
  kill -0 $SERVER_PID 2>/dev/null || { echo "server failed to start:"; cat "$OUT/server.log"; exit 1; }
  sleep 0.2
done
TARGET="127.0.0.1:$(cat "$PORT_FILE")"
echo "server on $TARGET (model $MODEL); waiting until it has loaded ..."
.venv/bin/python - "$TARGET" <<'PY'
import sys
from safety_landscape.client.client import Client
with Client(sys.argv[1]) as c:
    c.wait_until_serving(timeout=900)
PY
.venv/bin/visage info --server "$TARGET"
.venv/bin/visage sweep --preset quick --server "$TARGET" --out "$OUT"
echo
echo "plots:   $OUT/plots/"
echo "report:  $OUT/report.html"
.venv/bin/python - "$OUT/summary.json" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))
print("VISAGE:", json.dumps(summary["visage"], indent=2))
PY
