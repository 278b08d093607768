"""Scaling past one process on the engines we already use: fastai's distributed training (accelerate + torchrun, two
CPU processes over gloo) gives the same artifacts as one process and one model; DVC's experiment queue runs two train
experiments side by side, each in its own workspace, and `dvc exp show` lists both with their metrics."""
import json, os, shutil, subprocess, sys, textwrap, time
from pathlib import Path
import pytest, yaml
from conftest import cli, git

BIN = Path(sys.executable).parent
TOLERANCE = 0.15   # 2 processes vs 1 on 160 training digits, 2 epochs: same global batch, different reduction order

@pytest.fixture(autouse=True)
def _env(monkeypatch): monkeypatch.setenv('MLOPS_PROGRESS', 'plain')

@pytest.fixture(scope='module')
def digits(tmp_path_factory)->Path:
    from mlops_nb.folder import sample_dataset
    return sample_dataset(tmp_path_factory.mktemp('ds')/'digits', n=400, size=16)  # 80 valid images: 2 epochs are stable

def files(d:Path)->list[str]: return sorted(str(p.relative_to(d)) for p in d.rglob('*') if p.is_file())

def test_two_processes_match_one(digits, tmp_path):
    "train_model(distributed=2) = torchrun, 2 gloo workers: the same files as one process, one model, close accuracy."
    from dataclasses import replace
    from mlops_nb.params import TrainParams
    from mlops_nb.train import train_model
    p = TrainParams(dataset=str(digits), size=16, bs=32, epochs=2, lr=1e-2, seed=1, metrics=['accuracy', 'macro_f1'])
    one = train_model(replace(p, out=str(tmp_path/'one/model'), live_dir=str(tmp_path/'one/dvclive')))
    t0 = time.time()
    two = train_model(replace(p, out=str(tmp_path/'two/model'), live_dir=str(tmp_path/'two/dvclive'), distributed=2))
    seconds = time.time() - t0
    assert files(tmp_path/'two') == files(tmp_path/'one') and 'model/best-model.pth' in files(tmp_path/'one')
    assert [p for p in tmp_path.rglob('*') if p.name.endswith('.tmp') or p.name == 'best.pth'] == []
    models = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob('best-model.pth'))
    assert models == ['one/model/best-model.pth', 'two/model/best-model.pth'], models
    card1,card2 = (json.loads((tmp_path/f'{r}/model/model.json').read_text()) for r in ('one', 'two'))
    assert card2['params'] == card1['params'] and set(card2) == set(card1)
    assert abs(two.metrics['accuracy'] - one.metrics['accuracy']) <= TOLERANCE, (one.metrics, two.metrics)
    assert two.metrics['accuracy'] > 0.5 and len(two.history) == 2 and two.n_train == one.n_train
    assert card2['best']['accuracy'] == two.metrics['accuracy']
    from mlops_nb.predict import predict
    rows = [r for r in (digits/'labels.csv').read_text().splitlines()[1:] if ',valid,' in r]
    assert len(predict(tmp_path/'two/model', [digits/r.split(',')[0] for r in rows]).labels) == len(rows)
    print(f'[ddp] 1 process {one.seconds:.1f}s, 2 processes {seconds:.1f}s; accuracy {one.metrics["accuracy"]:.3f} vs '
          f'{two.metrics["accuracy"]:.3f}')

def test_distributed_error_is_one_line(digits, tmp_path):
    "A bad input is refused before any worker starts, with the usual one-line error and nothing written."
    from mlops_nb.core import MlopsError
    from mlops_nb.params import TrainParams
    from mlops_nb.train import train_model
    with pytest.raises(MlopsError, match='unknown backbone'):
        train_model(TrainParams(dataset=str(digits), out=str(tmp_path/'m'), arch='resnet19', distributed=2, live_dir=''))
    assert not (tmp_path/'m').exists()

TRAIN_STAGE = '''\
stages:
  train:
    cmd: mlops-nb run train
    deps:
      - nbs/30_train.ipynb
      - data/datasets/digits
    params:
      - train
    outs:
      - data/models
    metrics:
      - metrics/train.json:
          cache: false
'''

def dvc(root:Path, *args, timeout:int=600)->str:
    env = {k: v for k,v in os.environ.items() if k != 'MLOPS_NB_ROOT'}
    env['PATH'] = os.pathsep.join([str(BIN), env.get('PATH', '')])
    r = subprocess.run([sys.executable, '-m', 'dvc', *args], cwd=root, env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, f'dvc {" ".join(args)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}'
    return r.stdout

@pytest.fixture
def train_project(tmp_path)->Path:
    "The smallest DVC project around the train stage notebook: a 100-digit dataset in git, one stage, tiny params."
    from mlops_nb.runner import packaged_notebooks
    from mlops_nb.folder import sample_dataset
    root = tmp_path/'proj'
    (root/'nbs').mkdir(parents=True)
    shutil.copy(packaged_notebooks()/'30_train.ipynb', root/'nbs')
    sample_dataset(root/'data/datasets/digits', n=100, size=16)
    params = {'train': {'dataset': 'data/datasets/digits', 'out': 'data/models', 'size': 16, 'bs': 16, 'epochs': 1,
                        'lr': 0.01, 'live_dir': '', 'metrics_fp': 'metrics/train.json', 'distributed': 0}}
    (root/'params.yaml').write_text(yaml.safe_dump(params, sort_keys=False))
    (root/'dvc.yaml').write_text(TRAIN_STAGE)
    (root/'.gitignore').write_text('/runs/\n')
    git(root, 'init', '-q')
    dvc(root, 'init', '-q')
    dvc(root, 'config', 'core.analytics', 'false')
    git(root, 'add', '-A'); git(root, 'commit', '-qm', 'train project')
    return root

def test_queued_experiments_run_in_parallel(train_project):
    """`dvc exp run --queue` twice + `dvc queue start -j 2`: both run the stage notebook, each in its own workspace;
    one of them trains with 2 processes (the kernel launches torchrun), which DVC only sees as a param."""
    root = train_project
    for name,lr,procs in (('lr-hi', 0.02, 0), ('lr-lo', 0.005, 2)):
        dvc(root, 'exp', 'run', '--queue', '-n', name, '-S', f'train.lr={lr}', '-S', f'train.distributed={procs}')
    dvc(root, 'queue', 'start', '-j', '2')
    deadline = time.time() + 540
    while time.time() < deadline:
        status = dvc(root, 'queue', 'status')
        if not any(w in status for w in ('Queued', 'Running')): break
        time.sleep(3)
    assert 'Success' in status and 'Failed' not in status, status
    shown = json.loads(dvc(root, 'exp', 'show', '--json'))
    exps = {e.get('name'): e for base in shown for e in base.get('experiments') or [] for e in e.get('revs') or [e]}
    assert {'lr-hi', 'lr-lo'} <= set(exps), list(exps)
    for name,lr in (('lr-hi', 0.02), ('lr-lo', 0.005)):
        data = exps[name]['data']
        assert data['params']['params.yaml']['data']['train']['lr'] == lr
        assert data['params']['params.yaml']['data']['train']['distributed'] == (2 if name == 'lr-lo' else 0)
        metrics = data['metrics']['metrics/train.json']['data']
        assert 0 <= metrics['valid_accuracy'] <= 1 and metrics['n_train'] == 80, metrics
    assert not (root/'data/models').exists() and not (root/'runs').exists()   # the workspace itself ran nothing
    dvc(root, 'exp', 'apply', 'lr-lo')
    card = json.loads((root/'data/models/model.json').read_text())
    assert card['params']['lr'] == 0.005
