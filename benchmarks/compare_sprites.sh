#!/usr/bin/env bash
# The README's side-by-side Sprites comparison: factorised vs full q, the deterministic baselines
# (lstm-f, lstm-c) and the paper preset, each trained for the same wall-clock budget on this machine,
# one after another (never two at once on 2 cores), then scored by `dsae evaluate sprites` and
# `dsae evaluate predict`.
#
# Run:  MINUTES=6 bash benchmarks/compare_sprites.sh      (dsae on PATH; writes runs/cmp-*)
set -euo pipefail
cd "$(dirname "$0")/.."
M=${MINUTES:-6}
RUNS=${RUNS:-runs}
common=(--data sprites --minutes "$M" --steps 1000000 --eval-every 250 --checkpoint-every 500 --preview-every 0)
declare -A opts=([factorised]="" [full]="--posterior full" [lstm-f]="--dynamics lstm-f" [lstm-c]="--dynamics lstm-c" [paper]="--preset paper")
names=(factorised full lstm-f lstm-c paper)
models=()
for n in "${names[@]}"; do
  # shellcheck disable=SC2086
  [ -f "$RUNS/cmp-$n/model.safetensors" ] || dsae train "${common[@]}" --out "$RUNS/cmp-$n" ${opts[$n]} > "$RUNS/cmp-$n.log" 2>&1
  models+=(--model "$RUNS/cmp-$n")
done
# 3 repeats with fresh prior samples; 1 for the paper preset, whose decoder costs ~10x (CPU time)
for n in "${names[@]}"; do
  r=3; [ "$n" = paper ] && r=1
  dsae evaluate sprites --model "$RUNS/cmp-$n" --repeats "$r" --json > "$RUNS/cmp-$n.eval.json" 2> "$RUNS/cmp-$n.eval.log"
done
dsae evaluate predict "${models[@]}" --context 4 --repeats 1 --json > "$RUNS/cmp-predict.json" 2> "$RUNS/cmp-predict.log"
python -c "import json, sys; from dsae_cli.evaluation import prediction_report; rows = [json.loads(l) for l in open(sys.argv[1])]; print(prediction_report([(r['model'], r) for r in rows]))" "$RUNS/cmp-predict.json" > "$RUNS/cmp-predict.md"
echo "done: $RUNS/cmp-*.eval.json, $RUNS/cmp-predict.md"
