"""The dataset stage against the installed package: the malformed-input corpus (tests/data/corpus), label
policies on a real Label Studio export, images behind auth, a warm rebuild that makes no HTTP request,
split stability, the leakage check, S3 images over moto's HTTP server, and one run through papermill."""
import csv, html, json, os, shutil
from collections import Counter
from pathlib import Path
import pytest
from mlops_nb.core import MlopsError, digit_png, sha256_bytes, dumps_json
from mlops_nb.dataset import build_dataset, sample_export
from mlops_nb.folder import DatasetFolder
from mlops_nb.loaders import dataloaders
from mlops_nb.params import DatasetParams

CORPUS = Path(__file__).parent/'data'/'corpus'
CASES = json.loads((CORPUS/'cases.json').read_text())

# -- helpers ---------------------------------------------------------------------------------

def build(export, out, **params):
    "`build_dataset` with the stage's typed parameters, paths given as strings (as params.yaml gives them)."
    params = {k: str(v) if isinstance(v, Path) else v for k,v in {'benchmark': '', **params}.items()}   # no leakage check
    return build_dataset(DatasetParams(export=str(export), out=str(out), **params))

@pytest.fixture(autouse=True)
def _plain(monkeypatch):
    monkeypatch.setenv('MLOPS_PROGRESS', 'plain')
    for k in ('LABEL_STUDIO_URL', 'LABEL_STUDIO_API_KEY'): monkeypatch.delenv(k, raising=False)

@pytest.fixture
def http_requests(monkeypatch):
    "Every HTTP request the `requests` library sends in this process (what the stage uses), by URL."
    from requests.adapters import HTTPAdapter
    calls,orig = [],HTTPAdapter.send
    def send(self, request, *a, **kw):
        calls.append(request.url); return orig(self, request, *a, **kw)
    monkeypatch.setattr(HTTPAdapter, 'send', send)
    return calls

def snapshot(d:Path)->dict:
    "Every file under `d` with its bytes' hash (to prove a failed build left it untouched)."
    return {str(p.relative_to(d)): sha256_bytes(p.read_bytes()) for p in sorted(d.rglob('*')) if p.is_file()}

def export_json(ls, project_id:int, dest:Path)->Path:
    "The project's Label Studio JSON export (all tasks, as the export API gives it)."
    with ls.http() as h:
        r = h.get(f'/api/projects/{project_id}/export', params={'exportType': 'JSON', 'download_all_tasks': 'true'})
        r.raise_for_status()
    dest.write_text(dumps_json(sorted(r.json(), key=lambda t: t['id']))); return dest

# -- the corpus of malformed exports -----------------------------------------------------------

@pytest.fixture(scope='module')
def rawdata(tmp_path_factory)->Path:
    "A copy of the corpus images with a symlink that points out of the folder."
    d = tmp_path_factory.mktemp('corpus')
    shutil.copytree(CORPUS/'raw', d/'raw'); shutil.copy(CORPUS/'outside.png', d/'outside.png')
    (d/'raw'/'link-out.png').symlink_to(d/'outside.png')
    return d/'raw'

def test_corpus_is_big_enough():
    assert len(CASES) >= 20
    assert {c['expect'] for c in CASES} == {'error', 'drop'}

@pytest.mark.parametrize('case', [c for c in CASES if c.get('needs') is None], ids=lambda c: c['name'])
def test_corpus(case, rawdata, tmp_path, capsys):
    out = tmp_path/'ds'
    good = tmp_path/'good.json'; good.write_text(json.dumps([json.loads((CORPUS/'duplicate_image.json').read_text())[0]]))
    build(good, out, rawdata_dir=rawdata, cache_dir=tmp_path/'cache')
    before = snapshot(out)
    params = dict(rawdata_dir=rawdata, cache_dir=tmp_path/'cache', **case['params'])
    if case['expect'] == 'error':
        with pytest.raises(MlopsError) as e: build(CORPUS/case['file'], out, **params)
        msg = str(e.value)
        assert case['contains'] in msg and '\n' not in msg and 'Traceback' not in msg, msg
        assert snapshot(out) == before, 'a failed build changed the previous dataset'
    else:
        res = build(CORPUS/case['file'], out, **params)
        reasons = {d['task_id']: d['reason'] for d in json.loads((out/'dataset.json').read_text())['dropped']}
        assert case['contains'] in reasons.get(case['task_id'], ''), reasons
        assert [r['task_id'] for r in DatasetFolder.read(out).rows] == ['1']
        assert res.n_images == 1 and res.requests == 0
        assert f"dropped task {case['task_id']}: " in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != 'cache') == ['ds', 'good.json'], 'temp folders left behind'

# -- local builds: determinism, split stability, dataloaders -----------------------------------

def test_deterministic_and_split_stable(tmp_path):
    ex,raw = sample_export(tmp_path/'s', n=60)
    a = build(ex, tmp_path/'a', rawdata_dir=raw, cache_dir='')
    tasks = json.loads(ex.read_text())
    # same tasks in another order -> byte-identical labels.csv
    (tmp_path/'rev.json').write_text(json.dumps(tasks[::-1]))
    b = build(tmp_path/'rev.json', tmp_path/'b', rawdata_dir=raw, cache_dir='')
    assert (tmp_path/'a/labels.csv').read_bytes() == (tmp_path/'b/labels.csv').read_bytes()
    assert a.dataset_sha256 == b.dataset_sha256
    # new tasks arrive: every existing image keeps its split; the new ones spread over both splits
    ex2,_ = sample_export(tmp_path/'s', n=200)
    c = build(ex2, tmp_path/'c', rawdata_dir=raw, cache_dir='')
    old = {r['sha256']: r['split'] for r in DatasetFolder.read(tmp_path/'a').rows}
    new = {r['sha256']: r['split'] for r in DatasetFolder.read(tmp_path/'c').rows}
    assert all(new[s] == sp for s,sp in old.items())
    assert c.n_images > a.n_images and 0.1 < Counter(new.values())['valid']/len(new) < 0.3
    # another seed moves images between splits
    d = build(ex2, tmp_path/'d', rawdata_dir=raw, seed=7, cache_dir='')
    assert {r['sha256']: r['split'] for r in DatasetFolder.read(tmp_path/'d').rows} != new

def test_dataloaders(tmp_path):
    ex,raw = sample_export(tmp_path/'s', n=30)
    build(ex, tmp_path/'ds', rawdata_dir=raw, valid_pct=0.3, cache_dir='')
    dls = dataloaders(tmp_path/'ds', bs=8, size=24, device='cpu')
    xb,yb = dls.one_batch()
    assert tuple(xb.shape) == (8, 3, 24, 24)
    assert list(dls.vocab) == json.loads((tmp_path/'ds/dataset.json').read_text())['classes']
    assert len(dls.train_ds) + len(dls.valid_ds) == len(DatasetFolder.read(tmp_path/'ds').rows)

# -- S3 images over moto's HTTP server -----------------------------------------------------------

def test_s3_images_and_cache(s3_endpoint, monkeypatch, tmp_path):
    for k,v in s3_endpoint.env.items(): monkeypatch.setenv(k, v)
    bucket = s3_endpoint.make_bucket('dataset-images'); c = s3_endpoint.client()
    tasks = []
    for i in range(6):
        png,label = digit_png(200+i); c.put_object(Bucket=bucket, Key=f'd/{i}.png', Body=png)
        tasks.append({'id': i+1, 'data': {'image': f's3://{bucket}/d/{i}.png'},
                      'annotations': [{'id': i+1, 'result': [{'from_name': 'label', 'type': 'choices', 'value': {'choices': [label]}}]}]})
    tasks.append({'id': 7, 'data': {'image': f's3://{bucket}/d/missing.png'}, 'annotations': tasks[0]['annotations']})
    ex = tmp_path/'e.json'; ex.write_text(json.dumps(tasks))
    r1 = build(ex, tmp_path/'ds', cache_dir=tmp_path/'cache')
    assert (r1.n_images, r1.requests) == (6, 7)
    assert r1.dropped == [{'task_id': 7, 'reason': f's3://{bucket}/d/missing.png'.join(['S3 object ', ' not found'])}]
    r2 = build(ex, tmp_path/'ds', cache_dir=tmp_path/'cache')
    assert (r2.requests, r2.cache_hits, r2.dataset_sha256) == (1, 6, r1.dataset_sha256) # only the missing object is asked again

# -- the real Label Studio server ---------------------------------------------------------------

def _ann(label, **kw): return {'label': label, **kw}

@pytest.fixture(scope='module')
def pool(labelstudio, tmp_path_factory):
    "A digits project whose images are uploads behind auth, with disagreeing, cancelled and ground-truth annotations."
    d = tmp_path_factory.mktemp('pool')
    p = labelstudio.make_project('dataset-pool')
    pngs = {f'd{i:03d}.png': digit_png(i) for i in range(24)}
    urls = labelstudio.upload(p.id, {n: png for n,(png,_) in pngs.items()})
    tasks,expect = [],{}
    for i,((name,(png,label)),url) in enumerate(zip(pngs.items(), urls)):
        other = str((int(label)+1) % 10)
        if i % 6 == 0: anns = [_ann(label)]                                                        # one annotator
        elif i % 6 == 1: anns = [_ann(other), _ann(label), _ann(label)]                            # majority = label, latest = label
        elif i % 6 == 2: anns = [_ann(label), _ann(other, ground_truth=True), _ann(label)]          # ground truth wins over both
        elif i % 6 == 3: anns = [_ann(label), _ann(other, was_cancelled=True)]                     # cancelled never counts
        elif i % 6 == 4: anns = [_ann(label), _ann(other)]                                         # latest: other; majority: tie
        else: anns = [] if i % 12 == 5 else [_ann(other, was_cancelled=True)]                      # unlabeled / only cancelled
        tasks.append({'data': {'image': url}, 'annotations': anns}); expect[url] = (i % 6, label, other)
    labelstudio.import_tasks(p.id, tasks)
    return p, export_json(labelstudio, p.id, d/'pool.json'), expect, urls

def _expected(expect:dict, policy:str)->dict:
    "url -> label (or None) by the documented policy, from how the tasks were made."
    out = {}
    for url,(kind,label,other) in expect.items():
        out[url] = {0: label, 1: label, 2: other, 3: label, 4: other if policy == 'latest' else None, 5: None}[kind]
    return out

@pytest.mark.parametrize('policy', ['latest', 'majority'])
def test_policy_on_real_export(policy, labelstudio, labelstudio_env, pool, tmp_path, http_requests):
    p,ex,expect,urls = pool
    res = build(ex, tmp_path/'ds', policy=policy, cache_dir=tmp_path/'cache', workers=4)
    by_task = {t['id']: t['data']['image'] for t in json.loads(ex.read_text())}
    got = {by_task[int(r['task_id'])]: r['label'] for r in DatasetFolder.read(tmp_path/'ds').rows}
    want = {u: l for u,l in _expected(expect, policy).items() if l is not None}
    assert got == want
    meta = json.loads((tmp_path/'ds/dataset.json').read_text())
    assert meta['n_images'] == len(want) and meta['n_dropped'] == len(expect) - len(want)
    assert sum(sum(c.values()) for c in meta['counts'].values()) == len(want)
    assert len(http_requests) == res.requests == len(want)
    assert all(labelstudio.token not in (tmp_path/'ds'/f).read_text() for f in ('labels.csv', 'dataset.json'))

def test_auth_and_zero_request_rebuild(labelstudio, labelstudio_env, pool, tmp_path, http_requests, monkeypatch):
    import requests
    p,ex,expect,urls = pool
    assert requests.get(labelstudio.url + urls[0]).status_code == 401     # the images really are behind auth
    http_requests.clear()
    r1 = build(ex, tmp_path/'ds', cache_dir=tmp_path/'cache', workers=4)
    n = len(http_requests)
    assert n == r1.requests == r1.n_images > 0
    assert all(u.startswith(labelstudio.url + '/data/upload/') for u in http_requests)
    first = snapshot(tmp_path/'ds')
    http_requests.clear()
    r2 = build(ex, tmp_path/'ds', cache_dir=tmp_path/'cache', workers=4)   # issue 34: the uploads come from the previous dataset
    assert (len(http_requests), r2.requests, r2.cache_hits, r2.reused) == (0, 0, 0, r1.n_images)
    assert snapshot(tmp_path/'ds') == first
    # without the previous dataset, the machine's cache serves them
    shutil.rmtree(tmp_path/'ds')
    r3 = build(ex, tmp_path/'ds', cache_dir=tmp_path/'cache', workers=4)
    assert (len(http_requests), r3.cache_hits, r3.reused) == (0, r1.n_images, 0) and snapshot(tmp_path/'ds') == first
    # the counter does see requests: without either, every image is fetched again
    shutil.rmtree(tmp_path/'cache'); shutil.rmtree(tmp_path/'ds')
    build(ex, tmp_path/'ds', cache_dir=tmp_path/'cache', workers=4)
    assert len(http_requests) == n
    # a wrong token is a one-line error and the dataset stays (nothing reusable: its refs.json gone)
    (tmp_path/'ds/refs.json').unlink(); first = snapshot(tmp_path/'ds')
    monkeypatch.setenv('LABEL_STUDIO_API_KEY', 'not-the-token')
    with pytest.raises(MlopsError, match='Label Studio refused the token .HTTP 401.'):
        build(ex, tmp_path/'ds', cache_dir=tmp_path/'other-cache')
    assert snapshot(tmp_path/'ds') == first
    monkeypatch.delenv('LABEL_STUDIO_API_KEY')
    with pytest.raises(MlopsError, match='LABEL_STUDIO_API_KEY is not set'):
        build(ex, tmp_path/'ds', cache_dir=tmp_path/'other-cache')

def test_404_image_on_labelstudio(labelstudio, labelstudio_env, rawdata, tmp_path):
    case = next(c for c in CASES if c.get('needs') == 'labelstudio')
    res = build(CORPUS/case['file'], tmp_path/'ds', rawdata_dir=rawdata, cache_dir=tmp_path/'cache', **case['params'])
    assert case['contains'] in {d['task_id']: d['reason'] for d in res.dropped}[case['task_id']]
    assert res.n_images == 1

def test_leakage_check(labelstudio, labelstudio_env, tmp_path, http_requests):
    ls = labelstudio
    bp = ls.make_project('dataset-bench'); tp = ls.make_project('dataset-train')
    bench = {f'b{i}.png': digit_png(900+i) for i in range(5)}
    burls = ls.upload(bp.id, {n: png for n,(png,_) in bench.items()})
    ls.import_tasks(bp.id, [{'data': {'image': u}, 'annotations': [l]} for u,(_,l) in zip(burls, bench.values())])
    train = {f't{i}.png': digit_png(300+i) for i in range(8)}
    turls = ls.upload(tp.id, {n: png for n,(png,_) in train.items()})
    ls.import_tasks(tp.id, [{'data': {'image': u}, 'annotations': [l]} for u,(_,l) in zip(turls, train.values())])
    b = build(export_json(ls, bp.id, tmp_path/'b.json'), tmp_path/'bench', mode='benchmark', cache_dir=tmp_path/'cache')
    assert b.counts == {'benchmark': dict(sorted(Counter(l for _,l in bench.values()).items()))}
    ok = build(export_json(ls, tp.id, tmp_path/'t.json'), tmp_path/'train', benchmark=tmp_path/'bench', cache_dir=tmp_path/'cache')
    assert ok.n_images == 8
    before = snapshot(tmp_path/'train')
    # someone adds a benchmark image to the training project (a new upload of the same file)
    png,label = bench['b2.png']
    [leak_url] = ls.upload(tp.id, {'copy-of-b2.png': png})
    ls.import_tasks(tp.id, [{'data': {'image': leak_url}, 'annotations': [label]}])
    ex = export_json(ls, tp.id, tmp_path/'t2.json')
    leak_task = next(t['id'] for t in json.loads(ex.read_text()) if t['data']['image'] == leak_url)
    bench_task = next(r['task_id'] for r in DatasetFolder.read(tmp_path/'bench').rows if r['sha256'] == sha256_bytes(png))
    with pytest.raises(MlopsError) as e:
        build(ex, tmp_path/'train', benchmark=tmp_path/'bench', cache_dir=tmp_path/'cache')
    assert f'1 training image also in the benchmark dataset bench: task {leak_task} (= benchmark task {bench_task})' in str(e.value)
    assert snapshot(tmp_path/'train') == before
    res = build(ex, tmp_path/'train', benchmark=tmp_path/'bench', leakage='drop', cache_dir=tmp_path/'cache')
    assert res.n_images == 8 and res.dropped == [{'task_id': leak_task, 'reason': f'leakage: same image as benchmark task {bench_task}'}]

def test_stage_through_papermill(project, labelstudio, labelstudio_env, pool, source_tree):
    from mlops_nb.runner import run_stage
    p,ex,expect,urls = pool
    shutil.copy(ex, project/'pool.json')
    res = run_stage('dataset', {'export': 'pool.json', 'out': 'data/datasets/digits', 'workers': 4, 'benchmark': ''},
                    root=project)
    want = {u: l for u,l in _expected(expect, 'latest').items() if l is not None}
    assert res.scraps['n_images'] == len(want) and res.scraps['n_dropped'] == len(expect) - len(want)
    meta = json.loads((project/'data/datasets/digits/dataset.json').read_text())
    assert res.scraps['dataset_sha256'] == meta['dataset_sha256'] and res.scraps['counts'] == meta['counts']
    assert (project/'.cache/images/blobs').is_dir()
    assert json.loads((project/'metrics/dataset-digits.json').read_text())['n_images'] == len(want)
    for f in [res.notebook, *project.joinpath('data/datasets/digits').glob('*.*'), project/'metrics/dataset-digits.json']:
        assert labelstudio.token not in f.read_text(errors='replace'), f

def test_personal_access_token(labelstudio, labelstudio_env, pool, tmp_path, monkeypatch, http_requests):
    "A personal access token (JWT refresh token) is exchanged for an access token and sent as Bearer."
    p,ex,expect,urls = pool
    with labelstudio.http() as h:
        h.post('/api/jwt/settings', json={'api_tokens_enabled': True, 'legacy_api_tokens_enabled': True}).raise_for_status()
    pat = labelstudio.personal_access_token()  # Label Studio allows one per user: the fixture creates it once per session
    assert pat.count('.') == 2
    monkeypatch.setenv('LABEL_STUDIO_API_KEY', pat)
    http_requests.clear()
    res = build(ex, tmp_path/'ds', cache_dir=tmp_path/'cache', workers=4)
    assert res.n_images == len([l for l in _expected(expect, 'latest').values() if l is not None])
    assert http_requests[0] == labelstudio.url + '/api/token/refresh/' and len(http_requests) == res.n_images + 1

def test_cli_error_is_one_line(project, run_cli, tmp_path):
    "A malformed export through the CLI: exit 1, one line naming the file and the fix, no traceback, no dataset."
    shutil.copy(CORPUS/'duplicate_task_ids.json', project/'bad.json')
    r = run_cli('run', 'dataset', '--sample', '-p', 'export=bad.json', '-p', 'out=data/datasets/bad', cwd=project)
    assert r.returncode == 1, r.stderr
    err = [l for l in r.stderr.splitlines() if 'error' in l.lower()]
    assert len(err) == 1 and 'task 2 appears twice (items 1 and 2)' in err[0] and 'export the project again' in err[0], r.stderr
    assert 'Traceback' not in r.stderr + r.stdout
    assert not (project/'data/datasets').exists() or not any((project/'data/datasets').iterdir())

# -- issue 12: Label Studio file references, refused images, the report ----------------------------

EVIL_CLASS, EVIL_LABEL = '<img src=x onerror=alert(7)>', '<script>alert(1)</script>'

def tree_hashes(root:Path)->dict:
    "Every file under `root` (but .git) with the sha256 of its bytes."
    return {p: sha256_bytes(p.read_bytes()) for p in sorted(root.rglob('*')) if p.is_file() and '.git' not in p.parts}

@pytest.fixture(scope='module')
def hostile(labelstudio, tmp_path_factory):
    """A project whose export names a file outside Label Studio's local storage, a local file the server refuses
    (local files serving is off), and labels that are markup; plus good uploads. Returns (export, task ids by role)."""
    ls = labelstudio
    p = ls.make_project('dataset-hostile')
    u = ls.upload(p.id, {f'h{i}.png': digit_png(500+i)[0] for i in range(3)})
    roles = {'evil_class': (u[0], EVIL_CLASS), 'same_image': (u[1], '3'), 'conflict': (u[1], EVIL_LABEL),
             'good2': (u[2], '5'), 'traversal': ('/data/local-files/?d=../../etc/passwd', '5'),
             'absolute': ('/data/local-files/?d=/etc/passwd', '5'),
             'refused': ('/data/local-files/?d=images/h1.png', '5')}
    ls.import_tasks(p.id, [{'data': {'image': img}, 'annotations': [label]} for img,label in roles.values()])
    ex = export_json(ls, p.id, tmp_path_factory.mktemp('hostile')/'hostile.json')
    tasks = json.loads(ex.read_text())
    by_ref = {(t['data']['image'], t['annotations'][0]['result'][0]['value']['choices'][0]): t['id'] for t in tasks}
    return ex, {role: by_ref[ref] for role,ref in roles.items()}

def test_local_files_refs_refused_before_any_request(labelstudio, labelstudio_env, hostile, tmp_path, http_requests):
    "Item 7: `..` and absolute `d=` paths are dropped without a request; one image the server refuses (403) is a drop."
    ex,ids = hostile
    res = build(ex, tmp_path/'ds', cache_dir=tmp_path/'cache', workers=2)
    reasons = {d['task_id']: d['reason'] for d in res.dropped}
    assert 'contains ".."' in reasons[ids['traversal']] and 'is absolute' in reasons[ids['absolute']], reasons
    assert reasons[ids['refused']].startswith('Label Studio refused the image (HTTP 403) at /data/local-files/')
    assert not [u for u in http_requests if 'etc' in u or '..' in u or '%2E%2E' in u.upper()], http_requests
    assert [u for u in http_requests if 'local-files' in u] == [labelstudio.url + '/data/local-files/?d=images/h1.png']
    assert {r['task_id'] for r in DatasetFolder.read(tmp_path/'ds').rows} == {str(ids['evil_class']), str(ids['good2'])}

def test_stage_report_full_reasons_escaped(project, run_cli, labelstudio, hostile):
    """Items 7 and 9 through the CLI: exit 0, the drops named in dataset.json, every earlier file byte-identical, and
    the rendered report shows each whole reason as text: no markup from Label Studio reaches the page."""
    from mlops_nb.run_page import render_notebook_html
    ex,ids = hostile
    shutil.copy(ex, project/'hostile.json')
    section = {'export': 'hostile.json', 'out': 'data/datasets/hostile', 'workers': 2, 'benchmark': ''}
    (project/'params.yaml').write_text(json.dumps({'dataset': {'hostile': section}}))
    before = tree_hashes(project)
    r = run_cli('run', 'dataset', '--section', 'dataset.hostile', cwd=project, env=labelstudio.env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert {p: h for p,h in tree_hashes(project).items() if p in before} == before
    meta = json.loads((project/'data/datasets/hostile/dataset.json').read_text())
    reasons = {d['task_id']: d['reason'] for d in meta['dropped']}
    assert set(reasons) == {ids[k] for k in ('conflict', 'same_image', 'traversal', 'absolute', 'refused')}, reasons
    assert EVIL_LABEL in reasons[ids['conflict']] and meta['classes'] == sorted([EVIL_CLASS, '5'])
    [nb] = project.glob('runs/dataset*/latest.ipynb')
    page = render_notebook_html(nb).read_text()
    assert EVIL_CLASS not in page and EVIL_LABEL not in page and '<script>alert' not in page
    for reason in reasons.values(): assert html.escape(reason, quote=False) in page, reason   # whole, never cut
    assert html.escape(EVIL_CLASS, quote=False) in page

def test_every_image_refused_is_the_token_error(project, run_cli, labelstudio, hostile):
    "Item 7: Label Studio refuses every image: the build stops with the token error, the previous dataset stays."
    ex,ids = hostile
    tasks = json.loads(ex.read_text())
    (project/'good.json').write_text(json.dumps([t for t in tasks if t['id'] == ids['good2']]))
    (project/'refused.json').write_text(json.dumps([t for t in tasks if t['id'] in (ids['refused'], ids['traversal'])]))
    (project/'params.yaml').write_text("dataset:\n  good: {export: good.json, out: data/datasets/d, benchmark: ''}\n"
                                       "  refused: {export: refused.json, out: data/datasets/d, benchmark: ''}\n")
    assert run_cli('run', 'dataset', '--section', 'dataset.good', cwd=project, env=labelstudio.env).returncode == 0
    before = tree_hashes(project/'data')
    r = run_cli('run', 'dataset', '--section', 'dataset.refused', cwd=project, env=labelstudio.env)
    assert r.returncode == 1, r.stderr[-3000:]
    lines = [l for l in r.stderr.splitlines() if 'refused the token' in l]
    want = f'(HTTP 403) fetching the image of task {ids["refused"]}; no image came through'
    assert len(lines) == 1 and want in lines[0], r.stderr
    assert 'LOCAL_FILES_SERVING_ENABLED' in lines[0] and 'Traceback' not in r.stderr + r.stdout
    assert tree_hashes(project/'data') == before

# -- issue 17: the refactor into phases keeps the bundled sample's dataset byte for byte ------------

def test_bundled_sample_is_byte_identical(tmp_path):
    "The 60-task sample builds the same bytes as before `build_dataset` became phases (hashes recorded then)."
    ex,raw = sample_export(tmp_path/'sample')
    res = build(ex, tmp_path/'ds', rawdata_dir=raw, cache_dir='')
    assert res.dataset_sha256 == '0f2da358cb9408e3143382708a31d6f74cf266fe606f6137d2ecc4f1d57c1d10'
    assert sha256_bytes((tmp_path/'ds/labels.csv').read_bytes()) == res.dataset_sha256
    assert sha256_bytes((tmp_path/'ds/dataset.json').read_bytes()) == 'c121c390b2872021021e0aec5b1129e072bfc8e2d7c517973a147c3b95e98fbb'
    images = sorted((tmp_path/'ds/images').iterdir())
    assert len(images) == res.n_images == 56 and all(sha256_bytes(p.read_bytes()) == p.stem for p in images)
