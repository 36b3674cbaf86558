#!/usr/bin/env bash
# Stage 1a: the four finetuning attacks (Table 1). Wall times go to runs/repro/times.txt.
# As run for docs/reproduction.md: attack-10 and attack-50 at the recipe's defaults (5 epochs,
# lr 5e-5, batch 10); attack-100 and attack-mix cut to 1 epoch (10 and 20 steps) for CPU time
# (one optimiser step of batch 10 took ~20-40 s on the shared 2-core machine); then, in a second
# session, attack-100-e5 and attack-mix-e5 at the defaults (5 epochs: 50 and 100 steps, ~10 and
# ~13 minutes on the idle machine). Evaluate with: run.sh eval runs/attack-100-e5 runs/attack-mix-e5
# ADV: AdvBench's harmful_behaviors.csv (see run.sh); default: the copy the repository ships.
set -euo pipefail
ADV=${ADV:-$(dirname "$0")/../../server/data/advbench/harmful_behaviors.csv}
ADV=$(realpath "$ADV")   # the script works from the repository root
cd "$(dirname "$0")/../.."
. .venv/bin/activate
mkdir -p runs/repro
for spec in "10 attack-10" "50 attack-50" "100 attack-100 --epochs 1" "100 attack-mix --mix-safe 100 --epochs 1" \
    "100 attack-100-e5" "100 attack-mix-e5 --mix-safe 100"; do
  set -- $spec; n=$1; out=$2; shift 2
  [ -f runs/$out/recipe.json ] && continue   # already trained
  t0=$(date +%s)
  python recipes/finetune_attack.py --aligned runs/aligned --advbench $ADV --cache-dir runs/cache \
    --shots $n "$@" --out runs/$out > runs/repro/$out.log 2>&1
  echo "$out train_wall_s $(( $(date +%s) - t0 ))" >> runs/repro/times.txt
done
