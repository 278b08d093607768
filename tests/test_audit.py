"""The label audit end to end with the real Label Studio: a digits project with four labels flipped on purpose is
exported and built by the pipeline's own stage functions, the audit stage (K-fold `train_model` + cleanlab) flags the
flips, `mlops-nb review` puts one suggestion on each flagged task and keeps the "Needs a second look" view; a rerun
adds nothing, a task annotated since loses its review suggestion, no annotation is ever modified. A project with one
class, or fewer labeled images than folds, fails the stage with one line (exit 1, like every stage that fails on its
data) and writes no audit."""
import json, os, uuid
from pathlib import Path
import pytest
from mlops_nb.audit import audit_labels
from mlops_nb.core import digit_png
from mlops_nb.dataset import build_dataset
from mlops_nb.folder import sample_dataset
from mlops_nb.labelstudio import choice_result, export_project
from mlops_nb.labelstudio_client import connect
from mlops_nb.params import build_params
from mlops_nb.review import REVIEW_VIEW, review_project

N, FLIPS = 300, (3, 78, 153, 228)  # the images, and the ones whose label is turned into (digit + 3) % 10

@pytest.fixture(scope='module')
def audited(labelstudio, tmp_path_factory):
    "The project, its export, dataset and audit (4 folds, 12 epochs, 16 px: about 10 s on 2 cores)."
    root = tmp_path_factory.mktemp('audit')
    env = {'MLOPS_NB_ROOT': str(root), **labelstudio.env}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        p = labelstudio.make_project(f'audit-{uuid.uuid4().hex[:8]}')
        pngs = [digit_png(i, 16) for i in range(N)]
        urls = labelstudio.upload(p.id, {f'{i}.png': png for i,(png,_) in enumerate(pngs)})
        labels = [str((int(l)+3) % 10) if i in FLIPS else l for i,(_,l) in enumerate(pngs)]
        ids = labelstudio.import_tasks(p.id, [{'data': {'image': u}, 'annotations': [l]} for u,l in zip(urls, labels)])
        export_project(build_params('labelstudio', {'project': p.id, 'out': 'data/raw_labels/pool.json'}))
        build_dataset(build_params('dataset', {'export': 'data/raw_labels/pool.json', 'out': 'data/datasets/pool',
                                               'metrics_fp': 'metrics/dataset-pool.json', 'benchmark': '',
                                               'cache_dir': ''}))
        ap = build_params('audit', {'folds': 4, 'epochs': 12}, section='audit.pool', name='pool')
        res = audit_labels(ap, {'size': 16, 'bs': 16})
        yield dict(project=p, root=root, flipped={str(ids[i]) for i in FLIPS}, audit=res.record, path=res.path)
    finally:
        for k,v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v

def annotations(labelstudio, pid)->dict:
    "task id -> [(annotation id, result, updated_at)] of every task of the project."
    return {t.id: [(a.id, a.result, a.updated_at) for a in labelstudio.client.annotations.list(id=t.id)]
            for t in labelstudio.client.tasks.list(project=pid, fields='task_only')}

def reviews(labelstudio, pid)->dict:
    return {p.task: p for p in labelstudio.client.predictions.list(project=pid) if p.model_version.startswith('label-review-')}

def test_audit_flags_the_flipped_labels(audited):
    "The flips are found with few false alarms; the file says what was audited and links each task."
    a = audited['audit']
    got = {f['task_id'] for f in a['flagged']}
    assert len(got & audited['flipped']) >= 3 and len(got) <= 3*len(FLIPS), (sorted(got), sorted(audited['flipped']))
    assert a['n_labeled'] == N and a['n_flagged'] == len(a['flagged']) and a['version'].startswith('label-review-')
    worst = [f['quality'] for f in a['flagged']]
    assert worst == sorted(worst)
    flip = next(f for f in a['flagged'] if f['task_id'] in audited['flipped'])
    assert int(flip['suggested']) == (int(flip['given']) - 3) % 10  # it suggests the digit the image shows
    assert flip['annotation_ids'] and flip['annotations_at']
    assert a['labelstudio']['project_id'] == audited['project'].id
    assert json.loads(audited['path'].read_text()) == a

def test_review_pushes_each_flag_once_and_never_touches_annotations(labelstudio, audited, monkeypatch):
    for k,v in labelstudio.env.items(): monkeypatch.setenv(k, v)
    pid,a = audited['project'].id,audited['audit']
    before = annotations(labelstudio, pid)
    r = review_project(connect(), 'pool', pid, a)
    assert (r.pushed, r.deleted, r.changed) == (a['n_flagged'], 0, 0), r.line()
    revs = reviews(labelstudio, pid)
    assert set(map(str, revs)) == {f['task_id'] for f in a['flagged']}
    for f in a['flagged']:
        p = revs[int(f['task_id'])]
        assert p.model_version == a['version'] and p.score == pytest.approx(f['quality'])
        assert p.result[0]['value']['choices'] == [f['suggested']] and p.result[0]['from_name'] == 'label'
    # a project without a selection of its own (like the benchmark) selects the audit: worst first, shown when labeling
    assert r.selected and labelstudio.client.projects.get(id=pid).model_version == a['version']
    views = [v for v in labelstudio.client.views.list(project=pid) if v.data.get('title') == REVIEW_VIEW]
    assert len(views) == 1 and r.view_url.endswith(f'tab={views[0].id}')
    with labelstudio.http() as h:
        listed = h.get('/api/tasks', params={'view': views[0].id, 'project': pid}).raise_for_status().json()['tasks']
    assert [str(t['id']) for t in listed] == [f['task_id'] for f in a['flagged']]  # exactly the flags, worst first
    again = review_project(connect(), 'pool', pid, a)
    assert (again.pushed, again.deleted, again.shown) == (0, 0, a['n_flagged'])
    assert reviews(labelstudio, pid).keys() == revs.keys()
    assert annotations(labelstudio, pid) == before  # the system never changes a label

def test_a_task_annotated_since_loses_its_review(labelstudio, audited, monkeypatch):
    for k,v in labelstudio.env.items(): monkeypatch.setenv(k, v)
    pid,a = audited['project'].id,audited['audit']
    fixed = int(a['flagged'][0]['task_id'])
    labelstudio.client.annotations.create(id=fixed, result=choice_result(a['flagged'][0]['suggested']))
    r = review_project(connect(), 'pool', pid, a)
    assert (r.pushed, r.deleted, r.changed) == (0, 1, 1), r.line()
    assert fixed not in reviews(labelstudio, pid) and len(reviews(labelstudio, pid)) == a['n_flagged'] - 1

@pytest.mark.parametrize('classes,n,message', [(['3'], 20, 'audit digits: only one class (3) is labeled'),
                                                (None, 3, 'audit digits: 3 labeled images, fewer than folds=5')])
def test_too_little_to_audit_is_one_line(project, run_cli, classes, n, message):
    sample_dataset(project/'data/sample/datasets/digits', n=n, size=8, classes=classes)
    r = run_cli('run', 'audit', '--sample', cwd=project)
    err = [l for l in r.stderr.splitlines() if 'error' in l.lower()]
    assert r.returncode == 1 and len(err) == 1 and message in err[0] and 'Traceback' not in r.stderr, r.stderr
    assert not (project/'data/sample/metrics/audit-digits.json').exists()
