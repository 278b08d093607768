#!/usr/bin/env bash
# ruff on the package at 120 columns (config in pyproject.toml; ruff pinned in requirements-audit.txt).
# nbdev writes each module's `__all__` wrapped at 120 columns *after* its 10-character `__all__ = ` prefix, so that one
# generated line may reach 130: like `_modidx.py`, it is nbdev's output, not ours, and is not held to 120.
# Then the size rules of the codebase: no function over 50 lines, no module over 450 (issue 17); then hadolint on the
# Containerfile.
set -uo pipefail
status=0
cd "$(dirname "$0")/.."
A=$(.ci/env.sh audit | tail -1)
"$A/bin/ruff" check --output-format json --exit-zero mlops_nb | "$A/bin/python" -c '
import json, sys
from pathlib import Path
def generated(f):
    line = Path(f["filename"]).read_text().splitlines()[f["location"]["row"]-1]
    return f["code"] == "E501" and line.startswith("__all__ = ")
bad = [f for f in json.load(sys.stdin) if not generated(f)]
for f in bad:
    where, at = Path(f["filename"]).relative_to(Path.cwd()), f["location"]
    print(where, at["row"], at["column"], f["code"], f["message"], sep=":")
print(f"ruff: {len(bad)} problem(s) in mlops_nb/ (fix: the notebook cells that export them)" if bad else "ok: ruff clean at 120 columns")
sys.exit(1 if bad else 0)
' || status=1
"$A/bin/python" - <<'PY'
import ast, sys
from pathlib import Path
MAX_FN, MAX_MODULE = 50, 450
bad = []
for f in sorted(Path('mlops_nb').glob('*.py')):
    if f.name == '_modidx.py': continue
    text = f.read_text()
    if (n := len(text.splitlines())) > MAX_MODULE: bad.append(f'{f}: {n} lines (at most {MAX_MODULE}): split its notebook')
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (n := node.end_lineno - node.lineno + 1) > MAX_FN:
            bad.append(f'{f}:{node.lineno}: {node.name} is {n} lines (at most {MAX_FN}): split it into named steps')
print(*bad, sep='\n') if bad else print(f'ok: no function over {MAX_FN} lines, no module over {MAX_MODULE}')
sys.exit(1 if bad else 0)
PY
[ $? = 0 ] || status=1
# the Containerfile (config: .hadolint.yaml)
if "$A/bin/hadolint" --config .hadolint.yaml Containerfile; then echo "ok: hadolint clean"; else status=1; fi
exit $status
