"""CLI start: `mlops-nb --help` and `mlops-nb stages` must not import torch/fastai (target < 0.5 s),
measured beside a bare `python -c pass` in the same run."""
import subprocess, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _common import ROOT, row, record, timed, best_of

py = sys.executable
cli = str(Path(py).parent/'mlops-nb')
bare = best_of(5, lambda: timed([py, '-c', 'pass']))
helps = best_of(5, lambda: timed([cli, '--help']))
stages = best_of(5, lambda: timed([cli, 'stages'], cwd=ROOT))
probe = 'import sys; from mlops_nb.cli import main; main(["stages"]); print("HEAVY=" + ",".join(m for m in ("torch","fastai","papermill") if m in sys.modules))'
out = subprocess.run([py, '-c', probe], capture_output=True, text=True, cwd=ROOT).stdout
heavy = next(l for l in out.splitlines() if l.startswith('HEAVY=')).removeprefix('HEAVY=')
record('cli', [
    row('python -c pass (baseline)', bare, 's'),
    row('mlops-nb --help', helps, 's', '< 0.5 s', helps < 0.5),
    row('mlops-nb stages', stages, 's', '< 0.5 s', stages < 0.5),
    row('heavy modules imported by stages', heavy or 'none', '', 'none', not heavy),
])
