"""The train stage against the installed package: artifacts and the weights-only contract, predict from the two files
alone, dvclive curves that DVC reads, determinism across runs, a killed run that leaves the previous model intact,
one-line errors that write nothing, and the stage through papermill on the full digits set (>= 0.9 accuracy, < 2 min)."""
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path
import pytest
from conftest import cli, git
from mlops_nb.core import MlopsError, sha256_bytes

BIN = Path(sys.executable).parent
SECRET = 'ls-secret-0123456789abcdef'

@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv('MLOPS_PROGRESS', 'plain')
    monkeypatch.setenv('LABEL_STUDIO_API_KEY', SECRET)   # must never show up in any output

@pytest.fixture(scope='module')
def digits(tmp_path_factory)->Path:
    from mlops_nb.folder import sample_dataset
    return sample_dataset(tmp_path_factory.mktemp('ds')/'digits', n=240, size=16)

def snapshot(d:Path)->dict:
    return {str(p.relative_to(d)): sha256_bytes(p.read_bytes()) for p in sorted(d.rglob('*')) if p.is_file()} if d.exists() else {}

RUNTIME = ('cbs', 'device', 'autotune', 'num_workers', 'threads')   # train_model's keywords outside TrainParams

def params(ds, out, **kw):
    "TrainParams for `ds` -> `out` (paths as strings, no dvclive unless `live_dir`)."
    from mlops_nb.params import TrainParams
    kw = {k: str(v) if isinstance(v, Path) else v for k,v in kw.items()}
    return TrainParams(dataset=str(ds), out=str(out), **{'live_dir': '', **kw})

def tiny(ds, out, **kw):
    from mlops_nb.train import train_model
    kw = {'size': 16, 'bs': 32, 'epochs': 2, 'lr': 1e-2, 'seed': 1, **kw}
    extra = {k: kw.pop(k) for k in RUNTIME if k in kw}
    return train_model(params(ds, out, **kw), **extra)

def test_import_is_cheap():
    "The CLI imports stage modules lazily; importing the train module itself must not pull in torch or fastai."
    r = subprocess.run([sys.executable, '-c', 'import sys, mlops_nb.train; print(sorted(m for m in ("torch", "fastai", "dvclive") if m in sys.modules))'],
                       capture_output=True, text=True, check=True)
    assert r.stdout.strip() == '[]'

def test_artifacts_predict_and_dvclive(project, digits, tmp_path):
    "Outputs of one run: weights-only state_dict + card, predict from a copy of just those two files, dvclive read by DVC."
    import torch
    subprocess.run([str(BIN/'dvc'), 'init', '-q'], cwd=project, check=True)
    (project/'dvc.yaml').write_text(textwrap.dedent('''\
        metrics:
          - dvclive/metrics.json
        plots:
          - dvclive/plots/metrics:
              x: step
        '''))
    r = tiny(digits, project/'data/models', metrics=['accuracy', 'macro_f1'], monitor='valid_loss', live_dir=project/'dvclive')
    m = project/'data/models'
    assert sorted(p.name for p in m.iterdir()) == ['best-model.pth', 'model.json']
    sd = torch.load(m/'best-model.pth', weights_only=True)
    assert isinstance(sd, dict) and all(isinstance(v, torch.Tensor) for v in sd.values())
    card = json.loads((m/'model.json').read_text())
    assert card['classes'] == [str(i) for i in range(10)] and card['arch'] == 'cnn' and card['size'] == 16
    assert card['dataset_sha256'] == sha256_bytes((digits/'labels.csv').read_bytes())
    assert card['git_commit'] == git(project, 'rev-parse', 'HEAD').strip()
    assert len(card['normalize']['mean']) == 3 and card['params']['monitor'] == 'valid_loss'
    assert card['best']['valid_loss'] == min(h['valid_loss'] for h in r.history) == r.metrics['valid_loss']
    assert card['weights_sha256'] == sha256_bytes((m/'best-model.pth').read_bytes())
    # predict needs only the two files: copy them elsewhere and classify in a fresh interpreter (no fastai for `cnn`)
    other = tmp_path/'copy'; other.mkdir()
    for f in ('best-model.pth', 'model.json'): (other/f).write_bytes((m/f).read_bytes())
    rows = [l.split(',') for l in (digits/'labels.csv').read_text().splitlines()[1:]]
    valid = [(digits/f, lab) for f,lab,split,*_ in rows if split == 'valid']
    code = ('import json, sys; from mlops_nb.predict import predict\n'
            f'p = predict({str(other)!r}, json.load(sys.stdin))\n'
            'print(json.dumps({"labels": p.labels, "conf": p.confidences, "shape": list(p.probs.shape), "fastai": "fastai" in sys.modules}))')
    out = subprocess.run([sys.executable, '-c', code], input=json.dumps([str(f) for f,_ in valid]), capture_output=True, text=True, check=True)
    p = json.loads(out.stdout)
    assert p['shape'] == [len(valid), 10] and not p['fastai']
    assert all(0.1 <= c <= 1 for c in p['conf'])
    acc = sum(l == lab for l,(_,lab) in zip(p['labels'], valid))/len(valid)
    hist = {h['epoch']: h for h in r.history}
    # the metric fastai computed for the kept epoch is what predict reproduces from the files
    assert acc == pytest.approx(hist[r.best_epoch]['accuracy'], abs=1e-6)
    # dvclive: per-epoch curves and a summary, read back by DVC; no experiment, no dvc.yaml of its own
    live = project/'dvclive'
    assert json.loads((live/'metrics.json').read_text())['best']['epoch'] == r.best_epoch
    tsv = (live/'plots/metrics/eval/loss.tsv').read_text().splitlines()   # dvclive's names: train/loss, eval/loss, accuracy, ...
    assert tsv[0].split('\t') == ['step', 'loss'] and len(tsv) == 1+len(r.history)
    assert [float(l.split('\t')[1]) for l in tsv[1:]] == pytest.approx([h['valid_loss'] for h in r.history])
    assert not (live/'dvc.yaml').exists()
    dvc = lambda *a: subprocess.run([str(BIN/'dvc'), *a], cwd=project, capture_output=True, text=True)
    ms = dvc('metrics', 'show', '--json'); assert ms.returncode == 0, ms.stderr
    assert 'macro_f1' in ms.stdout and '"eval"' in ms.stdout
    ps = dvc('plots', 'show', '--json'); assert ps.returncode == 0, ps.stderr
    assert 'dvclive/plots/metrics/accuracy.tsv' in ps.stdout
    assert dvc('exp', 'list').stdout.strip() == ''   # save_dvc_exp off: no experiment refs created behind the user's back
    for f in [*m.iterdir(), *live.rglob('*')]:
        if f.is_file(): assert SECRET.encode() not in f.read_bytes()

def test_dvclive_never_inits_dvc(project, digits):
    "In a git repo that is not a DVC project, dvclive would `dvc init` it; the stage must only write its files."
    tiny(digits, project/'m', epochs=1, live_dir=project/'dvclive')
    assert not (project/'.dvc').exists()
    assert (project/'dvclive/metrics.json').is_file()
    assert git(project, 'status', '--porcelain', '--untracked-files=no').strip() == ''

def test_same_seed_same_metrics_and_weights(digits, tmp_path):
    a = tiny(digits, tmp_path/'a', augment=True)
    b = tiny(digits, tmp_path/'b', augment=True)
    c = tiny(digits, tmp_path/'c', augment=True, seed=2)
    assert a.history == b.history and a.metrics == b.metrics
    assert (tmp_path/'a/best-model.pth').read_bytes() == (tmp_path/'b/best-model.pth').read_bytes()
    assert c.history != a.history   # the seed matters, so the equality above is not vacuous

def test_killed_run_leaves_previous_model(digits, tmp_path):
    out = tmp_path/'models'
    tiny(digits, out, epochs=1)
    before = snapshot(out)
    code = ('from mlops_nb.params import TrainParams; from mlops_nb.train import train_model; '
            f'train_model(TrainParams(dataset={str(digits)!r}, out={str(out)!r}, size=16, bs=8, epochs=200, lr=1e-2, live_dir=""))')
    p = subprocess.Popen([sys.executable, '-c', code], stderr=subprocess.PIPE, text=True, env={**os.environ, 'MLOPS_PROGRESS': 'plain'})
    t0,seen = time.time(),''
    try:
        while time.time()-t0 < 120:
            line = p.stderr.readline()
            seen += line
            if '[train] epoch 1/200' in line or not line: break
        assert '[train] epoch 1/200' in seen, seen[-2000:]
    finally:
        p.send_signal(signal.SIGKILL); p.wait()
    assert p.returncode == -signal.SIGKILL
    assert snapshot(out) == before
    assert sorted(f.name for f in out.iterdir()) == ['best-model.pth', 'model.json']   # no temp files left behind

def _pickled(p): import torch; torch.save(torch.nn.Linear(2, 2), p)
def _not_sd(p): import torch; torch.save({'epoch': 3, 'weights': [1, 2]}, p)

@pytest.mark.parametrize('case,kw,expect', [
    ('unknown backbone', {'arch': 'resnet19'}, "unknown backbone train.arch='resnet19'"),
    ('bs zero', {'bs': 0}, 'train.bs must be >= 1'),
    ('bs negative', {'bs': -4}, 'train.bs must be >= 1'),
    ('size float', {'size': 28.0}, 'train.size must be an integer'),
    ('size string', {'size': '28'}, 'train.size must be an integer'),
    ('lr junk', {'lr': 'fast'}, 'train.lr must be'),
    ('metric', {'metrics': ['acc']}, 'unknown metric(s) in train.metrics: acc'),
    ('monitor', {'monitor': 'macro_f1'}, 'train.monitor'),
    ('empty dataset', {'dataset': 'empty'}, 'has no training images'),
    ('class without training images', {'dataset': 'lonely'}, "classes '4', '9' have no training images"),
    ('one class', {'dataset': 'oneclass'}, "has 1 class ('3'): a classifier needs two or more"),
    ('missing dataset', {'dataset': 'missing'}, 'labels.csv not found'),
    ('missing image', {'dataset': 'gone'}, 'listed in labels.csv is missing'),
    ('cache mode', {'cache': 'disk'}, "train.cache must be"),
    ('checkpoint not a state_dict', {'ckpt': _not_sd}, 'is not a state_dict'),
    ('pickled checkpoint', {'ckpt': _pickled}, 'holds pickled objects, refused by weights-only loading'),
    ('checkpoint not torch', {'ckpt': lambda p: p.write_text('hello')}, 'is not a torch file'),
    ('pretrained not cached', {'arch': 'resnet18', 'pretrained': True}, 'nothing is downloaded at run time'),
], ids=lambda v: v if isinstance(v, str) and ' ' in v else None)
def test_bad_input_one_line_nothing_written(case, kw, expect, digits, tmp_path, monkeypatch):
    from mlops_nb.train import train_model
    from mlops_nb.folder import sample_dataset, LABEL_COLUMNS
    monkeypatch.setenv('TORCH_HOME', str(tmp_path/'torch-home'))
    ds = digits
    if kw.get('dataset') == 'empty':
        ds = tmp_path/'empty'; ds.mkdir(); (ds/'labels.csv').write_text(','.join(LABEL_COLUMNS)+'\n'); (ds/'dataset.json').write_text('{"classes": []}')
    elif kw.get('dataset') == 'lonely': ds = sample_dataset(tmp_path/'lonely', n=10, size=16)
    elif kw.get('dataset') == 'oneclass': ds = sample_dataset(tmp_path/'oneclass', n=100, size=16, classes=['3'])
    elif kw.get('dataset') == 'missing': ds = tmp_path/'nope'
    elif kw.get('dataset') == 'gone':
        ds = sample_dataset(tmp_path/'gone', n=40, size=16); next((ds/'images').iterdir()).unlink()
    args = {k: v for k,v in kw.items() if k not in ('dataset', 'ckpt')}
    if 'ckpt' in kw: kw['ckpt'](tmp_path/'ck.pth'); args['in_checkpoint'] = tmp_path/'ck.pth'
    with pytest.raises(MlopsError) as e: train_model(params(ds, tmp_path/'out', live_dir=tmp_path/'live', **{'size': 16, **args}))
    assert expect in str(e.value) and '\n' not in str(e.value)
    assert not (tmp_path/'out').exists() and not (tmp_path/'live').exists()

def test_checkpoint_classes(digits, tmp_path):
    "Fine-tuning from a checkpoint: same classes load as is; other classes are an error, or a reported head re-init."
    from mlops_nb.folder import sample_dataset
    tiny(digits, tmp_path/'base', epochs=1)
    ck = tmp_path/'base/best-model.pth'
    r = tiny(digits, tmp_path/'ft', epochs=1, in_checkpoint=ck)
    assert r.reinit == [] and r.metrics['accuracy'] > 0.3   # starts from trained weights
    six = sample_dataset(tmp_path/'six', n=240, size=16, classes=list('012345'))
    with pytest.raises(MlopsError, match='was trained on other classes'): tiny(six, tmp_path/'x', in_checkpoint=ck)
    assert not (tmp_path/'x').exists()
    r = tiny(six, tmp_path/'x', epochs=1, in_checkpoint=ck, on_class_mismatch='reinit')
    card = json.loads((tmp_path/'x/model.json').read_text())
    assert r.reinit == card['reinit'] == ['11.weight', '11.bias'] and card['classes'] == list('012345')
    with pytest.raises(MlopsError, match='does not fit arch resnet18'): tiny(digits, tmp_path/'y', arch='resnet18', in_checkpoint=ck)

def test_lr_auto_uses_lr_find(digits, tmp_path):
    r = tiny(digits, tmp_path/'m', epochs=1, lr='auto')
    card = json.loads((tmp_path/'m/model.json').read_text())
    assert card['params']['lr'] == 'auto' and card['params']['lr_used'] == r.lr and 1e-6 < r.lr < 10

def test_lr_find_curve_in_the_report(project, digits):
    """`lr: find` runs fastai's learning-rate finder: its suggestion is the lr used, its curve a figure of the run's
    report (the executed notebook), which the runs page lists under the train run."""
    import shutil, yaml
    from mlops_nb.report import pick_figures
    from mlops_nb.runs import run_info
    shutil.copytree(digits, project/'data/datasets/digits')
    (project/'params.yaml').write_text(yaml.safe_dump({'train': {'lr': 'find', 'epochs': 1, 'size': 16}}))
    r = cli('run', 'train', env={'CUDA_VISIBLE_DEVICES': ''})
    assert r.returncode == 0, r.stderr[-3000:]
    info = run_info(project/'runs/train/latest.ipynb')
    assert [i[0] for i in info.images] == ['lr_find'] and info.images[0][1] == 'image/png'
    card = json.loads((project/'data/models/model.json').read_text())
    assert card['params']['lr'] == 'find' and info.scraps['lr'] == card['params']['lr_used']
    figs = pick_figures([info], project/'runs', live_dir=project/'dvclive')
    assert [f.title.split(' (')[0] for f in figs] == ['Training curve', 'train: lr_find'], [f.title for f in figs]

def test_stage_through_papermill_on_demo_sized_digits(project, source_tree, artifacts):
    """`mlops-nb run train` with the project's own params.yaml train section on a dataset shaped like the demo pool
    (300 digits, 32 px): >= 0.9 validation accuracy on CPU in under 2 minutes, plain per-epoch lines in the report,
    metrics for DVC, and no secret anywhere in what the stage wrote."""
    import yaml
    from mlops_nb.folder import sample_dataset
    (project/'params.yaml').write_text((source_tree/'params.yaml').read_text())
    from mlops_nb.params import TrainParams
    train = {**TrainParams().to_dict(), **yaml.safe_load((project/'params.yaml').read_text())['train']}
    ds = sample_dataset(project/train['dataset'], n=300, size=32)
    t0 = time.time()
    r = cli('run', 'train', env={'CUDA_VISIBLE_DEVICES': ''})
    stage_seconds = time.time()-t0
    assert r.returncode == 0, r.stderr[-3000:]
    from mlops_nb.runner import read_scraps
    nb = project/'runs/train/latest.ipynb'
    s = read_scraps(nb)
    (artifacts/'train-demo-digits.json').write_text(json.dumps({**s, 'stage_seconds': round(stage_seconds, 1)}, indent=2))
    assert s['valid_accuracy'] >= 0.9, s
    assert s['seconds'] < 120 and stage_seconds < 180, (s['seconds'], stage_seconds)
    assert s['n_train'] + s['n_valid'] == len((ds/'labels.csv').read_text().splitlines()) - 1
    m = json.loads((project/train['metrics_fp']).read_text())
    assert m['valid_accuracy'] == s['valid_accuracy'] and m['n_train'] == s['n_train']
    card = json.loads((project/train['out']/'model.json').read_text())
    assert card['params']['epochs'] == train['epochs'] and card['params']['lr'] == train['lr']
    text = nb.read_text()
    assert f'[train] epoch {train["epochs"]}/{train["epochs"]}' in text and 'progress-bar' not in text   # plain lines, no bars
    assert (project/'dvclive/metrics.json').is_file()
    for f in [nb, *(project/train['out']).iterdir(), project/train['metrics_fp'], *(project/'dvclive').rglob('*.*')]:
        assert SECRET not in f.read_text(errors='replace'), f

def test_torchvision_backbone_trains_and_predicts(digits, tmp_path):
    "A torchvision backbone by name (not only the small CNN): trains from scratch, and predict() loads it from the two files."
    from mlops_nb.predict import predict
    res = tiny(digits, tmp_path/'r18', arch='resnet18', epochs=1, size=16)
    card = json.loads((tmp_path/'r18/model.json').read_text())
    assert card['arch'] == 'resnet18' and len(card['classes']) == 10
    imgs = sorted((digits/'images').glob('*.png'))[:4]
    p = predict(tmp_path/'r18', imgs)
    assert len(p.labels) == 4 and all(l in card['classes'] for l in p.labels)

def test_decoding_every_epoch_in_workers_is_the_same_run(digits, tmp_path):
    """The data path (issue 16): images decoded every epoch by 2 worker processes (kept across epochs) give the very run
    that decoding once into memory gives: same order, same pixels, so the same metrics and byte-identical weights."""
    a = tiny(digits, tmp_path/'mem', cache='memory', epochs=3)
    b = tiny(digits, tmp_path/'stream', cache='none', num_workers=2, epochs=3)
    assert a.history == b.history
    assert (tmp_path/'mem/best-model.pth').read_bytes() == (tmp_path/'stream/best-model.pth').read_bytes()
    card = json.loads((tmp_path/'stream/model.json').read_text())
    assert card['preprocess']['resize'] == 'crop' and card['preprocess']['size'] == [16, 16]

def test_bs_auto_on_cpu_is_recorded(digits, tmp_path):
    "`bs: auto` trains with the chosen batch size (64 on CPU, fewer when an epoch would get < 8 steps) and says so."
    r = tiny(digits, tmp_path/'m', bs='auto', epochs=1)
    card = json.loads((tmp_path/'m/model.json').read_text())
    assert card['params']['bs'] == 'auto' and card['params']['bs_used'] == min(64, r.n_train//8)

def test_gpu_bench_skips_without_cuda_and_runs_on_cpu(source_tree):
    "bench/bench_gpu.py, the prepared device check: one line and exit 0 without CUDA; its pieces run on tiny CPU data."
    env = {**os.environ, 'CUDA_VISIBLE_DEVICES': ''}
    script = str(source_tree/'bench/bench_gpu.py')
    r = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith('bench_gpu: skipped: no CUDA device') and len(r.stdout.splitlines()) == 1, r.stdout
    r = subprocess.run([sys.executable, script, '--cpu-smoke'], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'CPU smoke run, not recorded' in r.stdout and 'train_model decoding / hand-written loop' in r.stdout
