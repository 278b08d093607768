#!/usr/bin/env bash
# Prepare the one device call of bench/bench_gpu.py (issue 16, item 4).
#
# The lent GPU machine has Python 3.12 with torch, torchvision, numpy, pandas, Pillow, scikit-learn and matplotlib,
# and no network. This downloads the other wheels the training path imports (versions pinned in constraints.txt, cp312
# wheels, no dependencies resolved) plus mlops_nb's own wheel into .gpu-kit/ (git-ignored), checks the folder stays
# small, and prints the `run` call: carry .gpu-kit, install the wheels into a throwaway --target, run the bench, and
# bring back its results and log through $OUT.
#
# Usage: bench/gpu_kit.sh            (from anywhere; PYTHON=... to use another interpreter with pip)
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=.gpu-kit
PY=${PYTHON:-.venv/bin/python}
MAX_KB=${GPU_KIT_MAX_KB:-5120}
PKGS=(fastai fastcore fastprogress fasttransform fastdownload plum-dispatch beartype dvclive dvc dvc-render
      dvc-studio-client funcy flatten-dict ruamel.yaml voluptuous python-fasthtml starlette itsdangerous PyYAML)

pins=()
for p in "${PKGS[@]}"; do
  pin=$(grep -i -m1 "^${p//./\\.}==" constraints.txt) ||
    { echo "gpu_kit: $p is not pinned in constraints.txt" >&2; exit 2; }
  pins+=("$pin")
done

rm -rf "$KIT"
mkdir -p "$KIT"
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  --dest "$KIT" "${pins[@]}"
"$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation --wheel-dir "$KIT" . >/dev/null

n=$(ls "$KIT"/*.whl | wc -l)
kb=$(du -sk "$KIT" | cut -f1)
want=$(( ${#PKGS[@]} + 1 ))
[ "$n" -eq "$want" ] || { echo "gpu_kit: $n wheels in $KIT, expected $want" >&2; exit 1; }
[ "$kb" -le "$MAX_KB" ] || { echo "gpu_kit: $KIT is ${kb} KB, over ${MAX_KB} KB" >&2; exit 1; }
echo "gpu_kit: $n wheels, ${kb} KB in $KIT"
cat <<'EOF'

The device call (tool `run`, one call of about 8 minutes; give the machine back afterwards):
  carry:     [".gpu-kit"]
  timeout_s: 600
  command:
pip install -q --no-index --no-deps --target /tmp/kit .gpu-kit/*.whl && export PYTHONPATH=/tmp/kit MLOPS_PROGRESS=plain && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $OUT/gpu.txt; timeout 560 python bench/bench_gpu.py 2>&1 | grep -v '^\[train\] epoch' | tee $OUT/bench_gpu.log; cp bench/results.json $OUT/
EOF
