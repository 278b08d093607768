"""`mlops-nb suggest` against the real Label Studio: the champion's predictions arrive as pre-annotations on the
unannotated tasks, in the project's own label config, once; a new champion replaces them; annotated tasks and the
benchmark are left alone; the "Most uncertain first" view orders by score; a project without a single-choice control
is refused in one line. The models are random `cnn`s (`mlops_nb.testing.model_folder`): what is tested is the traffic,
not the accuracy (bench/ measures that)."""
import json, subprocess, sys, uuid
from pathlib import Path
import pytest, yaml
from mlops_nb.core import digit_png, sha256_file
from mlops_nb.dataset import resolve_inputs
from mlops_nb.labelstudio import label_config
from mlops_nb.labelstudio_client import connect
from mlops_nb.params import build_params
from mlops_nb.predict import load_model
from mlops_nb.suggest import UNCERTAIN_VIEW, model_version, suggest_project
from mlops_nb.testing import model_folder

BIN = Path(sys.executable).parent
DIGITS = [str(i) for i in range(10)]
OTHER_NAMES = label_config(DIGITS, from_name='label', to_name='img')  # <Choices name="label" toName="img">

@pytest.fixture(scope='module')
def site(labelstudio, tmp_path_factory):
    "Two models, a pool of 10 uploaded digits (4 annotated, one only skipped) and a project with other names."
    tmp = tmp_path_factory.mktemp('suggest')
    tag = uuid.uuid4().hex[:8]
    pool = labelstudio.make_project(f'suggest-pool-{tag}')
    refs = labelstudio.upload(pool.id, {f'{i}.png': digit_png(i, 16)[0] for i in range(10)})
    anns = {0: ['0'], 1: ['1'], 2: ['2'], 3: [{'label': None, 'was_cancelled': True}]}
    labelstudio.import_tasks(pool.id, [{'data': {'image': r}, 'annotations': anns.get(i, [])} for i,r in enumerate(refs)])
    other = labelstudio.make_project(f'suggest-other-{tag}', label_config=OTHER_NAMES)
    refs = labelstudio.upload(other.id, {f'{i}.png': digit_png(i, 16)[0] for i in range(3)})
    labelstudio.import_tasks(other.id, [{'img': r} for r in refs])
    models = {k: model_folder(tmp/k, DIGITS, seed=s) for k,s in (('a', 0), ('b', 1))}
    return dict(tmp=tmp, pool=pool, other=other, models=models, tag=tag)

def push(labelstudio, monkeypatch, site, project, which='a', **kw):
    for k,v in labelstudio.env.items(): monkeypatch.setenv(k, v)
    monkeypatch.setenv('MLOPS_NB_ROOT', str(site['tmp']))
    folder = site['models'][which]
    model = load_model(folder)
    version = model_version(model[1], sha256_file(folder/'best-model.pth'))
    inp = resolve_inputs(build_params('dataset', {'cache_dir': str(site['tmp']/'cache')}))
    return suggest_project(connect(), 'pool', project.id, model, version, inp, **kw)

def predictions(labelstudio, pid)->dict:
    "task id -> [(model_version, score, result)] for every prediction of the project."
    out = {}
    for p in labelstudio.client.predictions.list(project=pid):
        out.setdefault(p.task, []).append((p.model_version, p.score, p.result))
    return out

def tasks(labelstudio, pid)->dict: return {t.id: t for t in labelstudio.client.tasks.list(project=pid, fields='task_only')}

def test_first_push_pre_annotates_the_unlabeled(labelstudio, monkeypatch, site):
    "Every unannotated task (the skipped one too) gets one suggestion, in the config's names; labelers are shown it."
    r = push(labelstudio, monkeypatch, site, site['pool'])
    ts = tasks(labelstudio, site['pool'].id)
    unlabeled = {tid for tid,t in ts.items() if not t.total_annotations}
    assert len(unlabeled) == 7 and (r.imported, r.deleted, r.current, r.annotated) == (7, 0, 0, 3), r.line()
    preds = predictions(labelstudio, site['pool'].id)
    assert set(preds) == unlabeled
    for tid,ps in preds.items():
        assert len(ps) == 1 and ps[0][0] == r.version and r.version.startswith('cnn-')
        assert 0.1 <= ps[0][1] <= 1 and ps[0][2][0]['from_name'] == 'label' and ps[0][2][0]['to_name'] == 'image'
        assert ps[0][2][0]['value']['choices'][0] in DIGITS
    proj = labelstudio.client.projects.get(id=site['pool'].id)
    assert proj.model_version == r.version and proj.show_collab_predictions
    assert r.view_url.startswith(f'{labelstudio.url}/projects/{site["pool"].id}/data?tab=')

def test_view_lists_the_least_sure_first(labelstudio, site):
    "The saved view holds only unannotated tasks, lowest prediction score first."
    views = [v for v in labelstudio.client.views.list(project=site['pool'].id) if v.data.get('title') == UNCERTAIN_VIEW]
    assert len(views) == 1
    with labelstudio.http() as h:
        listed = h.get('/api/tasks', params={'view': views[0].id, 'project': site['pool'].id}).raise_for_status().json()
    scores = [t['predictions_score'] for t in listed['tasks']]
    assert len(scores) == 7 and scores == sorted(scores), scores

def test_same_model_twice_imports_nothing(labelstudio, monkeypatch, site):
    before = predictions(labelstudio, site['pool'].id)
    r = push(labelstudio, monkeypatch, site, site['pool'])
    assert (r.imported, r.deleted, r.current) == (0, 0, 7), r.line()
    assert predictions(labelstudio, site['pool'].id) == before

def test_new_champion_replaces_and_annotated_task_is_left_alone(labelstudio, monkeypatch, site):
    "A task annotated since keeps its old suggestion and gets no new one; every other task shows only the new model."
    pid = site['pool'].id
    old = predictions(labelstudio, pid)
    done = min(old)
    labelstudio.client.annotations.create(id=done, result=[{'from_name': 'label', 'to_name': 'image',
                                                            'type': 'choices', 'value': {'choices': ['4']}}])
    r = push(labelstudio, monkeypatch, site, site['pool'], which='b')
    assert (r.imported, r.deleted, r.annotated) == (6, 6, 4), r.line()
    now = predictions(labelstudio, pid)
    assert now[done] == old[done]  # the record of what its labeler was shown
    assert all(len(ps) == 1 and ps[0][0] == r.version for tid,ps in now.items() if tid != done)
    assert len(now) == 7 and labelstudio.client.projects.get(id=pid).model_version == r.version
    assert len([v for v in labelstudio.client.views.list(project=pid) if v.data.get('title') == UNCERTAIN_VIEW]) == 1

def test_other_names_in_the_config(labelstudio, monkeypatch, site):
    "`<Choices name=\"label\" toName=\"img\">` on `<Image value=\"$img\">`: the results say img, the image comes from data.img."
    r = push(labelstudio, monkeypatch, site, site['other'])
    preds = predictions(labelstudio, site['other'].id)
    assert r.imported == 3 and not r.dropped and len(preds) == 3
    assert {ps[0][2][0]['to_name'] for ps in preds.values()} == {'img'}
    # every suggestion of the old version is stale: one request deletes the version
    r = push(labelstudio, monkeypatch, site, site['other'], which='b')
    assert (r.imported, r.deleted) == (3, 3), r.line()
    with labelstudio.http() as h:
        assert h.get(f'/api/projects/{site["other"].id}/model-versions/').json() == {r.version: 3}

def project_dir(tmp:Path, params:dict, model:Path)->Path:
    "A folder `mlops-nb` takes for a project: params.yaml and a workspace model."
    root = tmp/uuid.uuid4().hex[:8]
    root.mkdir()
    (root/'params.yaml').write_text(yaml.safe_dump(params))
    (root/'data').mkdir()
    subprocess.run(['cp', '-r', str(model), str(root/'data/models')], check=True)
    return root

def cli(root:Path, env:dict, *args):
    return subprocess.run([str(BIN/'mlops-nb'), 'suggest', *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)

def test_cli_refuses_cleanly_and_spares_the_benchmark(labelstudio, site):
    """No single-choice control: one line naming the project and what it found, exit 2. The benchmark is not a
    target unless named with --benchmark; by default nothing reaches it. Without a champion: a line saying so."""
    import os
    env = {**os.environ, **labelstudio.env}
    tags = labelstudio.make_project(f'suggest-tags-{site["tag"]}', [{'image': '/data/upload/1/x.png'}],
        label_config='<View><Image name="image" value="$image"/><Choices name="tags" toName="image" choice="multiple">'
                     '<Choice value="a"/><Choice value="b"/></Choices></View>')
    bench = labelstudio.make_project(f'suggest-bench-{site["tag"]}')
    labelstudio.import_tasks(bench.id, [{'image': u} for u in labelstudio.upload(bench.id, {'7.png': digit_png(7, 16)[0]})])
    params = {'labelstudio': {'tags': {'project': tags.title}, 'bench': {'project': bench.title}},
              'dataset': {'tags': {}}, 'benchmark': {'bench': {'mode': 'benchmark'}}, 'compare': {}}
    root = project_dir(site['tmp'], params, site['models']['a'])
    r = cli(root, env, '--workspace')
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
    assert f"project tags: no single-choice image classification (found Choices 'tags' choice=multiple)" in r.stderr
    r = cli(root, env, '--workspace', '--project', 'bench')
    assert r.returncode == 2 and 'bench is the benchmark' in r.stderr and 'Traceback' not in r.stderr
    r = cli(root, env)
    assert r.returncode == 2 and 'no champion in' in r.stderr and '--workspace' in r.stderr, r.stderr
    assert predictions(labelstudio, bench.id) == {} and predictions(labelstudio, tags.id) == {}
    r = cli(root, env, '--workspace', '--project', 'bench', '--benchmark')
    assert r.returncode == 0 and 'WARNING: pre-annotating the benchmark project bench' in r.stdout + r.stderr
    assert 'bench (project' in r.stdout and 'view "Most uncertain first"' in r.stdout
    assert labelstudio.token not in r.stdout + r.stderr
