#!/usr/bin/env bash
# GNR and its rivals on a GPU machine in one run (benchmark, not a test). Figures: $OUT/gpu.json (see gpu.py).
#
# The GPU machine has torch, numpy, scipy, scikit-image, opencv, pandas, rich, click, imageio but not bench's other
# dependencies and no network. Prepare once, here (.whl/ is git-ignored through .git/info/exclude):
#   benchmarks/gpu_prepare.sh            # wheels for lpips, submitit, trimesh, gitpython; warp (CUDA part only);
#                                        # the LPIPS AlexNet backbone
# then run on the device with `.whl` carried:   bash benchmarks/gpu.sh [gpu.py options]
# On an ordinary CUDA machine with `pip install -e .` done, `python benchmarks/gpu.py --out DIR` is enough.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
SITE=${SITE:-/tmp/bench-site}
mkdir -p "$SITE" "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .whl/*.whl
  for t in .whl/warp-*.txz; do [ -f "$t" ] && tar xJf "$t" -C "$SITE"; done
  [ -f .whl/alexnet_features_imagenet.npz ] && export BENCH_LPIPS_WEIGHTS=$PWD/.whl/alexnet_features_imagenet.npz
fi
export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
if ! python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >/dev/null 2>&1; then
  # no usable setuptools there: expose the source folders as the bench namespace package instead
  mkdir -p "$SITE/bench"
  for d in harness methods gnr datasets reports; do ln -sfn "$PWD/$d" "$SITE/bench/$d"; done
fi
python3 -c "import bench.harness, bench.gnr; print('bench from', bench.harness.__file__)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
PYTHONUNBUFFERED=1 python3 benchmarks/gpu.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu.log"
