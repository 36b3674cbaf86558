#!/usr/bin/env bash
# Reproduction driver (docs/reproduction.md). One server at a time, one heavy job at a time.
#   examples/reproduction/attacks.sh            # stage 1a: the four finetuning attacks
#   examples/reproduction/run.sh eval MODEL...   # stage 1b: ASR (AdvBench 1-80) + over-refusal at the origin
#   examples/reproduction/run.sh sweep MODEL "SPEC OUT [flags]" ...   # stages 2-5 (one server, several sweeps)
# MODEL: smollm2-135m-instruct or a runs/ checkpoint directory. Output: runs/repro/.
# ADV: AdvBench's harmful_behaviors.csv (llm-attacks repository, MIT licence); default: the copy
#   the repository ships (server/data/advbench/harmful_behaviors.csv, docs/method.md section 3)
set -euo pipefail
ADV=${ADV:-$(dirname "$0")/../../server/data/advbench/harmful_behaviors.csv}
ADV=$(realpath "$ADV")   # the script works from the repository root
cd "$(dirname "$0")/../.."
. .venv/bin/activate
R=runs/repro
mkdir -p $R
SERVER_PID=""

serve() {  # serve MODEL [server flags]; sets S
  local model=$1; shift
  rm -f $R/server.port
  visage-server --model "$model" --listen 127.0.0.1:0 --port-file $R/server.port \
    --prompt-set advbench=$ADV "$@" --log-format json 2>$R/server-$(basename $model).log &
  SERVER_PID=$!
  for _ in $(seq 1 1500); do [ -s $R/server.port ] && break; sleep 0.2; done
  S=127.0.0.1:$(cat $R/server.port)
  python -c "
import sys
from safety_landscape.client.client import Client
with Client(sys.argv[1]) as c: c.wait_until_serving(timeout=900)" $S
}
stop() { [ -n "$SERVER_PID" ] && kill -TERM $SERVER_PID && wait $SERVER_PID || true; SERVER_PID=""; }
trap stop EXIT

case $1 in
eval)
  shift
  for model in "$@"; do
    name=$(basename $model); t0=$(date +%s)
    serve $model
    echo "$name load_s $(( $(date +%s) - t0 ))" >> $R/times.txt
    t1=$(date +%s)
    visage --json evaluate --server $S --set advbench --limit 80 --max-new-tokens 48 > $R/eval-$name-advbench.json
    t2=$(date +%s)
    visage --json evaluate --server $S --set benign-mini --max-new-tokens 48 > $R/eval-$name-benign.json
    t3=$(date +%s)
    echo "$name advbench_s $((t2 - t1)) benign_s $((t3 - t2))" >> $R/times.txt
    stop
  done ;;
sweep)
  # run.sh sweep MODEL "SPEC OUT [flags]" ["SPEC OUT [flags]" ...]: one server, several sweeps
  model=$2; shift 2
  t0=$(date +%s)
  serve $model --registry examples/reproduction/registry.toml
  echo "$(basename $model) load_s $(( $(date +%s) - t0 ))" >> $R/times.txt
  for job in "$@"; do
    set -- $job; spec=$1; out=$2; shift 2
    t1=$(date +%s)
    visage sweep $spec --server $S --out $out --no-progress "$@" 2>&1 | tee $out.log
    echo "$(basename $out) sweep_s $(( $(date +%s) - t1 ))" >> $R/times.txt
  done
  ;;
esac
