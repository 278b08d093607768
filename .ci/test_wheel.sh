#!/usr/bin/env bash
# Build the wheel, install it into a clean environment (a fresh venv that sees the pinned deps but
# not this source tree), and run pytest tests/ against that installed copy.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
env_dir=${TEST_ENV:-$(mktemp -d)/wheelenv}
rm -rf dist build
log=$(mktemp)
.venv/bin/python -m build --wheel --no-isolation --outdir dist . >"$log" 2>&1 || { cat "$log"; exit 1; }
whl=$(ls dist/*.whl)
echo "[test] built $whl"
.ci/env.sh overlay "$env_dir" >/dev/null
"$env_dir/bin/python" -m pip --version >/dev/null 2>&1 || true
.venv/bin/python -m pip --python "$env_dir/bin/python" install -q --disable-pip-version-check --no-deps --no-index "$whl"
echo "[test] installed into $env_dir"
mkdir -p test-artifacts
# TESTS: which test files/dirs to run, relative to the repository (default: all of tests/)
tests=(); for t in ${TESTS:-tests}; do case $t in /*) tests+=("$t");; *) tests+=("$repo/$t");; esac; done
# run from outside the source tree so `import mlops_nb` can only find the installed wheel
cd "$(mktemp -d)"
export MLOPS_NB_SOURCE_TREE="$repo" PATH="$env_dir/bin:$PATH" MLOPS_TEST_ARTIFACTS="$repo/test-artifacts"
exec "$env_dir/bin/python" -m pytest "${tests[@]}" -p no:cacheprovider --rootdir "$repo/tests" "$@"
