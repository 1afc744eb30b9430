#!/usr/bin/env bash
# The README's side-by-side Sprites comparison: factorised vs full q, the deterministic baselines
# (lstm-f, lstm-c) and the paper recipe, each trained for the same wall-clock budget on this machine,
# one after another (never two at once on 2 cores), then scored by `dsae evaluate sprites` and
# `dsae evaluate predict`.
#
# The first four train the `sprites` recipe's model on the paper's ELBO alone: the recipe's first
# stage, written out as runs/cmp-elbo.toml (its second stage adds the latent cycle term, which is not
# in the paper), with `--set model.posterior=full` / `--set model.dynamics=lstm-f|lstm-c` for the
# variants; the fifth is `--recipe paper`. `dsae train` fits p(f) at the end of every run, so
# `dsae evaluate sprites` scores the action test twice: f ~ N(0, I) (action_standard, the papers'
# protocol) and f ~ the fitted p(f) (action_fitted). The summary labels every row with its p(f).
#
# Run:  MINUTES=6 bash benchmarks/compare_sprites.sh      (dsae on PATH; writes runs/cmp-*)
#       SPLIT=val to score on the 50 held-out training characters instead of the test set
set -euo pipefail
cd "$(dirname "$0")/.."
M=${MINUTES:-6}
RUNS=${RUNS:-runs}
SPLIT=${SPLIT:-test}
mkdir -p "$RUNS"
ELBO="$RUNS/cmp-elbo.toml"
python - "$ELBO" <<'EOF'
import json, sys
from dsae_cli.train.recipes import load_recipe

r = load_recipe("sprites")
stage = r.stages[0]
lines = ['description = "The sprites recipe\'s model and first stage: the paper\'s ELBO alone"', 'data = "sprites"', "", "[model]"]
lines += [f"{k} = {json.dumps(v)}" for k, v in {**r.model, **stage["model"]}.items()]
lines += ["", "[[train]]"] + [f"{k} = {json.dumps(v)}" for k, v in stage.items() if k != "model"]
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
EOF
common=(--data sprites --minutes "$M" --steps 1000000 --eval-every 250 --checkpoint-every 500 --preview-every 0)
declare -A opts=(
  [factorised]="--recipe $ELBO"
  [full]="--recipe $ELBO --set model.posterior=full"
  [lstm-f]="--recipe $ELBO --set model.dynamics=lstm-f"
  [lstm-c]="--recipe $ELBO --set model.dynamics=lstm-c"
  [paper]="--recipe paper"
)
names=(factorised full lstm-f lstm-c paper)
models=()
for n in "${names[@]}"; do
  # shellcheck disable=SC2086
  [ -f "$RUNS/cmp-$n/model.safetensors" ] || dsae train "${common[@]}" --out "$RUNS/cmp-$n" ${opts[$n]} > "$RUNS/cmp-$n.log" 2>&1
  models+=(--model "$RUNS/cmp-$n")
done
# 3 repeats with fresh prior samples; 1 for the paper recipe, whose decoder costs ~10x (CPU time)
for n in "${names[@]}"; do
  r=3; [ "$n" = paper ] && r=1
  dsae evaluate sprites --model "$RUNS/cmp-$n" --split "$SPLIT" --repeats "$r" --json > "$RUNS/cmp-$n.eval.json" 2> "$RUNS/cmp-$n.eval.log"
done
# `dsae evaluate predict` always scores the test split
dsae evaluate predict "${models[@]}" --context 4 --repeats 1 --json > "$RUNS/cmp-predict.json" 2> "$RUNS/cmp-predict.log"
python -c "import json, sys; from dsae_cli.evaluate.report import prediction_report; rows = [json.loads(l) for l in open(sys.argv[1])]; print(prediction_report([(r['model'], r) for r in rows]))" "$RUNS/cmp-predict.json" > "$RUNS/cmp-predict.md"
# one row per model and p(f): the action test's four numbers under N(0, I) and under the fitted p(f)
python - "$RUNS" "${names[@]}" > "$RUNS/cmp-sprites.md" <<'EOF'
import json, sys
from pathlib import Path

runs, names = Path(sys.argv[1]), sys.argv[2:]


def pct(ms):
    return f"{100 * ms['mean']:.2f} % ± {100 * ms['std']:.2f}"


def num(ms):
    return f"{ms['mean']:.3f} ± {ms['std']:.3f}"


results = {n: json.loads((runs / f"cmp-{n}.eval.json").read_text().strip().splitlines()[-1]) for n in names}
split = next(iter(results.values())).get("split", "test")
print(f"Action test on the Sprites {split} split (z_1:T kept, f drawn from p(f))\n")
print("| model | p(f) | Acc | IS | H(y\\|x) | H(y) |")
print("|---|---|---|---|---|---|")
for n, r in results.items():
    for label, key in (("N(0, I) (the papers' protocol)", "action_standard"), ("fitted p(f)", "action_fitted")):
        a = r.get(key)
        if a is not None:
            print(f"| {n} | {label} | {pct(a['acc'])} | {num(a['is'])} | {num(a['h_yx'])} | {num(a['h_y'])} |")
print(f"\nSwaps (f of a, z_1:T of b), static test (f kept, z_1:T ~ prior) and reconstructions ({split} split)\n")
print("| model | swap: all four | swap: action | f kept, z ~ prior: all four | recon: action |")
print("|---|---|---|---|---|")
for n, r in results.items():
    print(f"| {n} | {pct(r['swap']['all'])} | {pct(r['swap']['action'])} | {pct(r['static_acc']['all'])} | {pct(r['recon_acc']['action'])} |")
EOF
echo "done: $RUNS/cmp-*.eval.json, $RUNS/cmp-sprites.md, $RUNS/cmp-predict.md"
