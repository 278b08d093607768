"""Issue 31: backbones by name (torchvision, timm) fine-tuned from a weights file the pipeline tracks, never downloaded.
The "pretrained" weights are made here: a small timm model trained briefly on sample digits, its body saved as a file."""
import json, subprocess
from pathlib import Path
import pytest, yaml
from conftest import backbone_weights, cli
from mlops_nb.core import sha256_file

ARCH = 'test_resnet'   # a tiny timm resnet: seconds on a CPU, fine at 16 px
NOWHERE = {'HTTP_PROXY': 'http://127.0.0.1:9', 'HTTPS_PROXY': 'http://127.0.0.1:9', 'NO_PROXY': '', 'no_proxy': '',
           'CUDA_VISIBLE_DEVICES': ''}

@pytest.fixture(scope='module')
def digits(tmp_path_factory)->Path:
    from mlops_nb.folder import sample_dataset
    return sample_dataset(tmp_path_factory.mktemp('ds')/'digits', n=240, size=16)

@pytest.fixture(scope='module')
def weights(digits, tmp_path_factory)->Path:
    "A timm body trained for 3 epochs on the digits (`conftest.backbone_weights`)."
    return backbone_weights(digits, tmp_path_factory.mktemp('pre')/f'{ARCH}-digits.pth', ARCH)

def test_fine_tune_from_weights_records_their_sha256(digits, weights, tmp_path):
    "Every body weight comes from the file; fine_tune runs the frozen epoch first; the card names the file's sha256."
    import torch
    from mlops_nb.models import create_model
    from mlops_nb.params import TrainParams
    from mlops_nb.train import train_model
    m,sd = create_model(ARCH, 10, weights=weights),torch.load(weights, weights_only=True)
    body = m[0].model.state_dict()
    assert set(body) == set(sd) and all(torch.equal(body[k], sd[k]) for k in sd)
    r = train_model(TrainParams(dataset=str(digits), out=str(tmp_path/'m'), live_dir='', metrics_fp='', arch=ARCH,
                                weights=str(weights), size=16, epochs=1, lr=1e-3, seed=1))
    card = json.loads((tmp_path/'m/model.json').read_text())
    assert card['params']['weights_sha256'] == sha256_file(weights) and card['params']['weights'] == weights.name
    assert card['params']['freeze_epochs'] == 1 and len(r.history) == 1    # the frozen epoch is not a candidate
    assert r.metrics['accuracy'] > 0.5, r.metrics    # a head on a body that already knows the digits

def test_stage_offline_and_mismatched_weights_refused(project, source_tree, digits, weights):
    """`mlops-nb run train` with a timm arch and a weights file, every proxy pointing nowhere: it trains, and the card
    names the file's sha256. Weights of another arch: one line naming both, exit 2, the previous model untouched."""
    import shutil
    shutil.copytree(digits, project/'data/datasets/digits')
    (project/'pretrained').mkdir(parents=True)
    shutil.copy(weights, project/'pretrained'/weights.name)
    train = {'arch': ARCH, 'weights': f'pretrained/{weights.name}', 'size': 16, 'epochs': 1, 'lr': 1e-3}
    (project/'params.yaml').write_text(yaml.safe_dump({'train': train}))
    r = cli('run', 'train', env=NOWHERE)
    assert r.returncode == 0, r.stderr[-3000:]
    card = json.loads((project/'data/models/model.json').read_text())
    assert card['arch'] == ARCH and card['params']['weights_sha256'] == sha256_file(weights)
    before = {p: p.read_bytes() for p in (project/'data/models').iterdir()}
    (project/'params.yaml').write_text(yaml.safe_dump({'train': {**train, 'arch': 'resnet18'}}))
    bad = cli('run', 'train', env=NOWHERE)
    err = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and 'Traceback' not in bad.stderr, bad.stderr[-3000:]
    assert any(f'weights {project}/pretrained/{weights.name} do not fit train.arch=resnet18' in l for l in err), err
    assert {p: p.read_bytes() for p in (project/'data/models').iterdir()} == before

def test_unknown_arch_lists_close_names_exit_2(project):
    "A misspelt backbone: one line with the closest torchvision and timm names, exit 2, before a kernel starts."
    (project/'params.yaml').write_text(yaml.safe_dump({'train': {'arch': 'convnext_ato'}}))
    r = cli('run', 'train')
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert "unknown backbone train.arch='convnext_ato'" in r.stderr and 'close names: convnext_atto' in r.stderr
    assert not (project/'runs').exists()   # no kernel, no report

ENV_NB = {'cells': [
    {'cell_type': 'code', 'metadata': {'tags': ['parameters']}, 'source': 'n = 1\n', 'outputs': [], 'execution_count': None},
    {'cell_type': 'code', 'metadata': {}, 'source': 'import os\nfrom mlops_nb.runner import glue\n'
     'for k in ("HF_HUB_OFFLINE", "HF_HOME", "TORCH_HOME"): glue(k, os.environ.get(k))\n',
     'outputs': [], 'execution_count': None}],
    'metadata': {'kernelspec': {'name': 'python3', 'language': 'python', 'display_name': 'python3'}},
    'nbformat': 4, 'nbformat_minor': 4}

def test_stage_kernels_run_offline(project, monkeypatch):
    "Every stage's kernel: the Hugging Face hub offline (whatever the caller set), its cache and torch's in the workspace."
    from mlops_nb.runner import read_scraps
    monkeypatch.delenv('TORCH_HOME', raising=False)
    (project/'nbs').mkdir()
    (project/'nbs/17_envcheck.ipynb').write_text(json.dumps(ENV_NB))
    r = cli('run', 'envcheck', '--sample', env={'HF_HUB_OFFLINE': '0', 'HF_HOME': '/somewhere/else'})
    assert r.returncode == 0, r.stderr[-2000:]
    s = read_scraps(project/'runs/envcheck/latest.ipynb')
    root = project.resolve()
    assert s['HF_HUB_OFFLINE'] == '1' and Path(s['HF_HOME']).resolve() == root/'.cache/huggingface', s
    assert Path(s['TORCH_HOME']).resolve() == root/'.cache/torch', s
