"""The small demo that bench_repro and bench_memory run on: a temp git project with this repo's dvc.yaml, params.yaml,
.dvc/config and nbs/ (training shrunk to size 16, 1 epoch), and a local Label Studio (`mlops_nb.labelstudio_server.serve`,
data dir inside the temp project) seeded with `seed_demo(n_pool=60, n_bench=30)`.
Needs MLOPS_LABELSTUDIO_VENV (or `label-studio` on PATH), as `make bench` sets it.
"""
import contextlib, os, shutil, socket, subprocess, sys, time
from pathlib import Path
from _common import ROOT

N_POOL, N_BENCH = 60, 30
BIN = Path(sys.executable).parent

def free_port()->int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def git(root:Path, *args):
    subprocess.run(['git', '-c', 'user.email=bench@example.com', '-c', 'user.name=bench', *args], cwd=root, check=True, capture_output=True)

def make_project(dest:Path, size:int|None=16, epochs:int|None=1)->Path:
    "A temp git repo holding the pipeline's files, with training shrunk to `size` px and `epochs` epochs (None: as is)."
    import yaml
    from mlops_nb.core import yaml_load
    dest.mkdir(parents=True)
    shutil.copy(ROOT/'dvc.yaml', dest/'dvc.yaml')
    params = yaml_load((ROOT/'params.yaml').read_text())
    params['train'].update({k: v for k,v in dict(size=size, epochs=epochs).items() if v is not None})
    (dest/'params.yaml').write_text(yaml.safe_dump(params, sort_keys=False))
    (dest/'.dvc').mkdir(); shutil.copy(ROOT/'.dvc'/'config', dest/'.dvc'/'config')
    shutil.copytree(ROOT/'nbs', dest/'nbs', ignore=shutil.ignore_patterns('.ipynb_checkpoints'))
    for d in ('mlops_nb', 'envs'): shutil.copytree(ROOT/d, dest/d, ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copy(ROOT/'constraints.txt', dest/'constraints.txt')   # the code deps dvc.yaml lists (mlops_nb.deps)
    (dest/'pretrained').mkdir(parents=True)   # the train stage's weights folder (train.weights)
    shutil.copy(ROOT/'pretrained/README.md', dest/'pretrained/README.md')
    (dest/'.gitignore').write_text('.labelstudio/\n/.cache/\n/runs/\n')
    git(dest, 'init', '-q'); git(dest, 'add', '-A'); git(dest, 'commit', '-qm', 'demo')
    return dest

def env(root:Path)->dict:
    "Environment for subprocesses in the demo project: the venv's commands first on PATH."
    return {**os.environ, 'PATH': os.pathsep.join([str(BIN), os.environ.get('PATH', '')]), 'MLOPS_PROGRESS': 'plain'}

@contextlib.contextmanager
def labelstudio(root:Path, seed:bool=True, n_pool:int=N_POOL, n_bench:int=N_BENCH):
    "Start Label Studio with its data in `root/.labelstudio`, export its URL and token, seed the demo; stop it afterwards."
    from mlops_nb.labelstudio_server import serve, stop, seed_demo
    d = root/'.labelstudio'
    times = {}
    t = time.perf_counter()
    info = serve(port=free_port(), data_dir=str(d))
    times['serve'] = time.perf_counter() - t
    os.environ['LABEL_STUDIO_URL'] = info['url']
    os.environ['LABEL_STUDIO_API_KEY'] = (d/'token').read_text().strip()
    try:
        if seed:
            t = time.perf_counter()
            seed_demo(n_pool=n_pool, n_bench=n_bench)
            times['seed'] = time.perf_counter() - t
        yield info, times
    finally:
        stop(data_dir=str(d))
