"""Shared fixtures. These tests run against the *installed wheel* (see .ci/test_wheel.sh), from a
directory outside the source tree; `MLOPS_NB_SOURCE_TREE` points at the checkout for the few files
a project needs (params.yaml, dvc.yaml) and the CI scripts.

Server fixtures live in their own modules and start once per session:
  fixtures_labelstudio.py  -> `labelstudio` (a real Label Studio server from its own venv)
  fixtures_s3.py           -> `s3_endpoint` (moto's standalone server: real HTTP S3 on 127.0.0.1)
"""
import os, shutil, subprocess, sys
from pathlib import Path
import pytest

pytest_plugins = [m for m in ('fixtures_labelstudio', 'fixtures_s3') if (Path(__file__).parent/f'{m}.py').exists()]

SOURCE_TREE = Path(os.environ.get('MLOPS_NB_SOURCE_TREE', Path(__file__).resolve().parents[1]))
ARTIFACTS = Path(os.environ.get('MLOPS_TEST_ARTIFACTS', SOURCE_TREE/'test-artifacts'))
BIN = Path(sys.executable).parent

@pytest.fixture(scope='session')
def source_tree()->Path: return SOURCE_TREE

@pytest.fixture(scope='session')
def artifacts()->Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True); return ARTIFACTS

PIPELINE_FILES = ('dvc.yaml', 'params.yaml', '.gitignore', '.dvc/config', '.dvc/.gitignore', 'constraints.txt', 'settings.ini',
                  'pretrained/README.md')

def copy_pipeline(source:Path, root:Path):
    """A pipeline project at `root`: this repo's pipeline files, the code deps `dvc.yaml` lists (the package source
    `mlops_nb/`, what nbdev_export writes, and the stages' pinned environments `envs/`), and the stage notebooks shipped
    with the installed package."""
    from mlops_nb.runner import packaged_notebooks
    (root/'.dvc').mkdir(parents=True); (root/'nbs').mkdir()
    for f in PIPELINE_FILES:
        (root/f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source/f, root/f)
    for d in ('mlops_nb', 'envs'): shutil.copytree(source/d, root/d, ignore=shutil.ignore_patterns('__pycache__'))
    nbs = sorted(packaged_notebooks().glob('[0-9]*_*.ipynb'))
    assert nbs, f'no stage notebooks in {packaged_notebooks()}'
    for nb in nbs: shutil.copy(nb, root/'nbs'/nb.name)

def git(cwd, *args):
    return subprocess.run(['git', '-c', 'user.name=test', '-c', 'user.email=test@example.com', *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout

@pytest.fixture
def project(tmp_path, monkeypatch)->Path:
    "An empty project (git repo + params.yaml) as the working directory; stages come from the installed package."
    root = tmp_path/'proj'; root.mkdir()
    (root/'params.yaml').write_text('{}\n')
    git(root, 'init', '-q'); git(root, 'add', '.'); git(root, 'commit', '-qm', 'init')
    monkeypatch.chdir(root)
    monkeypatch.delenv('MLOPS_NB_ROOT', raising=False)
    return root

def cli(*args, cwd=None, env=None, timeout=900)->subprocess.CompletedProcess:
    "Run the installed `mlops-nb` console script."
    e = {**os.environ, **(env or {})}
    return subprocess.run([str(BIN/'mlops-nb'), *map(str, args)], cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout)

@pytest.fixture(scope='session')
def run_cli(): return cli

def backbone_weights(dataset:Path, out:Path, arch:str='test_resnet', epochs:int=3, size:int=16)->Path:
    """Weights a test can start from, made here (nothing is downloaded): `arch` trained briefly on `dataset`, its body
    saved as the library saves a model without its classifier (timm keys)."""
    import torch
    from mlops_nb.params import TrainParams
    from mlops_nb.train import train_model
    work = out.parent/f'.{out.name}.model'
    train_model(TrainParams(dataset=str(dataset), out=str(work), live_dir='', metrics_fp='', arch=arch, size=size,
                            epochs=epochs, lr=1e-2, seed=1))
    sd = torch.load(work/'best-model.pth', weights_only=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k.removeprefix('0.model.'): v for k,v in sd.items() if k.startswith('0.model.')}, out)
    shutil.rmtree(work)
    return out
