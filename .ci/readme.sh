#!/usr/bin/env bash
# README.md is generated from nbs/index.ipynb (nbdev_readme needs Quarto, which these machines cannot install).
#   .ci/readme.sh          write README.md
#   .ci/readme.sh --check  fail if README.md is stale
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
new=$("$BIN/jupyter-nbconvert" --to markdown --stdout --log-level=ERROR nbs/index.ipynb | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}')
if [ "${1:-}" = --check ]; then
  if [ "$new" != "$(cat README.md 2>/dev/null)" ]; then echo "FAIL: README.md is stale: it is generated from nbs/index.ipynb, run make readme"; exit 1; fi
  echo "ok: README.md matches nbs/index.ipynb"
else
  printf '%s\n' "$new" > README.md.tmp && mv README.md.tmp README.md
fi
