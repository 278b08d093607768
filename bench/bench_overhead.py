"""Stage overhead: `mlops-nb run dataset` (papermill: CLI process + kernel) vs a fresh `python -c` calling
`mlops_nb.dataset.build_dataset` on the same inputs (the dataset stage's bundled sample: 60 tasks, plain image paths,
no server), and a trivial notebook (one glued scalar) vs `python -c`, measured alternately in one run (best of N).

Then where the start-up still goes: the cost of each import on the two sides (fresh process, best of 2, minus a bare
start), the kernel start itself, and how many times papermill writes the executed notebook. The cuts measured in
issue 16 are in the package now (see bench/README.md): results glued in scrapbook's format without importing
scrapbook (`mlops_nb.runner.glue`), scraps read from the notebook JSON in the CLI, papermill's engine saving at the
start, at the end and at most every 5 s, papermill's optional S3/HDFS handlers and black marked absent in the CLI.

With `--base COMMIT` the same two runs go through that commit's package too (its `mlops_nb/` and `nbs/`, exported
with `git archive` into the temp dir and put first on PYTHONPATH for the CLI and its kernel), side by side: the cuts
against the code before them, under the same load.

Usage: python bench/bench_overhead.py [REPEATS] [--base COMMIT]   (default: 47f323b, main before issue 16, if present)
"""
import json, os, subprocess, sys, tempfile, time, shutil
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _common import ROOT, row, record, timed, timed_cpu, best_of

ARGS = sys.argv[1:]
BEFORE_ISSUE_16 = '47f323b'   # main before the cuts of issue 16: the default --base, when this clone has it
def _has(commit): return subprocess.run(['git', 'cat-file', '-e', f'{commit}^{{commit}}'], cwd=ROOT, capture_output=True).returncode == 0
BASE = ARGS[ARGS.index('--base') + 1] if '--base' in ARGS else BEFORE_ISSUE_16 if _has(BEFORE_ISSUE_16) else None
REPEATS = int(ARGS[0]) if ARGS and ARGS[0].isdigit() else 3
PY = sys.executable
CLI = str(Path(PY).parent/'mlops-nb')
TARGET = 1.5

def notebook(cells:list[tuple[str, str]])->dict:
    "A minimal notebook: (source, tag) cells; tag 'parameters' marks papermill's parameters cell."
    return {'cells': [{'cell_type': 'code', 'metadata': {'tags': [t]} if t else {}, 'source': s, 'outputs': [], 'execution_count': None}
                      for s,t in cells],
            'metadata': {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}}, 'nbformat': 4, 'nbformat_minor': 5}

def make_project(tmp:Path)->Path:
    "A temp git project: params.yaml pointing the dataset stage at the bundled sample, and a trivial notebook."
    from mlops_nb.dataset import sample_export
    root = tmp/'proj'; (root/'nbs').mkdir(parents=True)
    sample = {'export': 'data/sample/export.json', 'rawdata_dir': 'data/sample/images', 'cache_dir': '', 'benchmark': ''}
    (root/'params.yaml').write_text(json.dumps({'dataset': {**sample, 'out': 'data/datasets/nb'}, 'trivial': {'x': 2}}))
    os.environ['MLOPS_NB_ROOT'] = str(root)
    sample_export(root/'data'/'sample')
    del os.environ['MLOPS_NB_ROOT']
    # the base commit's runner has no glue: scrapbook's, as its stage notebooks did
    glue = "#| run\ntry: from mlops_nb.runner import glue\nexcept ImportError: from scrapbook import glue\nglue('y', x + 1)"
    (root/'nbs'/'98_trivial.ipynb').write_text(json.dumps(notebook([('x = 1', 'parameters'), (glue, '')])))
    for a in (['init', '-q'], ['add', '-A'], ['-c', 'user.email=bench@example.com', '-c', 'user.name=bench', 'commit', '-qm', 'bench']):
        subprocess.run(['git', *a], cwd=root, check=True, capture_output=True)
    return root

def base_package(tmp:Path, commit:str)->Path:
    "The package and notebooks of `commit`, exported into `tmp/base` (importable from there: PYTHONPATH=tmp/base)."
    dest = tmp/'base'; dest.mkdir()
    tar = subprocess.run(['git', 'archive', commit, 'mlops_nb', 'nbs', 'settings.ini'], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(['tar', '-x', '-C', str(dest)], input=tar, check=True)
    return dest

def import_cost(code:str, block:tuple=(), n:int=2)->float:
    "CPU seconds `code` adds to a fresh interpreter (after the runner's own slow-module block, plus `block`), best of n."
    pre = f'import sys; [sys.modules.setdefault(m, None) for m in {("rfc3987_syntax", *block)!r}]; '
    base = min(timed_cpu([PY, '-c', pre + 'pass'])[1] for _ in range(n))
    return max(0., min(timed_cpu([PY, '-c', pre + code])[1] for _ in range(n)) - base)

def kernel_start(n:int=3)->float:
    "Seconds to start the runner's kernel (same kernel spec and launcher as `run_stage`), run one empty cell, stop it."
    from mlops_nb.kernel import kernel_env
    from mlops_nb.core import skip_slow_optional_imports
    skip_slow_optional_imports()
    from jupyter_client.manager import start_new_kernel
    def once():
        with kernel_env({}) as name:
            t = time.perf_counter()
            km,kc = start_new_kernel(kernel_name=name)
            try: kc.execute_interactive('pass', timeout=60)
            finally: kc.stop_channels(); km.shutdown_kernel(now=True)
            return time.perf_counter() - t
    return best_of(n, once)

def count_saves(root:Path, env:dict)->int:
    "How many times one `mlops-nb run dataset` writes the executed notebook (papermill's write_ipynb, counted)."
    log = root/'saves.log'
    code = ('import sys, papermill.iorw as io, papermill.engines as en, papermill.execute as ex\n'
            f'_w = io.write_ipynb\ndef w(nb, path):\n    open({str(log)!r}, "a").write("x")\n    _w(nb, path)\n'
            'en.write_ipynb = ex.write_ipynb = io.write_ipynb = w\n'
            'from mlops_nb.cli import main\nsys.exit(main(["run", "dataset"]))')
    log.unlink(missing_ok=True)
    subprocess.run([PY, '-c', code], check=True, env={**os.environ, **env}, cwd=root, capture_output=True)
    return len(log.read_text())

def main():
    tmp = Path(tempfile.mkdtemp(prefix='bench-overhead-'))
    try:
        root = make_project(tmp)
        env = {'MLOPS_PROGRESS': 'plain'}
        def build_py(out):
            code = ("from mlops_nb.dataset import build_dataset; from mlops_nb.params import DatasetParams; "
                    f"build_dataset(DatasetParams(export='data/sample/export.json', out='{out}', "
                    "rawdata_dir='data/sample/images', cache_dir='', benchmark=''))")
            return [PY, '-c', code]
        variants = {
            'py_trivial': [PY, '-c', 'x = 2; y = x + 1'],
            'nb_trivial': [CLI, 'run', 'trivial'],
            'py_dataset': build_py('data/datasets/py'),
            'nb_dataset': [CLI, 'run', 'dataset'],
        }
        envs = {k: env for k in variants}
        if BASE:
            base_env = {**env, 'PYTHONPATH': str(base_package(tmp, BASE))}
            base_cli = [PY, '-c', 'import sys; from mlops_nb.cli import main; sys.exit(main(sys.argv[1:]))', 'run']
            variants |= {'base_trivial': [*base_cli, 'trivial'], 'base_dataset': [*base_cli, 'dataset', '-p', 'out=data/datasets/base']}
            envs |= {'base_trivial': base_env, 'base_dataset': base_env}
        for k in [k for k in variants if not k.startswith('py_')]: timed(variants[k], env=envs[k], cwd=root)   # warm-up
        times,cpus = {k: [] for k in variants},{k: [] for k in variants}
        for _ in range(REPEATS):   # alternate, so load changes on a shared machine hit every variant
            for k,cmd in variants.items():
                w,c = timed_cpu(cmd, env=envs[k], cwd=root); times[k].append(w); cpus[k].append(c)
        b,cpu = {k: min(v) for k,v in times.items()},{k: min(v) for k,v in cpus.items()}
        same = (root/'data/datasets/nb/labels.csv').read_text() == (root/'data/datasets/py/labels.csv').read_text()
        if BASE: same = same and (root/'data/datasets/base/labels.csv').read_text() == (root/'data/datasets/py/labels.csv').read_text()
        latest = root/'runs'/'dataset'/'latest.ipynb'
        size_before = latest.stat().st_size/1e3   # the last run of the loop: the base commit's, when there is one
        saves = count_saves(root, env)            # a run of this package, which also rewrites latest.ipynb
        meta = json.loads(latest.read_text())['metadata']['papermill']
        from mlops_nb.runner import read_scraps
        skip = ('rfc3987_syntax', 'black', 'papermill.s3', 'pyarrow.fs')
        cli_pm = import_cost('import papermill', block=skip)
        cli_mod = import_cost('import mlops_nb.cli, mlops_nb.runner')
        k_app = import_cost('import ipykernel.kernelapp')
        k_sb = import_cost('import ipykernel.kernelapp, scrapbook') - k_app
        k_start = kernel_start()
        added = {s: b[f'nb_{s}'] - b[f'py_{s}'] for s in ('trivial', 'dataset')}
        base_rows = [] if not BASE else [
            row(f'before (commit {BASE}): dataset, seconds added', b['base_dataset'] - b['py_dataset'], 's'),
            row(f'before (commit {BASE}): dataset, CPU seconds added', cpu['base_dataset'] - cpu['py_dataset'], 'cpu s'),
            row(f'before (commit {BASE}): trivial, seconds added', b['base_trivial'] - b['py_trivial'], 's'),
            row(f'before (commit {BASE}): trivial, CPU seconds added', cpu['base_trivial'] - cpu['py_trivial'], 'cpu s'),
            row('dataset: seconds added, now / before', added['dataset']/(b['base_dataset'] - b['py_dataset']), 'x'),
            row('dataset: CPU seconds added, now / before',
                (cpu['nb_dataset'] - cpu['py_dataset'])/(cpu['base_dataset'] - cpu['py_dataset']), 'x')]
        record('overhead', [
            row('dataset stage (60-task sample): python -c build_dataset', b['py_dataset'], 's'),
            row('dataset stage: mlops-nb run dataset (papermill)', b['nb_dataset'], 's'),
            row('dataset stage: seconds added by the notebook run', added['dataset'], 's', f'<= {TARGET} s', added['dataset'] <= TARGET),
            row('dataset stage: ratio notebook / python -c', b['nb_dataset']/b['py_dataset'], 'x'),
            row('dataset stage: CPU seconds added (all processes)', cpu['nb_dataset'] - cpu['py_dataset'], 'cpu s'),
            row('same labels.csv from both', same, '', 'True', same),
            row('trivial notebook: python -c', b['py_trivial'], 's'),
            row('trivial notebook: mlops-nb run (one glued scalar)', b['nb_trivial'], 's'),
            row('trivial notebook: seconds added', added['trivial'], 's', f'<= {TARGET} s', added['trivial'] <= TARGET),
            row('trivial notebook: CPU seconds added (all processes)', cpu['nb_trivial'] - cpu['py_trivial'], 'cpu s'),
            *base_rows,
            row('dataset notebook: writes of the executed notebook', saves, 'writes', '<= 4', saves <= 4),
            row('executed notebook records input_path as a path', isinstance(meta.get('input_path'), str), '', 'True',
                isinstance(meta.get('input_path'), str)),
            row('executed dataset notebook size', latest.stat().st_size/1e3, 'kB'),
            *([row(f'before (commit {BASE}): executed dataset notebook size', size_before, 'kB')] if BASE else []),
            row('scraps read back (read_scraps)', len(read_scraps(latest)), 'scraps'),
            row('start: import mlops_nb.cli + runner (CLI process)', cli_mod, 'cpu s'),
            row('start: import papermill, optional handlers blocked (CLI)', cli_pm, 'cpu s'),
            row('start: import ipykernel.kernelapp (kernel)', k_app, 'cpu s'),
            row('start: scrapbook in the kernel, no longer imported', k_sb, 'cpu s'),
            row('start: kernel start + one empty cell + shutdown', k_start, 's'),
        ], repeats=REPEATS, all_times={k: [round(t, 3) for t in v] for k,v in times.items()},
           all_cpu={k: [round(t, 3) for t in v] for k,v in cpus.items()},
           base=BASE, load_during=[round(x, 2) for x in os.getloadavg()],
           note='best of REPEATS, variants alternated; import rows: CPU seconds of a fresh interpreter, best of 2, minus a bare start')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__': main()
