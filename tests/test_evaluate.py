"""Evaluate stage: exact metrics on a constructed case, the metrics/plots contract, atomic failure,
a real trained model end to end, the stage notebook through papermill, and DVC reading the metrics."""
import csv, json, subprocess, sys
from pathlib import Path
from types import SimpleNamespace
import numpy as np
import pytest
from conftest import cli, git
from mlops_nb.core import MlopsError, sha256_bytes, sha256_file
from mlops_nb.evaluate import classification_metrics, evaluate_model
from mlops_nb.folder import DatasetFolder, sample_dataset
from mlops_nb.params import EvaluateParams

# where the pipeline (dvc.yaml) writes the results; EvaluateParams' own defaults are the notebook's sample paths
PIPELINE_PATHS = dict(metrics_fp='metrics/benchmark.json', plots_dir='plots', overlay_dir='plots/mistakes')

def stub_predictor(wrong_tasks, classes=tuple('0123456789')):
    "A stand-in for predict.predict: right except on `wrong_tasks` (predicts the next digit there, confidence .9)."
    def predict(model_dir, paths):
        by_file = {}
        for bdir in {Path(p).parent.parent for p in paths}:
            by_file.update({r['file'].split('/')[-1]: r for r in DatasetFolder.read(bdir).split('benchmark')})
        labels,confs,probs = [],[],[]
        for p in paths:
            r = by_file[Path(p).name]
            wrong = int(r['task_id']) in wrong_tasks
            lab = str((int(r['label'])+1) % 10) if wrong else r['label']
            c = .9 if wrong else .8
            pr = np.full(len(classes), (1-c)/(len(classes)-1)); pr[classes.index(lab)] = c
            labels.append(lab); confs.append(c); probs.append(pr)
        return SimpleNamespace(classes=list(classes), labels=labels, confidences=confs, probs=np.array(probs))
    return predict

def fake_model(d:Path, weights:bytes=b'weights-1')->Path:
    d.mkdir(parents=True, exist_ok=True)
    (d/'best-model.pth').write_bytes(weights)
    (d/'model.json').write_text(json.dumps({'arch': 'stub', 'dataset_sha256': 'd'*64, 'params': {'epochs': 1}}))
    return d

def test_metrics_exact_on_constructed_case():
    # rows true, cols predicted: a: 2 1 0 / b: 0 2 1 / c: 0 0 2
    yt = ['a', 'a', 'a', 'b', 'b', 'b', 'c', 'c']
    yp = ['a', 'a', 'b', 'b', 'b', 'c', 'c', 'c']
    probs = np.array([[.8, .1, .1]]*2 + [[.4, .5, .1]] + [[.1, .8, .1]]*2 + [[.1, .3, .6]] + [[.1, .1, .8]]*2)
    m = classification_metrics(yt, yp, ['a', 'b', 'c'], probs)
    assert m['confusion_matrix'] == {'labels': ['a', 'b', 'c'], 'rows_true_cols_pred': [[2, 1, 0], [0, 2, 1], [0, 0, 2]]}
    assert (m['accuracy'], m['n'], m['n_errors']) == (0.75, 8, 2)
    assert m['per_class'] == {'a': {'precision': 1.0, 'recall': 0.666667, 'f1': 0.8, 'support': 3},
                              'b': {'precision': 0.666667, 'recall': 0.666667, 'f1': 0.666667, 'support': 3},
                              'c': {'precision': 0.666667, 'recall': 1.0, 'f1': 0.8, 'support': 2}}
    assert m['macro_f1'] == round((0.8 + 2/3 + 0.8)/3, 6) == 0.755556
    p_true = [.8, .8, .4, .8, .8, .3, .8, .8]
    assert m['log_loss'] == round(-np.mean(np.log(p_true)), 6)

def test_evaluate_writes_metrics_plots_and_capped_gallery(project):
    bench = sample_dataset(project/'data/bench', n=20, size=32, mode='benchmark')
    tasks = [int(r['task_id']) for r in DatasetFolder.read(bench).split('benchmark')]
    wrong = set(tasks[::4])   # 5 mistakes
    model = fake_model(project/'data/models')
    r = evaluate_model(EvaluateParams(**PIPELINE_PATHS, model_dir='data/models', benchmark_dir='data/bench', max_overlays=3), predict_fn=stub_predictor(wrong))
    fp = project/'metrics/benchmark.json'
    m = json.loads(fp.read_text())
    head = git(project, 'rev-parse', 'HEAD').strip()
    assert m['git'] == {'commit': head, 'dirty': False}
    assert m['model']['sha256'] == sha256_bytes(b'weights-1') and m['model']['arch'] == 'stub'
    assert m['benchmark']['labels_sha256'] == sha256_file(bench/'labels.csv') and m['benchmark']['dir'] == 'data/bench'
    assert (m['n'], m['n_errors'], m['accuracy']) == (20, 5, 0.75)
    assert sum(row[i] for i,row in enumerate(m['confusion_matrix']['rows_true_cols_pred'])) == 15
    # plots: DVC confusion data, PNGs, overlays capped at 3, most confident (all .9) first by task id
    recs = json.loads((project/'plots/confusion.json').read_text())
    assert len(recs) == 20 and sum(x['actual'] != x['predicted'] for x in recs) == 5
    for png in ('plots/confusion.png', 'plots/mistakes.png'): assert (project/png).read_bytes()[:4] == b'\x89PNG'
    idx = json.loads((project/'plots/mistakes/mistakes.json').read_text())
    assert [e['task_id'] for e in idx] == sorted(wrong)[:3]
    assert sorted(p.name for p in (project/'plots/mistakes').glob('*.png')) == sorted(e['overlay'] for e in idx) == sorted(p.name for p in r.overlays)
    # deterministic: same inputs, same bytes
    before = fp.read_bytes()
    evaluate_model(EvaluateParams(**PIPELINE_PATHS, model_dir='data/models', benchmark_dir='data/bench', max_overlays=3), predict_fn=stub_predictor(wrong))
    assert fp.read_bytes() == before
    # a dirty tree is recorded
    (project/'params.yaml').write_text('evaluate: {}\n')
    evaluate_model(EvaluateParams(**PIPELINE_PATHS, model_dir='data/models', benchmark_dir='data/bench', max_overlays=3), predict_fn=stub_predictor(wrong))
    assert json.loads(fp.read_text())['git'] == {'commit': head, 'dirty': True}

def test_failed_evaluation_leaves_previous_outputs(project):
    sample_dataset(project/'data/bench', n=8, size=32, mode='benchmark'); fake_model(project/'data/models')
    evaluate_model(EvaluateParams(**PIPELINE_PATHS, model_dir='data/models', benchmark_dir='data/bench'), predict_fn=stub_predictor(set()))
    snap = {p: p.read_bytes() for p in (project/'metrics').rglob('*') if p.is_file()} | {p: p.read_bytes() for p in (project/'plots').rglob('*') if p.is_file()}
    def boom(model_dir, paths): raise RuntimeError('predictor crashed')
    with pytest.raises(RuntimeError): evaluate_model(EvaluateParams(**PIPELINE_PATHS, model_dir='data/models', benchmark_dir='data/bench'), predict_fn=boom)
    with pytest.raises(MlopsError, match='no rows in split'): evaluate_model(EvaluateParams(**PIPELINE_PATHS, model_dir='data/models', benchmark_dir='data/bench', split='valid'), predict_fn=boom)
    after = {p: p.read_bytes() for p in (project/'metrics').rglob('*') if p.is_file()} | {p: p.read_bytes() for p in (project/'plots').rglob('*') if p.is_file()}
    assert after == snap

def test_stage_notebook_sample_run_and_dvc_reads_metrics(project):
    """The evaluate notebook top to bottom as a sample run, as papermill runs it: a synthetic benchmark and a tiny model
    built under data/sample/ by the train stage's own `train_model`, measured through `predict.predict` (a real end to end)."""
    predict = pytest.importorskip('mlops_nb.predict')
    r = cli('run', 'evaluate', '--sample', '-p', 'store=results/')
    assert r.returncode == 0, r.stderr[-2000:]
    from mlops_nb.runner import read_scraps
    nb = project/'runs/evaluate/latest.ipynb'
    s = read_scraps(nb)
    m = json.loads((project/'data/sample/metrics/benchmark.json').read_text())
    assert s['accuracy'] == m['accuracy'] and s['n'] == m['n'] == 20
    assert s['model_sha256'] == sha256_file(project/'data/sample/models/best-model.pth')
    # the metrics agree with the train stage's own predict on the same benchmark
    bench = project/'data/sample/datasets/digits-benchmark'
    rows = DatasetFolder.read(bench).split('benchmark')
    pred = predict.predict(project/'data/sample/models', [bench/x['file'] for x in rows])
    assert m['accuracy'] == round(float(np.mean([p == x['label'] for p,x in zip(pred.labels, rows)])), 6)
    assert m['model']['train_dataset_sha256'] == sha256_file(project/'data/sample/datasets/digits/labels.csv')
    assert len(list((project/'data/sample/plots/mistakes').glob('*.png'))) == min(16, m['n_errors'])
    text = nb.read_text()
    assert '"image/png"' in text   # the confusion matrix and the gallery are shown in the report
    # published to the local results store under the commit
    head = git(project, 'rev-parse', 'HEAD').strip()
    assert s['store_entry'].endswith(head) and (project/'results'/head/'entry.json').is_file()
    # DVC reads the metrics file (numbers flattened, provenance strings ignored)
    dvc = Path(sys.executable).parent/'dvc'
    subprocess.run([str(dvc), 'init', '-q'], cwd=project, check=True)
    out = subprocess.run([str(dvc), 'metrics', 'show', '--json', 'data/sample/metrics/benchmark.json'], cwd=project, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert '"accuracy": ' + str(m['accuracy']) in out.stdout.replace(' ', ' ')

HOSTILE_LABELS = ['a/b', '../../outside', 'x\x00y', '\u202egnp.exe', 'é' * 300, '<img src=x onerror=alert(4)>']

def test_hostile_labels_give_safe_overlay_names(project):
    """Issue 12 item 4: labels and task ids from Label Studio with `/`, `..`, NUL, a bidi control or 300 characters
    become safe overlay file names inside the overlay folder; the run exits 0 and leaves every earlier file as is.
    The model is trained on those labels (a benchmark label the model does not know is refused, issue 32)."""
    from mlops_nb.folder import write_dataset_folder
    from mlops_nb.params import TrainParams
    from mlops_nb.train import train_model
    relabels = dict(zip('012345', HOSTILE_LABELS))
    def relabel(src:Path, dest:Path, mode:str)->Path:
        f = DatasetFolder.read(src)
        rows = [{**r, 'label': relabels[r['label']]} for r in f.rows if r['label'] in relabels]
        if mode == 'benchmark': rows[0]['task_id'] = '../t/1'
        images = {r['file']: (f.path/r['file']).read_bytes() for r in rows}
        return write_dataset_folder(dest, rows, images, {'classes': HOSTILE_LABELS, 'mode': mode}).path
    train = relabel(sample_dataset(project/'tmp/train', n=120, size=16), project/'data/train', 'train')
    bench = relabel(sample_dataset(project/'tmp/bench', n=40, size=16, mode='benchmark'), project/'data/bench', 'benchmark')
    train_model(TrainParams(dataset=str(train), out=str(project/'data/hostile-model'), epochs=1, size=16, live_dir='',
                            metrics_fp=''))
    (project/'params.yaml').write_text(json.dumps({'evaluate': {'model_dir': 'data/hostile-model', 'benchmark_dir': 'data/bench',
                                                                'dataset_dir': 'data/train'}}))
    (project/'outside').write_text('not the overlay folder\n')
    before = {p: sha256_file(p) for p in project.rglob('*') if p.is_file() and '.git' not in p.parts}
    r = cli('run', 'evaluate')
    assert r.returncode == 0, r.stderr[-2000:]
    assert {p: sha256_file(p) for p in before} == before
    index = json.loads((project/'plots/mistakes/mistakes.json').read_text())
    assert {e['true'] for e in index} <= set(HOSTILE_LABELS) and index   # the real labels stay in the index
    names = sorted(p.name for p in (project/'plots/mistakes').iterdir())
    assert names == sorted([e['overlay'] for e in index] + ['mistakes.json'])
    for n in names:
        assert len(n.encode()) <= 255 and '..' not in n and all(c.isalnum() or c in '._-' for c in n), n
    made = {p for p in project.rglob('*') if p.is_file() and '.git' not in p.parts} - set(before)
    parts = [p.relative_to(project).parts for p in made]
    tops = {q[:2] if q[0] == 'data' else q[:1] for q in parts}
    assert tops <= {('runs',), ('metrics',), ('plots',), ('data', 'sample')}, tops   # nothing written anywhere else
