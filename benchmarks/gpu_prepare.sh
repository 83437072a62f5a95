#!/usr/bin/env bash
# Fill .whl/ with what benchmarks/gpu.sh installs on a GPU machine without network (run here, with network).
# warp's wheel (150 MB) is over the device tool's 64 MiB carry limit, so warp 1.5.1 travels repacked without its
# CPU code generator (warp-clang.so) and examples: 27 MB. On the GPU bench uses warp on CUDA only.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
PLAT=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux2014_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform any -d .whl)
python3 -m pip download -q "${PLAT[@]}" lpips==0.1.4 submitit==1.5.4 trimesh==5.2.0 gitpython==3.2.1 gitdb smmap
if [ ! -f .whl/warp-1.5.1-noclang.txz ]; then
  tmp=$(mktemp -d)
  python3 -m pip download -q "${PLAT[@]/.whl/$tmp}" warp-lang==1.5.1
  (cd "$tmp" && unzip -q warp_lang-*.whl && rm -rf warp/bin/warp-clang.so warp/examples warp/tests \
     && tar cJf "$OLDPWD/.whl/warp-1.5.1-noclang.txz" warp warp_lang-1.5.1.dist-info)
  rm -rf "$tmp"
fi
python3 - <<'EOF'
import shutil
from bench.harness.scoring.lpips_weights import find_weights
src = find_weights("alex").path
shutil.copy(src if src.is_file() else next(src.glob("alexnet*")), ".whl/alexnet_features_imagenet.npz")
EOF
du -sh .whl
