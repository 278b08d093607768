#!/usr/bin/env bash
# nbdev's own CI checks, without touching the working tree:
#   0. every notebook is stored as JupyterLab saves it (mlops-nb clean-nbs --check; fix: make clean-nbs)
#   1. nbdev_clean changes no notebook      2. nbdev_export changes no module (notebooks and package in sync)
# Both run on a scratch copy, so a hand edit in mlops_nb/ is reported, never overwritten.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(cd "${VENV:-.venv}/bin" && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp -r settings.ini nbs mlops_nb "$tmp/"
[ -f setup.py ] && cp setup.py "$tmp/"
bad=0
"$BIN/mlops-nb" clean-nbs --check --path nbs || bad=1
(cd "$tmp" && "$BIN/nbdev_clean" >/dev/null)
for f in $(cd "$tmp" && ls nbs/*.ipynb); do
  if ! cmp -s "$f" "$tmp/$f"; then echo "FAIL: $f is not clean: run nbdev_clean (or install the hooks: nbdev_install_hooks)"; bad=1; fi
done
rm -rf "$tmp/mlops_nb"; cp -r mlops_nb "$tmp/mlops_nb"
(cd "$tmp" && "$BIN/nbdev_export" >/dev/null)
while read -r line; do
  [ -z "$line" ] && continue
  echo "FAIL: $line -- notebooks are the source: edit nbs/ then nbdev_export, or sync package edits back with nbdev_update"; bad=1
done < <(diff -rq -x __pycache__ mlops_nb "$tmp/mlops_nb" | sed -e "s|$tmp/||g" -e 's/^Files \(mlops_nb\/[^ ]*\) and .* differ$/\1 differs from nbdev_export of the notebooks/' -e 's/^Only in \(.*\): \(.*\)$/\1\/\2 exists on only one side of nbdev_export/')
[ $bad = 0 ] && echo "ok: notebooks clean, package in sync with nbs/"
exit $bad
