"""No-op pipeline: `dvc repro` with nothing changed (Label Studio unchanged) vs `dvc status`, on the small demo
(see _demo.py: local Label Studio seeded with 60 + 30 tasks, training shrunk to 16 px / 1 epoch), measured alternately in
one run (best of N). The two `labelstudio@<project>` stages are `always_changed` (the projects live in Label Studio, not
git), so a no-op repro runs `mlops-nb run labelstudio --section labelstudio.<project>` twice: each asks Label Studio for
a cheap fingerprint and, the project being unchanged, skips the notebook; their export files stay byte-identical, so no
other stage reruns. The change check is also timed alone (the command, and the in-process `skip_reason`).
Target: no-op repro <= 1.5 x dvc status + the change checks, in every run (each repro beside the status run after it);
one change check <= 1 s.
Also the demo's end-to-end time for this small demo: serve + seed + first full `dvc repro`, and that repro against the
sum of its entry functions' own time (the papermill duration of the `#| run` cell that calls `export_project`,
`build_dataset`, `train_model`, `evaluate_model` or `compare_models`, in each executed notebook): target <= 1.3 x.

Usage: python bench/bench_repro.py [REPEATS]
"""
import os, shutil, subprocess, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _common import row, record, best_of
import _demo

REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
ENTRY_FUNCTIONS = ('export_project', 'build_dataset', 'train_model', 'evaluate_model', 'compare_models')

def stage_times(root:Path)->dict:
    "Per executed stage notebook of the last repro: (seconds in the cell that calls the entry function, seconds of all cells)."
    import json
    out = {}
    for nb in sorted((root/'runs').glob('*/latest.ipynb')):
        cells = json.loads(nb.read_text())['cells']
        dur = lambda c: (c.get('metadata', {}).get('papermill', {}).get('duration') or 0.)
        src = lambda c: ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        entry = [dur(c) for c in cells if c['cell_type'] == 'code' and any(f'{f}(' in src(c) for f in ENTRY_FUNCTIONS)
                 and src(c).startswith('#| run')]
        out[nb.parent.name] = (sum(entry), sum(dur(c) for c in cells))
    return out

def run(cmd, root, check=True)->tuple[float, str]:
    "Wall seconds and combined output of one command in the demo project."
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=root, env=_demo.env(root), capture_output=True, text=True)
    dt = time.perf_counter() - t
    if check and r.returncode: raise SystemExit(f'{" ".join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}')
    return dt, r.stdout + r.stderr

def main():
    tmp = Path(tempfile.mkdtemp(prefix='bench-repro-'))
    dvc,cli = str(_demo.BIN/'dvc'),str(_demo.BIN/'mlops-nb')
    try:
        t0 = time.perf_counter()
        root = _demo.make_project(tmp/'demo')
        with _demo.labelstudio(root) as (info, times):
            full,out = run([dvc, 'repro'], root)
            end_to_end = time.perf_counter() - t0
            per_stage = stage_times(root)
            # what each `mlops-nb run` reported: its runner time (kernel start, papermill, cells, saves)
            import re
            runner_s = sum(float(m) for m in re.findall(r'^\S+: ok in ([\d.]+)s', out, re.M))
            entry = sum(e for e,_ in per_stage.values())
            cells = sum(c for _,c in per_stage.values())
            print(f'first dvc repro: {full:.1f}s', flush=True)
            _demo.git(root, 'add', '-A'); _demo.git(root, 'commit', '-qm', 'repro')   # dvc.lock + .gitignore files
            # the first no-op repro: check that it really reruns nothing but the change checks (and keep its time)
            first_noop,out = run([dvc, 'repro'], root)
            reran = [l for l in out.splitlines() if l.startswith('Running stage') and "'labelstudio@" not in l]
            assert not reran, f'no-op dvc repro reran stages: {reran}'
            skipped = out.count('up to date (')
            repro,status,single,checks = [first_noop],[],[],[]
            rest = ['dataset-benchmark', 'dataset', 'train', 'evaluate', 'compare']
            for _ in range(REPEATS):   # alternate, so load changes on the shared machine hit all four
                repro.append(run([dvc, 'repro'], root)[0]); status.append(run([dvc, 'status'], root)[0])
                checks.append(run([cli, 'run', 'labelstudio', '--section', 'labelstudio.digits'], root)[0])
                single.append(run([dvc, 'repro', '-s', *rest], root)[0])
            check_cmd = min(checks)
            os.environ['MLOPS_NB_ROOT'] = str(root)
            from mlops_nb.labelstudio import skip_reason
            from mlops_nb.core import load_params
            ps = load_params(root/'params.yaml')['labelstudio']['digits']
            assert skip_reason(**ps), 'the change check did not see the project as unchanged'
            def in_process():
                t = time.perf_counter(); skip_reason(**ps); return time.perf_counter() - t
            check_fn = best_of(REPEATS, in_process)
            del os.environ['MLOPS_NB_ROOT']
        r,s,rs = min(repro),min(status),min(single)
        n_checks = 2
        budget = 1.5*s + n_checks*check_cmd
        # each no-op repro against the dvc status and the change check run right after it (the same load)
        runs_ok = sum(rp <= 1.5*st + n_checks*ck for rp,st,ck in zip(repro[1:], status, checks))
        record('repro', [
            row('dvc status (nothing changed)', s, 's'),
            row('dvc repro, no-op (Label Studio unchanged)', r, 's', f'<= 1.5x status + {n_checks} checks', r <= budget),
            row('  budget: 1.5 x status + 2 change checks', budget, 's'),
            row('  ratio no-op repro / status', r/s, 'x'),
            row(f'  runs within the budget, each beside its own status + check', f'{runs_ok}/{REPEATS}', '', f'{REPEATS}/{REPEATS}',
                runs_ok == REPEATS),
            row('dvc repro -s of the 5 other stages (no Label Studio), no-op', rs, 's'),
            row('  ratio to status: dvc\'s own repro cost', rs/s, 'x'),
            row('  stages skipped by the change check (of 2)', skipped, '', '2', skipped == 2),
            row('change check: mlops-nb run labelstudio (unchanged)', check_cmd, 's', '<= 1 s', check_cmd <= 1),
            row('change check in process: labelstudio.skip_reason', check_fn, 's'),
            row('demo: Label Studio start (serve)', times['serve'], 's'),
            row(f'demo: seed_demo({_demo.N_POOL} + {_demo.N_BENCH} tasks)', times['seed'], 's'),
            row('demo: first full dvc repro (6 stages)', full, 's'),
            row('demo: sum of the entry functions\' cells (papermill cell durations)', entry, 's'),
            row('  ratio dvc repro / entry functions', full/entry, 'x', '<= 1.3x', full/entry <= 1.3),
            row('  sum of all executed cells (imports, checks, tables, glue)', cells, 's'),
            row('  sum of the runner times (kernel start, papermill, cells)', runner_s, 's'),
            row('  left: CLI processes before the runner, and DVC (hashing, cache, lock)', full - runner_s, 's'),
            row('demo: end to end (project + serve + seed + repro)', end_to_end, 's'),
        ], repeats=REPEATS, n_pool=_demo.N_POOL, n_bench=_demo.N_BENCH, train={'size': 16, 'epochs': 1},
           per_stage={k: [round(e, 2), round(c, 2)] for k,(e,c) in per_stage.items()},
           all_times={'repro': [round(t, 3) for t in repro], 'status': [round(t, 3) for t in status], 'repro_single_rest': [round(t, 3) for t in single],
                      'check': [round(t, 3) for t in checks]})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__': main()
