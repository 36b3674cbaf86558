#!/usr/bin/env bash
# The main job: a safety basin, shown. One server on the built-in model smollm2-135m-instruct with
# the safety-tuning LoRA adapter that ships with the project registered
# (recipes/adapters/registry.toml; made by recipes/safety_tune.py, see recipes/README.md). Two 1D
# random-direction sweeps on AdvBench's first 40 rows (the built-in set advbench), the same
# direction and grid: the original model (theta0) and the safety-tuned one (theta0 + the adapter
# at 1.0, `--base adapter:safety-tuned=1.0`). Then `visage compare` writes a report whose first
# figure puts the tuned model's basin beside the original's plateau, and prints ASR at the
# origin and VISAGE of both. Everything lands under runs/main/ (a few minutes on 2 CPU cores); a
# second run reuses every stored point.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
MODEL=smollm2-135m-instruct   # the adapter is made for this model (its deltas fit no other)
ADAPTER=safety-tuned          # its name in recipes/adapters/registry.toml
OUT=${OUT:-runs/main}
mkdir -p "$OUT"
PORT_FILE="$OUT/server.port"
rm -f "$PORT_FILE"
.venv/bin/visage-server --model "$MODEL" --registry recipes/adapters/registry.toml \
  --listen 127.0.0.1:0 --port-file "$PORT_FILE" --log-format json 2>"$OUT/server.log" &
SERVER_PID=$!
trap 'kill -TERM $SERVER_PID 2>/dev/null; wait $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  [ -s "$PORT_FILE" ] && break
  kill -0 $SERVER_PID 2>/dev/null || { echo "server failed to start:"; cat "$OUT/server.log"; exit 1; }
  sleep 0.2
done
TARGET="127.0.0.1:$(cat "$PORT_FILE")"
echo "server on $TARGET (model $MODEL, adapter $ADAPTER); waiting until it has loaded ..."
.venv/bin/visage info --server "$TARGET" --wait 900

# One random direction (the quick preset's: reference stream, seed 123), 9 points over
# [-0.2, 0.2] (the tuned model's basin is about 0.2 wide: docs/reproduction.md section 2),
# AdvBench rows 1-40, greedy, 48 new tokens; over-refusal on benign-mini (16) at the origin.
SWEEP=(--preset quick --set advbench --limit 40 --points 9 --range -0.2 0.2 --benign-at origin
       --server "$TARGET")
.venv/bin/visage sweep "${SWEEP[@]}" --name original --out "$OUT/original"
.venv/bin/visage sweep "${SWEEP[@]}" --name safety-tuned --base "adapter:$ADAPTER=1.0" --out "$OUT/safety-tuned"
echo
.venv/bin/visage compare "$OUT/original" "$OUT/safety-tuned" \
  --label "original" --label "safety-tuned (LoRA adapter)" --format png --format svg --out "$OUT/report"
echo "first figure: $OUT/report/compare_asr_1d.png"
