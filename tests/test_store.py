"""Results store: S3 round trip against moto's standalone server over HTTP, idempotent writes, refusing to
overwrite a commit's results with a different model, and an unreachable endpoint failing in one line with
the local results intact."""
import json, os, socket, time
from pathlib import Path
import pytest
from conftest import cli, git
from mlops_nb.core import MlopsError, sha256_bytes, write_json
from mlops_nb.store import ResultsStore, publish_results

def make_results(root:Path, commit:str, model:str='model-1', accuracy:float=.9)->Path:
    "A minimal set of evaluate outputs in the standard layout, made by model `model` at `commit`."
    write_json(root/'metrics/benchmark.json', {'accuracy': accuracy, 'macro_f1': accuracy-.01, 'n': 10,
                                               'git': {'commit': commit, 'dirty': False}, 'model': {'sha256': sha256_bytes(model.encode())}})
    write_json(root/'data/models/model.json', {'arch': 'stub', 'params': {'epochs': 2}})
    (root/'plots/mistakes').mkdir(parents=True, exist_ok=True)
    (root/'plots/confusion.png').write_bytes(b'\x89PNG confusion ' + model.encode())
    (root/'plots/mistakes/01-task7-true1-pred7.png').write_bytes(b'\x89PNG overlay')
    write_json(root/'plots/mistakes/mistakes.json', [{'rank': 1, 'task_id': 7}])
    (root/'data/train').mkdir(parents=True, exist_ok=True)
    (root/'data/train/labels.csv').write_text('file,label,split,task_id,annotation_id,sha256\nimages/a.png,1,train,1,1,a\n')
    write_json(root/'data/train/dataset.json', {'classes': ['1']})
    return root

def s3_objects(endpoint, bucket, prefix=''):
    c = endpoint.client()
    out = {}
    for page in c.get_paginator('list_objects_v2').paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get('Contents', []): out[o['Key']] = c.get_object(Bucket=bucket, Key=o['Key'])['Body'].read()
    return out

def test_s3_round_trip_over_http(project, s3_env):
    bucket = s3_env.make_bucket('results-roundtrip')
    head = git(project, 'rev-parse', 'HEAD').strip()
    make_results(project, head)
    store = ResultsStore(f's3://{bucket}/team/digits')
    e = publish_results(store, dataset_dir='data/train')
    assert e['url'] == f's3://{bucket}/team/digits/{head}'
    # what a plain boto3 client sees on the server: every file under prefix/<commit>/, byte for byte
    objs = s3_objects(s3_env, bucket)
    local = {'metrics.json': 'metrics/benchmark.json', 'model.json': 'data/models/model.json', 'plots/confusion.png': 'plots/confusion.png',
             'overlays/01-task7-true1-pred7.png': 'plots/mistakes/01-task7-true1-pred7.png', 'overlays/mistakes.json': 'plots/mistakes/mistakes.json',
             'dataset/labels.csv': 'data/train/labels.csv', 'dataset/dataset.json': 'data/train/dataset.json'}
    assert set(objs) == {f'team/digits/{head}/{k}' for k in [*local, 'entry.json']}
    for k,p in local.items(): assert objs[f'team/digits/{head}/{k}'] == (project/p).read_bytes()
    manifest = json.loads(objs[f'team/digits/{head}/entry.json'])
    assert manifest['model_sha256'] == sha256_bytes(b'model-1') and manifest['summary']['accuracy'] == .9
    # and back: a fresh store object (new client) reads the entry and downloads it, checking each sha256
    again = ResultsStore(f's3://{bucket}/team/digits/')
    assert again.commits() == [head] and again.entry(head) == {k: v for k,v in e.items() if k != 'url'}
    dl = again.fetch(head, project/'download')
    for k,p in local.items(): assert (dl/k).read_bytes() == (project/p).read_bytes()
    # idempotent: saving the same results again writes nothing
    puts = []
    orig = again.backend.put
    again.backend.put = lambda k, d: (puts.append(k), orig(k, d))
    publish_results(again, dataset_dir='data/train')
    assert puts == []
    # no secret ever lands in the store
    secret = s3_env.env['AWS_SECRET_ACCESS_KEY'].encode()
    assert not any(secret in v for v in s3_objects(s3_env, bucket).values())

def test_refuses_overwrite_by_different_model_unless_forced(project, s3_env):
    bucket = s3_env.make_bucket('results-overwrite')
    head = git(project, 'rev-parse', 'HEAD').strip()
    url = f's3://{bucket}/p'
    publish_results(url, root=project, **{'metrics_fp': make_results(project, head, 'model-1')/'metrics/benchmark.json'})
    before = s3_objects(s3_env, bucket)
    make_results(project, head, 'model-2', accuracy=.5)
    with pytest.raises(MlopsError, match=rf'results for commit {head[:12]} in s3://{bucket}/p were made by model {sha256_bytes(b"model-1")[:12]}'):
        publish_results(url)
    assert s3_objects(s3_env, bucket) == before
    # through the CLI: exit 2, one line, no traceback
    r = cli('promote', '--store', url)
    assert r.returncode == 2 and 'were made by model' in r.stderr and 'Traceback' not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # forced: replaced, and files the new results lack are gone
    (project/'plots/mistakes/01-task7-true1-pred7.png').unlink()
    publish_results(url, force=True)
    objs = s3_objects(s3_env, bucket)
    assert json.loads(objs[f'p/{head}/metrics.json'])['accuracy'] == .5
    assert f'p/{head}/overlays/01-task7-true1-pred7.png' not in objs
    assert json.loads(objs[f'p/{head}/entry.json'])['model_sha256'] == sha256_bytes(b'model-2')

def _closed_port()->int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def test_s3_endpoint_down_clear_error_local_intact(project, s3_env, monkeypatch):
    head = git(project, 'rev-parse', 'HEAD').strip()
    make_results(project, head)
    ResultsStore('results/').save(head, {'metrics.json': project/'metrics/benchmark.json'}, sha256_bytes(b'model-1'))
    local = {p: p.read_bytes() for p in project.rglob('*') if p.is_file() and '.git' not in p.parts}
    port = _closed_port()
    monkeypatch.setenv('AWS_ENDPOINT_URL', f'http://127.0.0.1:{port}')
    t0 = time.time()
    r = cli('promote', '--store', 's3://results-down/p')
    took = time.time() - t0
    assert r.returncode == 1, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and 'Traceback' not in r.stderr, r.stderr
    assert f'S3 endpoint http://127.0.0.1:{port} unreachable while reading s3://results-down/p/{head}/entry.json' in err[0]
    assert 'results already written locally' in err[0]
    assert took < 30, f'bounded retries should fail fast, took {took:.1f}s'
    assert {p: p.read_bytes() for p in project.rglob('*') if p.is_file() and '.git' not in p.parts} == local
    assert s3_env.env['AWS_SECRET_ACCESS_KEY'] not in r.stderr + r.stdout

def test_s3_missing_bucket_and_missing_credentials(project, s3_env, monkeypatch, tmp_path):
    head = git(project, 'rev-parse', 'HEAD').strip()
    make_results(project, head)
    with pytest.raises(MlopsError, match='S3 bucket no-such-bucket-here does not exist'):
        publish_results('s3://no-such-bucket-here/p')
    for k in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'): monkeypatch.delenv(k)
    monkeypatch.setenv('AWS_SHARED_CREDENTIALS_FILE', str(tmp_path/'none')); monkeypatch.setenv('AWS_CONFIG_FILE', str(tmp_path/'none'))
    with pytest.raises(MlopsError, match='no AWS credentials for s3://results-roundtrip/p'):
        ResultsStore('s3://results-roundtrip/p').champion()

def test_local_store_layout_and_champion(project):
    head = git(project, 'rev-parse', 'HEAD').strip()
    make_results(project, head)
    e = publish_results('results/')
    assert Path(e['url']) == project/'results'/head
    assert json.loads((project/'results'/head/'entry.json').read_text())['files']['metrics.json'] == sha256_bytes((project/'metrics/benchmark.json').read_bytes())
    s = ResultsStore('results/')
    assert s.champion() is None
    s.set_champion(head)
    assert json.loads((project/'results/champion.json').read_text())['commit'] == head
