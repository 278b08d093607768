"""No-op pipeline and the demo's own repro, on `make demo`'s data (see _demo.py: a temp git project with this repo's
pipeline and params, a local Label Studio seeded with `seed_demo`'s 1,000 + 200 tasks).
1. The demo's first full `dvc repro` against the sum of its entry functions' own time (the papermill duration of the
   `#| run` cell that calls `export_project`, `build_dataset`, `train_model`, `evaluate_model` or `compare_models`, in
   each executed notebook), with the same metrics as the committed demo: target <= 1.3 x.
2. `dvc repro` with nothing changed (Label Studio unchanged) vs `dvc status`. The pipeline's first stage,
   `labelstudio-check`, is `always_changed` (the projects live in Label Studio, not git): one `mlops-nb labelstudio
   check` asks every project for a cheap fingerprint and leaves `metrics/labelstudio.json` untouched, so no export
   and no later stage runs. Target: no-op repro <= 1.5 x dvc status + the check, in 3 of 3 runs; each run compares
   the best of 3 of each command, measured interleaved (repro, status, check) so load changes hit all three.
   The check is also timed alone (the command, and in process); one check <= 1 s.

Usage: python bench/bench_repro.py [RUNS]
"""
import json, os, re, shutil, subprocess, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _common import ROOT, row, record, best_of
import _demo

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
BEST = 3
N_POOL, N_BENCH = 1000, 200  # seed_demo's defaults: the data of `make demo`
CHECK = 'labelstudio-check'
ENTRY_FUNCTIONS = ('export_project', 'build_dataset', 'train_model', 'evaluate_model', 'compare_models')

def cell_src(c)->str: return ''.join(c['source']) if isinstance(c['source'], list) else c['source']

def stage_times(root:Path)->dict:
    "Per executed stage notebook of the last repro: (entry cell s, all cells s, kernel start s, kernel stop s)."
    from datetime import datetime
    at = lambda s: datetime.fromisoformat(s.replace('Z', '+00:00'))
    out = {}
    for nb in sorted((root/'runs').glob('*/latest.ipynb')):
        d = json.loads(nb.read_text())
        pm,cells = d['metadata'].get('papermill', {}),[c for c in d['cells'] if c['cell_type'] == 'code']
        meta = [c['metadata'].get('papermill', {}) for c in cells]
        ran = [m for m in meta if m.get('start_time')]
        entry = sum(m.get('duration') or 0. for c,m in zip(cells, meta) if cell_src(c).startswith('#| run')
                    and any(f'{f}(' in cell_src(c) for f in ENTRY_FUNCTIONS))
        start = (at(ran[0]['start_time']) - at(pm['start_time'])).total_seconds()
        stop = (at(pm['end_time']) - at(ran[-1]['end_time'])).total_seconds()
        out[nb.parent.name] = (entry, sum(m.get('duration') or 0. for m in ran), start, stop)
    return out

def run(cmd, root, check=True)->tuple[float, str]:
    "Wall seconds and combined output of one command in the demo project."
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=root, env=_demo.env(root), capture_output=True, text=True)
    dt = time.perf_counter() - t
    if check and r.returncode: raise SystemExit(f'{" ".join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}')
    return dt, r.stdout + r.stderr

def ran_stages(out:str)->list[str]: return re.findall(r"^Running stage '([^']+)':", out, re.M)

def same_metrics(root:Path)->bool:
    "The demo's benchmark metrics equal the committed demo's (metrics/benchmark.summary.json of this repository)."
    f = 'metrics/benchmark.summary.json'
    got,want = (json.loads((p/f).read_text()) for p in (root, ROOT))
    return all(got[k] == want[k] for k in ('accuracy', 'macro_f1', 'n'))

def noop_runs(root:Path, dvc:str, cli:str)->dict:
    "RUNS runs, each the best of BEST interleaved (repro, status, check); and `dvc repro -s` of the other stages."
    res = {'repro': [], 'status': [], 'check': [], 'rest': []}
    rest = ['labelstudio@digits', 'labelstudio@digits-benchmark', 'dataset-benchmark', 'dataset', 'train', 'evaluate',
            'compare']
    for _ in range(RUNS):
        best = {'repro': [], 'status': [], 'check': []}
        for _ in range(BEST):
            best['repro'].append(run([dvc, 'repro'], root)[0]); best['status'].append(run([dvc, 'status'], root)[0])
            best['check'].append(run([cli, 'labelstudio', 'check'], root)[0])
        for k,v in best.items(): res[k].append(min(v))
        res['rest'].append(run([dvc, 'repro', '-s', *rest], root)[0])
    res['n_rest'] = len(rest)
    return res

def main():
    tmp = Path(tempfile.mkdtemp(prefix='bench-repro-'))
    dvc,cli = str(_demo.BIN/'dvc'),str(_demo.BIN/'mlops-nb')
    try:
        t0 = time.perf_counter()
        root = _demo.make_project(tmp/'demo', size=None, epochs=None)   # params.yaml as `make demo` runs it
        with _demo.labelstudio(root, n_pool=N_POOL, n_bench=N_BENCH) as (info, times):
            full,out = run([dvc, 'repro'], root)
            end_to_end = time.perf_counter() - t0
            per_stage = stage_times(root)
            runner_s = sum(float(m) for m in re.findall(r'^\S+: ok in ([\d.]+)s', out, re.M))
            entry,cells,start,stop = (sum(v[i] for v in per_stage.values()) for i in range(4))
            print(f'first dvc repro: {full:.1f}s, entry functions {entry:.1f}s', flush=True)
            metrics_same = same_metrics(root)
            _demo.git(root, 'add', '-A'); _demo.git(root, 'commit', '-qm', 'repro')   # dvc.lock, metrics, .gitignore
            # the first no-op repro: it must run the change check and nothing else
            _,out = run([dvc, 'repro'], root)
            reran = ran_stages(out)
            assert reran == [CHECK], f'no-op dvc repro ran {reran}'
            exports_run = sum(s.startswith('labelstudio@') for s in reran)
            res = noop_runs(root, dvc, cli)
            os.environ['MLOPS_NB_ROOT'] = str(root)
            from mlops_nb.refresh import current_fingerprints, export_projects, pipeline_params
            projects = export_projects(pipeline_params(root))
            def in_process():
                t = time.perf_counter(); current_fingerprints(projects); return time.perf_counter() - t
            check_fn = best_of(RUNS, in_process)
            del os.environ['MLOPS_NB_ROOT']
        r,s,c,rs = (min(res[k]) for k in ('repro', 'status', 'check', 'rest'))
        budget = 1.5*s + c
        runs_ok = sum(rp <= 1.5*st + ck for rp,st,ck in zip(res['repro'], res['status'], res['check']))
        record('repro', [
            row('demo (make demo\'s data): Label Studio start (serve)', times['serve'], 's'),
            row(f'demo: seed_demo({N_POOL} + {N_BENCH} tasks)', times['seed'], 's'),
            row(f'demo: first full dvc repro ({len(per_stage) + 1} stages)', full, 's'),
            row('demo: sum of the entry functions\' cells (papermill cell durations)', entry, 's'),
            row('  ratio dvc repro / entry functions', full/entry, 'x', '<= 1.3x', full/entry <= 1.3),
            row('  same benchmark metrics as the committed demo', metrics_same, '', 'True', metrics_same),
            row('  sum of all executed cells (imports, checks, tables, glue)', cells, 's'),
            row('  sum over stages: kernel start -> first cell', start, 's'),
            row('  sum over stages: last cell -> kernel gone (shutdown, final save)', stop, 's'),
            row('  sum of the runner times (kernel start, papermill, cells)', runner_s, 's'),
            row('  left: the check, CLI processes before the runner, and DVC (hashing, cache, lock)', full - runner_s, 's'),
            row('demo: end to end (project + serve + seed + repro)', end_to_end, 's'),
            row('dvc status (nothing changed)', s, 's'),
            row('dvc repro, no-op (Label Studio unchanged)', r, 's', '<= 1.5x status + check', r <= budget),
            row('  budget: 1.5 x status + the change check', budget, 's'),
            row('  ratio no-op repro / status', r/s, 'x'),
            row(f'  runs within the budget (each: best of {BEST} of each, interleaved)', f'{runs_ok}/{RUNS}', '',
                f'{RUNS}/{RUNS}', runs_ok == RUNS),
            row(f'dvc repro -s of the {res["n_rest"]} other stages, no-op: DVC\'s own repro cost', rs, 's'),
            row('  ratio to status', rs/s, 'x'),
            row('  export stages run by the no-op repro (of 2)', exports_run, '', '0', exports_run == 0),
            row('change check: mlops-nb labelstudio check (both projects)', c, 's', '<= 1 s', c <= 1),
            row('change check in process: refresh.current_fingerprints', check_fn, 's'),
        ], runs=RUNS, best_of=BEST, n_pool=N_POOL, n_bench=N_BENCH,
           per_stage={k: [round(x, 2) for x in v] for k,v in per_stage.items()},
           all_times={k: [round(t, 3) for t in v] for k,v in res.items() if isinstance(v, list)})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__': main()
