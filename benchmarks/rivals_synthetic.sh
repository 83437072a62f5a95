#!/usr/bin/env bash
# Benchmark (not a test): every method on the synthetic GeneBody set after the same CPU training budget,
# in one `bench report` table. Usage: benchmarks/rivals_synthetic.sh [ITERATIONS] [DATA] [RUNS]
set -euo pipefail
ITER=${1:-300}
DATA=${2:-data/genebody-synth}
RUNS=${3:-runs}
[ -f "$DATA/bench-info.json" ] || bench data synth --out "$DATA"
# one test frame (frame_step 4 of 4 frames) at a 96-pixel crop keeps CPU rendering of NeRF-style methods short
PROTO=(--protocol-set crop_size=96 --protocol-set frame_step=4)
COMMON=(--dataset genebody --root "$DATA" --output "$RUNS" --run rivals --executor inline --threads 1 "${PROTO[@]}")
bench run -m nearest-view -m mesh-blend "${COMMON[@]}"
for m in gnr pixelnerf ibrnet nhp; do
  /usr/bin/time -f "$m: %e s wall, %M KiB max RSS" bench run -m "$m" --preset cpu-smoke --iterations "$ITER" "${COMMON[@]}"
done
bench report "$RUNS/rivals"
