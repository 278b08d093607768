#!/usr/bin/env bash
# Build (or reuse) the environments this project runs in. Called by `make install`; safe to re-run.
#
#   $MLOPS_CACHE/deps-<hash>/   every pinned dependency (~6.6 GB), keyed by the hash of the pins,
#                               shared by all clones, rebuilt only when settings.ini/constraints change
#   .venv/                      this clone's dev env: an overlay on the deps venv + editable mlops_nb
#   $MLOPS_CACHE/labelstudio-<hash>/  the Label Studio *server*, in its own venv (it pins Django & co)
#   $MLOPS_CACHE/audit-<hash>/  zizmor + actionlint + ruff, hash-pinned, for the workflow audits and the linter
#
# Usage: .ci/env.sh [deps|dev|labelstudio|all] ; prints the path it built on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
CACHE=${MLOPS_CACHE:-$HOME/.cache/mlops_nb}
mkdir -p "$CACHE"
say() { echo "[env] $*" >&2; }

pins_hash() { cat "$@" | sha256sum | cut -c1-12; }
deps_dir() { echo "$CACHE/deps-$(pins_hash constraints.txt <(grep -E '^(requirements|dev_requirements)' settings.ini) <($PY -V))"; }
ls_dir() { echo "$CACHE/labelstudio-$(pins_hash requirements-labelstudio.txt <($PY -V))"; }
audit_dir() { echo "$CACHE/audit-$(pins_hash requirements-audit.txt <($PY -V))"; }

site_of() { "$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

build_venv() {  # build_venv DIR pip-args... : atomic (temp dir + rename), so a killed install is never reused
  local dir=$1; shift
  if [ -x "$dir/bin/python" ] && [ -f "$dir/.complete" ]; then say "reusing $dir"; return; fi
  local tmp="$dir.tmp.$$"; rm -rf "$tmp"
  say "building $dir (first time on this machine: a few minutes)"
  $PY -m venv "$tmp"
  "$tmp/bin/pip" install -q --disable-pip-version-check --upgrade pip==26.3
  "$tmp/bin/pip" install -q --disable-pip-version-check --progress-bar off "$@"
  # venv scripts hard-code the interpreter path: rewrite them for the final location
  { grep -lI --directories=skip "^#!$tmp/bin/python" "$tmp"/bin/* || true; } | xargs -r sed -i "1s|^#!$tmp/|#!$dir/|"
  sed -i "s|$tmp|$dir|g" "$tmp/bin/activate" "$tmp/pyvenv.cfg" 2>/dev/null || true
  touch "$tmp/.complete"; rm -rf "$dir"; mv "$tmp" "$dir"
}

overlay_venv() {  # overlay_venv DIR DEPS : a light venv that sees every package of DEPS, and its console scripts
  local dir; dir=$(realpath -m "$1"); local deps=$2
  rm -rf "$dir"; $PY -m venv --without-pip "$dir"
  local site; site=$(site_of "$dir")
  echo "import site; site.addsitedir('$(site_of "$deps")')" > "$site/_mlops_deps.pth"
  # Jupyter finds templates, lab assets and server config under sys.prefix: share the deps venv's
  for sub in share/jupyter etc/jupyter; do
    [ -e "$deps/$sub" ] && mkdir -p "$dir/$(dirname $sub)" && ln -sfn "$deps/$sub" "$dir/$sub"
  done
  for f in "$deps"/bin/*; do
    [ -f "$f" ] || continue
    local name; name=$(basename "$f")
    case $name in python*|pip*|activate*|Activate*|deactivate) continue;; esac
    [ -e "$dir/bin/$name" ] && continue
    if head -c 200 "$f" | head -1 | grep -q '^#!.*python'; then
      { echo "#!$dir/bin/python"; tail -n +2 "$f"; } > "$dir/bin/$name"; chmod +x "$dir/bin/$name"
    fi
  done
}

deps() {
  local d; d=$(deps_dir)
  build_venv "$d" -r <(sed -n 's/^requirements *= *//p;s/^dev_requirements *= *//p' settings.ini | tr ' ' '\n' | grep .) -c constraints.txt
  echo "$d"
}

dev() {
  local d; d=$(deps 2>&2 | tail -1)
  overlay_venv .venv "$d"
  "$d/bin/pip" --python .venv/bin/python install -q --disable-pip-version-check --no-deps --no-build-isolation -e . >&2
  # bytecode for the package, as pip writes for installed ones: with PYTHONDONTWRITEBYTECODE set (as on this kind of
  # machine) every `mlops-nb` and every stage kernel would compile its modules again (about 0.05 s each)
  .venv/bin/python -m compileall -q mlops_nb >&2 || true
  say ".venv ready (deps: $d)"
  echo "$PWD/.venv"
}

labelstudio() {
  local d; d=$(ls_dir)
  build_venv "$d" -r requirements-labelstudio.txt
  echo "$d"
}

audit() {  # zizmor + actionlint (tests/test_workflows.py) and ruff (make lint), a few MB, hash-pinned
  local d; d=$(audit_dir)
  build_venv "$d" --require-hashes -r requirements-audit.txt
  echo "$d"
}

case ${1:-dev} in
  deps) deps;;
  dev) dev;;
  labelstudio) labelstudio;;
  audit) audit;;
  overlay) overlay_venv "$2" "$(deps | tail -1)"; echo "$2";;
  all) dev; labelstudio; audit;;
  *) echo "usage: $0 [deps|dev|labelstudio|audit|overlay DIR|all]" >&2; exit 2;;
esac
