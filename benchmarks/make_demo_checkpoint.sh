#!/usr/bin/env bash
# Reproduce the GNR checkpoint `bench demo` ships (methods/weights/gnr-demo/): the demo's seed-0 synthetic people,
# preset cpu-smoke (bench's recipe), 2000 CPU steps on one torch thread (deterministic for a fixed thread count),
# then the weights without optimiser state + config + provenance.json (bench.methods.gnr_demo).
# Usage: benchmarks/make_demo_checkpoint.sh [DATA] [RUNS] [OUT]     (~15-30 min on 2 cores)
set -euo pipefail
DATA=${1:-data/genebody-synth}
RUNS=${2:-runs}
OUT=${3:-methods/weights/gnr-demo}
[ -f "$DATA/bench-info.json" ] || bench data synth --out "$DATA" --subjects 4 --test-subjects 1 --frames 2 \
  --cameras 48 --width 612 --height 512 --seed 0
# the shipped file was made at commit 68f765f, when cpu-smoke had lr 4e-3 and no sigma_bias: pinned here
CMD=(bench run -m gnr --dataset genebody --root "$DATA" --preset cpu-smoke --set lr=0.004 --set sigma_bias=0
     --iterations 2000 --threads 1 --executor inline --run demo-ckpt --output "$RUNS")
"${CMD[@]}"
python -m bench.methods.gnr_demo "$RUNS/demo-ckpt/gnr/genebody/train" "$OUT" "${CMD[*]}"
