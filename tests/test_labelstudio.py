"""The Label Studio stage against a real server (the session fixture `labelstudio`), the installed wheel and CLI."""
import json, os, shutil, subprocess, sys, time
from datetime import timezone
from pathlib import Path
import httpx, pytest
from mlops_nb.core import MlopsError, digit_png, sha256_file
from mlops_nb import labelstudio as lsmod
from mlops_nb.labelstudio import export_project, meta_path
from mlops_nb.labelstudio_server import running_server, seed_demo, serve, stop
from mlops_nb.params import LabelstudioParams
from fixtures_labelstudio import free_port, ls_executable

def result(label): return [{'from_name': 'label', 'to_name': 'image', 'type': 'choices', 'value': {'choices': [label]}}]

def snapshot_ids(ls, pid): return sorted(e.id for e in ls.client.projects.exports.list(id=pid))

def files_under(*roots):
    return [p for r in roots if Path(r).exists() for p in Path(r).rglob('*') if p.is_file()]

def assert_no_secret(secret, *roots):
    hits = [str(p) for p in files_under(*roots) if secret.encode() in p.read_bytes()]
    assert not hits, f'token found in {hits}'

@pytest.fixture(scope='module')
def small(labelstudio):
    "A project with uploaded images: correct, cancelled, disagreeing and unlabeled tasks."
    ls = labelstudio
    p = ls.make_project('stage-small', [])
    urls = ls.upload(p.id, {f'd{i}.png': digit_png(i)[0] for i in range(6)})
    other = ls.add_user('other-annotator@example.com')
    tasks = [{'data': {'image': urls[0]}, 'annotations': ['0']},
             {'data': {'image': urls[1]}, 'annotations': ['1']},
             {'data': {'image': urls[2]}, 'annotations': [{'label': None, 'was_cancelled': True}]},
             {'data': {'image': urls[3]}, 'annotations': ['3', {'label': '8', 'completed_by': other}]},
             {'data': {'image': urls[4]}},
             {'data': {'image': urls[5]}, 'annotations': ['5']}]
    ls.import_tasks(p.id, tasks)
    return ls.client.projects.get(id=p.id)

def test_full_export_then_unchanged_then_changed(labelstudio, labelstudio_env, small, project):
    ls,out = labelstudio,project/'data/raw_labels/small.json'
    r = export_project(LabelstudioParams(project='stage-small', out='data/raw_labels/small.json'), attempts=2, backoff=0.1)
    assert (r.changed, r.project_id, r.out) == (True, small.id, out)
    tasks = json.loads(out.read_text())
    assert [t['id'] for t in tasks] == sorted(t['id'] for t in tasks) and len(tasks) == 6
    assert all(t['data']['image'].startswith('/data/upload/') for t in tasks)
    anns = [a for t in tasks for a in t['annotations']]
    assert len(anns) == 6 and sum(a['was_cancelled'] for a in anns) == 1
    assert {'id', 'result', 'was_cancelled', 'ground_truth', 'created_at', 'updated_at', 'completed_by'} <= set(anns[0])
    two = [t for t in tasks if len(t['annotations']) == 2][0]
    assert {a['result'][0]['value']['choices'][0] for a in two['annotations']} == {'3', '8'}
    assert len({a['completed_by'] for a in two['annotations']}) == 2
    meta = json.loads(meta_path(out).read_text())
    assert meta['sha256'] == sha256_file(out) == r.sha256
    assert meta['project'] == {'id': small.id, 'title': 'stage-small'}
    assert meta['counts'] == {'tasks': 6, 'annotations': 6, 'cancelled_annotations': 1, 'labeled_tasks': 4, 'unlabeled_tasks': 2}
    assert 'exported_at' in meta and meta['snapshot_id'] == r.snapshot_id
    assert snapshot_ids(ls, small.id) == [r.snapshot_id]

    # no change: no snapshot, both files byte-identical and untouched
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (out, meta_path(out))}
    r2 = export_project(LabelstudioParams(project=str(small.id), out=out))
    assert (r2.changed, r2.snapshot_id, r2.sha256) == (False, None, r.sha256)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in before} == before
    assert snapshot_ids(ls, small.id) == [r.snapshot_id]

    # a new annotation changes the export: the previous one updated with that task, no snapshot
    unlabeled = [t for t in tasks if not t['annotations']][0]
    ls.client.annotations.create(id=unlabeled['id'], result=result('4'))
    r3 = export_project(LabelstudioParams(project='stage-small', out=out))
    assert r3.changed and r3.sha256 != r.sha256 and r3.counts['annotations'] == 7 and r3.counts['unlabeled_tasks'] == 1
    meta = json.loads(meta_path(out).read_text())
    assert meta['method'] == 'incremental: 1 changed, 0 deleted of 6 tasks' and meta['server_version']
    assert meta['read_at'].endswith('Z') and meta['read_at'] >= meta['source']['newest_updated_at'][:19]
    assert r3.snapshot_id is None and snapshot_ids(ls, small.id) == [r.snapshot_id]
    assert meta['sha256'] == sha256_file(out)
    # full: true takes a snapshot (and only the newest snapshot is kept), of the same bytes
    r4 = export_project(LabelstudioParams(project='stage-small', out=out, force=True, full=True))
    assert (r4.changed, r4.sha256) == (False, r3.sha256) and snapshot_ids(ls, small.id) == [r4.snapshot_id] != [r.snapshot_id]
    assert json.loads(meta_path(out).read_text())['method'] == 'full: full: true'
    # an incremental export never imports the SDK (its import alone took 2 s of a 4 s stage)
    ls.client.annotations.create(id=unlabeled['id'], result=result('5'))
    code = ('import sys; from mlops_nb.labelstudio import export_project; from mlops_nb.params import LabelstudioParams; '
            f'r = export_project(LabelstudioParams(project="stage-small", out={str(out)!r})); '
            'print(r.changed, "label_studio_sdk" in sys.modules)')
    run = subprocess.run([sys.executable, '-c', code], cwd=project, capture_output=True, text=True)
    assert run.stdout.split()[-2:] == ['True', 'False'], run.stdout + run.stderr[-2000:]
    assert json.loads(meta_path(out).read_text())['method'] == 'incremental: 1 changed, 0 deleted of 6 tasks'
    assert_no_secret(ls.token, project)

def test_edited_annotation_is_detected(labelstudio, labelstudio_env, project):
    ls = labelstudio
    p = ls.make_project('stage-edit', [{'image': f'http://example.com/{i}.png'} for i in range(3)])
    tid = ls.client.tasks.list(project=p.id, fields='task_only').items[0].id
    a = ls.client.annotations.create(id=tid, result=result('1'))
    r = export_project(LabelstudioParams(project='stage-edit', out='data/raw_labels/edit.json'))
    time.sleep(0.01)
    ls.client.annotations.update(id=a.id, result=result('7'))  # same counts, different label
    r2 = export_project(LabelstudioParams(project='stage-edit', out='data/raw_labels/edit.json'))
    assert r2.changed and r2.sha256 != r.sha256
    assert '"7"' in (project/'data/raw_labels/edit.json').read_text()

def test_incremental_export_is_byte_identical_to_a_full_one(labelstudio, labelstudio_env, project):
    """Every kind of change Label Studio makes (annotation created, edited, cancelled, deleted; prediction added; task
    data edited, task created, task deleted), then the incremental export and a full snapshot of the same state: the
    same bytes. A tampered previous export is not built on."""
    ls = labelstudio
    p = ls.make_project('stage-delta', [{'data': {'image': f'/data/upload/9/{i}.png'}, 'annotations': [str(i % 10)] if i < 20 else []}
                                        for i in range(30)])
    out,full = 'data/raw_labels/delta.json','data/raw_labels/delta-full.json'
    export_project(LabelstudioParams(project='stage-delta', out=out))
    ids = [t['id'] for t in json.loads((project/out).read_text())]
    time.sleep(0.01)
    ls.client.annotations.create(id=ids[25], result=result('8'))
    ann = lambda i: ls.client.annotations.list(id=ids[i])[0]
    ls.client.annotations.update(id=ann(0).id, result=result('9'))
    ls.client.annotations.update(id=ann(1).id, was_cancelled=True)
    ls.client.annotations.delete(id=ann(2).id)
    ls.client.predictions.create(task=ids[27], result=result('1'), score=0.5, model_version='m')
    # bulk-imported predictions move no `updated_at`: predictions are not labels, no export holds them
    ls.client.projects.import_predictions(id=p.id, request=[{'task': ids[26], 'result': result('2'), 'model_version': 'bulk'}])
    ls.client.tasks.update(id=ids[3], data={'image': '/data/upload/9/other.png'})
    ls.client.tasks.delete(id=ids[4])
    ls.import_tasks(p.id, [{'data': {'image': '/data/upload/9/new.png'}, 'annotations': ['2']}])
    r = export_project(LabelstudioParams(project='stage-delta', out=out))
    meta = json.loads(meta_path(project/out).read_text())
    assert meta['method'] == 'incremental: 7 changed, 1 deleted of 30 tasks', meta['method']
    f = export_project(LabelstudioParams(project='stage-delta', out=full, full=True))
    assert (project/out).read_bytes() == (project/full).read_bytes() and r.sha256 == f.sha256 and f.snapshot_id
    assert r.counts == f.counts == {'tasks': 30, 'annotations': 20, 'cancelled_annotations': 1, 'labeled_tasks': 19,
                                    'unlabeled_tasks': 11}
    # nothing changed since: the fingerprint says so, nothing is asked
    assert not export_project(LabelstudioParams(project='stage-delta', out=out)).changed
    # a previous export edited by hand is not built on: a full export replaces it, saying why
    (project/out).write_text((project/out).read_text().replace('"9"', '"7"'))
    ls.client.annotations.create(id=ids[28], result=result('9'))
    export_project(LabelstudioParams(project='stage-delta', out=out))
    assert json.loads(meta_path(project/out).read_text())['method'] == 'full: the export file is not the one its meta describes'
    export_project(LabelstudioParams(project='stage-delta', out=full, full=True))
    assert (project/out).read_bytes() == (project/full).read_bytes()
    # an export an older mlops-nb wrote, keeping fields this one drops, is neither kept as current nor merged into,
    # even with the project unchanged: a full export replaces it
    tasks = json.loads((project/out).read_text()); tasks[0]['predictions'] = [{'id': 1, 'result': result('3')}]
    (project/out).write_text(json.dumps(tasks))
    meta = json.loads(meta_path(project/out).read_text())
    meta_path(project/out).write_text(json.dumps({**meta, 'sha256': sha256_file(project/out), 'shape': None}))
    assert export_project(LabelstudioParams(project='stage-delta', out=out)).changed
    meta = json.loads(meta_path(project/out).read_text())
    assert meta['method'] == 'full: the previous export was written in another shape (older mlops-nb)', meta['method']
    assert (project/out).read_bytes() == (project/full).read_bytes() and meta['shape'] == lsmod.export_shape()

def test_bad_token_unknown_project_unreachable_leave_previous_export(labelstudio, labelstudio_env, small, project, monkeypatch):
    out = project/'data/raw_labels/small.json'
    export_project(LabelstudioParams(project='stage-small', out=out))
    before = {p: p.read_bytes() for p in (out, meta_path(out))}
    monkeypatch.setenv('LABEL_STUDIO_API_KEY', 'not-the-token-0123456789')
    with pytest.raises(MlopsError, match='token rejected') as e: export_project(LabelstudioParams(project='stage-small', out=out, force=True))
    assert 'set LABEL_STUDIO_API_KEY' in str(e.value) and '\n' not in str(e.value) and 'not-the-token' not in str(e.value)
    monkeypatch.setenv('LABEL_STUDIO_API_KEY', labelstudio.token)
    with pytest.raises(MlopsError, match=f'project 987654 not found at {labelstudio.url}'): export_project(LabelstudioParams(project=987654, out=out))
    with pytest.raises(MlopsError, match="project 'no-such-project' not found"): export_project(LabelstudioParams(project='no-such-project', out=out))
    dead = f'http://127.0.0.1:{free_port()}'
    t0 = time.time()
    with pytest.raises(MlopsError, match=f'Label Studio at {dead} is unreachable .* after 3 attempts'):
        export_project(LabelstudioParams(project='stage-small', out=out, url=dead, force=True), attempts=3, backoff=0.1)
    assert time.time() - t0 < 30
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in out.parent.iterdir()) == ['small.json', 'small.meta.json']  # no temp files left

def test_quick_fingerprint_matches_sdk_and_drives_skip(labelstudio, labelstudio_env, small, project, monkeypatch):
    "The runner's cheap change check and the stage's fingerprint see exactly what the SDK sees, with either kind of token."
    from mlops_nb.labelstudio import find_project, fingerprint, quick_fingerprint, skip_reason
    from mlops_nb.labelstudio_client import connect
    ls = labelstudio; p = ls.client.projects.get(id=small.id)
    newest = ls.client.tasks.list(project=p.id, page_size=1, fields='task_only',
                                  query=json.dumps({'ordering': ['-tasks:updated_at']})).items[0].updated_at
    sdk = {'project_id': p.id, 'title': p.title, 'tasks': p.task_number, 'annotations': p.total_annotations_number,
           'cancelled_annotations': p.skipped_annotations_number,
           'newest_updated_at': newest.astimezone(timezone.utc).isoformat().replace('+00:00', 'Z'),
           'config_sha256': lsmod.config_sha256(p.label_config)}   # the labeling config: a changed one exports again
    conn = connect()
    assert fingerprint(conn, find_project(conn, small.id)) == fingerprint(conn, find_project(conn, 'stage-small')) == sdk
    assert quick_fingerprint('stage-small') == quick_fingerprint(small.id) == sdk
    monkeypatch.setenv('LABEL_STUDIO_API_KEY', labelstudio.personal_access_token())
    assert quick_fingerprint('stage-small') == sdk
    monkeypatch.setenv('LABEL_STUDIO_API_KEY', labelstudio.token)
    out = project/'data/raw_labels/skip.json'
    assert skip_reason('stage-small', out) is None            # nothing exported yet
    export_project(LabelstudioParams(project='stage-small', out=out))
    assert 'unchanged' in skip_reason('stage-small', out)
    assert skip_reason('stage-small', out, force=True) is None
    monkeypatch.setenv('LABEL_STUDIO_API_KEY', 'wrong-token-0123456789')
    assert skip_reason('stage-small', out) is None            # doubt means: run the stage (which reports the problem)

def test_check_names_each_project_it_cannot_check(labelstudio, small, project, run_cli):
    """Issue 32: `mlops-nb labelstudio check` asks every project; one missing from Label Studio, or a rejected token, is
    named with its reason (the export's words), the others are checked, and the fingerprints file is left as it was."""
    (project/'params.yaml').write_text(json.dumps({'labelstudio': {'small': {'project': 'stage-small'},
                                                                   'gone': {'project': 'no-such-project-here'}}}))
    r = run_cli('labelstudio', 'check', cwd=project, env=labelstudio.env)
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert 'labelstudio check: small: ok' in r.stderr
    assert "labelstudio check: gone: no single project with id or exact title 'no-such-project-here'" in r.stderr
    assert 'gone could not be checked (1 of 2 were)' in r.stderr and not (project/'metrics/labelstudio').exists()
    r = run_cli('labelstudio', 'check', cwd=project, env={**labelstudio.env, 'LABEL_STUDIO_API_KEY': 'f'*40})
    assert r.returncode == 2 and 'rejected the token (HTTP 401)' in r.stderr, r.stderr[-2000:]

def test_personal_access_token(labelstudio, labelstudio_env, small, project, monkeypatch):
    pat = labelstudio.personal_access_token()
    assert pat.count('.') == 2
    monkeypatch.setenv('LABEL_STUDIO_API_KEY', pat)
    r = export_project(LabelstudioParams(project=small.id, out='data/raw_labels/pat.json', force=True))
    assert r.counts['tasks'] == 6
    assert_no_secret(pat, project)

def test_2000_tasks_through_the_snapshot_api(labelstudio, labelstudio_env, project):
    ls = labelstudio
    tasks = [{'data': {'image': f'http://example.com/{i}.png'}, 'annotations': [str(i % 10)] if i % 10 == 3 else []} for i in range(2000)]
    p = ls.make_project('stage-2000', tasks)
    assert p.task_number == 2000
    t0 = time.time()
    r = export_project(LabelstudioParams(project='stage-2000', out='data/raw_labels/big.json'))
    assert r.counts['tasks'] == 2000 and r.counts['annotations'] == 200
    snap = ls.client.projects.exports.get(id=p.id, export_pk=r.snapshot_id)
    assert snap.status == 'completed' and snap.title == lsmod.SNAPSHOT_TITLE
    ids = [t['id'] for t in json.loads(r.out.read_text())]
    assert ids == sorted(ids) and len(set(ids)) == 2000
    assert export_project(LabelstudioParams(project='stage-2000', out='data/raw_labels/big.json')).changed is False
    print(f'2000-task export: {time.time()-t0:.1f}s')

def test_cli_run_stage_keeps_token_out_of_every_file(labelstudio, small, project, run_cli, source_tree):
    from mlops_nb.runner import packaged_notebooks
    if packaged_notebooks() is None:  # editable dev install: the wheel ships the notebooks, a source checkout has them in nbs/
        (project/'nbs').mkdir(); shutil.copy(source_tree/'nbs/10_labelstudio.ipynb', project/'nbs')
    env = labelstudio.env
    args = ['run', 'labelstudio', '--sample', '-p', 'project=stage-small', '-p', 'out=data/raw_labels/cli.json']
    r = run_cli(*args, cwd=project, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    out = project/'data/raw_labels/cli.json'
    first = out.read_bytes(), meta_path(out).read_bytes()
    assert 'changed: True' in r.stdout and (project/'runs/labelstudio/latest.ipynb').exists()
    r2 = run_cli(*args, cwd=project, env=env)
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert 'up to date' in r2.stdout and 'unchanged' in r2.stderr   # the runner's skip check: no kernel started
    assert (out.read_bytes(), meta_path(out).read_bytes()) == first
    assert_no_secret(labelstudio.token, project)
    bad = run_cli(*args, cwd=project, env={**env, 'LABEL_STUDIO_API_KEY': 'wrong-token-abcdef'})
    assert bad.returncode == 1 and 'token rejected' in bad.stderr and 'Traceback' not in bad.stderr
    assert (out.read_bytes(), meta_path(out).read_bytes()) == first

def test_seed_demo(labelstudio, labelstudio_env, project, capsys):
    ls = labelstudio
    t0 = time.time()
    res = seed_demo(n_pool=40, n_bench=20, pool='demo-pool', benchmark='demo-bench')
    took = time.time() - t0
    assert {k: (v['tasks'], v['created']) for k,v in res.items()} == {'demo-pool': (40, True), 'demo-bench': (20, True)}
    again = seed_demo(n_pool=40, n_bench=20, pool='demo-pool', benchmark='demo-bench')
    assert {k: (v['id'], v['created']) for k,v in again.items()} == {k: (v['id'], False) for k,v in res.items()}
    assert [p.title for p in ls.client.projects.list()].count('demo-pool') == 1
    pool = json.loads(export_project(LabelstudioParams(project='demo-pool', out='data/raw_labels/pool.json')).out.read_text())
    bench = json.loads(export_project(LabelstudioParams(project='demo-bench', out='data/raw_labels/bench.json')).out.read_text())
    assert not {t['data']['digit_index'] for t in pool} & {t['data']['digit_index'] for t in bench}
    anns = [a for t in pool for a in t['annotations']]
    assert any(a['was_cancelled'] for a in anns)
    assert any(not t['annotations'] for t in pool)
    two = [t for t in pool if len(t['annotations']) == 2]
    assert two and all(len({a['result'][0]['value']['choices'][0] for a in t['annotations']}) == 2 for t in two)
    assert all(len({a['completed_by'] for a in t['annotations']}) == 2 for t in two)
    correct = sum(a['result'][0]['value']['choices'][0] == digit_png(t['data']['digit_index'])[1]
                  for t in pool if len(t['annotations']) == 1 for a in t['annotations'] if not a['was_cancelled'])
    assert correct >= 0.8 * len(pool)
    img = pool[0]['data']['image']
    assert img.startswith('/data/upload/')
    with ls.http() as h: assert h.get(img).content == digit_png(pool[0]['data']['digit_index'])[0]
    assert httpx.get(ls.url + img).status_code in (401, 403)
    assert took < 60

def test_serve_reuse_and_server_stopped_mid_export(labelstudio, project, run_cli, monkeypatch, tmp_path):
    "A second, short-lived server from the CLI: serve, reuse, export, then the server stops mid-export."
    data_dir = tmp_path/'ls-data'
    env = {'MLOPS_LABELSTUDIO_VENV': str(ls_executable().parent.parent)}
    monkeypatch.setenv('MLOPS_LABELSTUDIO_VENV', env['MLOPS_LABELSTUDIO_VENV'])
    port = free_port()
    try:
        r = run_cli('labelstudio', 'serve', '--port', port, '--data-dir', data_dir, cwd=project, env=env, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        info = json.loads((data_dir/'server.json').read_text())
        token = (data_dir/'token').read_text().strip()
        assert oct((data_dir/'token').stat().st_mode & 0o777) == '0o600'
        assert f'export LABEL_STUDIO_URL={info["url"]}' in r.stdout and 'export LABEL_STUDIO_API_KEY=$(cat ' in r.stdout
        assert token not in r.stdout + r.stderr and token not in (data_dir/'server.json').read_text()
        assert info['url'].startswith('http://127.0.0.1:')
        assert token.encode() not in Path(f'/proc/{info["pid"]}/cmdline').read_bytes()  # not visible in `ps`
        # issue 32: nothing phones home (no Sentry error reports, no analytics, no version check), no SSRF exception
        environ = dict(kv.split(b'=', 1) for kv in Path(f'/proc/{info["pid"]}/environ').read_bytes().split(b'\0') if b'=' in kv)
        quiet = {b'SENTRY_DSN': b'', b'FRONTEND_SENTRY_DSN': b'', b'COLLECT_ANALYTICS': b'false', b'LATEST_VERSION_CHECK': b'false'}
        assert {k: environ.get(k) for k in quiet} == quiet and b'SSRF_PROTECTION_ENABLED' not in environ
        r2 = run_cli('labelstudio', 'serve', '--port', port, '--data-dir', data_dir, cwd=project, env=env)
        assert r2.returncode == 0 and json.loads((data_dir/'server.json').read_text())['pid'] == info['pid']
        monkeypatch.setenv('LABEL_STUDIO_URL', info['url']); monkeypatch.setenv('LABEL_STUDIO_API_KEY', token)
        conn = lsmod.connect()
        p = conn.client.projects.create(title='short-lived', label_config=lsmod.DIGITS_CONFIG)
        conn.client.projects.import_tasks(id=p.id, request=[{'data': {'image': f'http://example.com/{i}.png'}} for i in range(3)])
        out = project/'data/raw_labels/short.json'
        export_project(LabelstudioParams(project='short-lived', out=out))
        before = {q: q.read_bytes() for q in (out, meta_path(out))}
        tid = conn.client.tasks.list(project=p.id, fields='task_only').items[0].id
        conn.client.annotations.create(id=tid, result=result('2'))
        from mlops_nb import export_delta
        real = export_delta.export_ids
        def stop_then_export(*a, **kw):
            stop(str(data_dir))
            return real(*a, **kw)
        monkeypatch.setattr(export_delta, 'export_ids', stop_then_export)   # the incremental export's one request
        with pytest.raises(MlopsError, match='is unreachable while exporting 1 changed tasks'):
            export_project(LabelstudioParams(project='short-lived', out=out), attempts=2, backoff=0.1)
        assert {q: q.read_bytes() for q in before} == before
        assert sorted(q.name for q in out.parent.iterdir()) == ['short.json', 'short.meta.json']
        assert not (data_dir/'server.json').exists() and running_server(data_dir) is None
        assert 'sentry' not in (data_dir/'server.log').read_text().lower()
    finally:
        stop(str(data_dir))

def test_report_names_both_annotation_counts_and_escapes_the_title(labelstudio, project, run_cli, source_tree):
    """Issue 12 item 9 and escaping: the stage report says which annotation count leaves cancelled annotations out,
    and a project title that is markup shows as text on the rendered page; exit 0, earlier files byte-identical."""
    from mlops_nb.run_page import render_notebook_html
    from mlops_nb.runner import packaged_notebooks
    import html
    if packaged_notebooks() is None:
        (project/'nbs').mkdir(); shutil.copy(source_tree/'nbs/10_labelstudio.ipynb', project/'nbs')
    title = '<img src=x onerror=alert(7)>'
    labelstudio.make_project(title, [{'data': {'image': 'http://example.com/1.png'}, 'annotations': ['1']},
                                     {'data': {'image': 'http://example.com/2.png'},
                                      'annotations': ['2', {'label': None, 'was_cancelled': True}]}])
    section = {'project': title, 'out': 'data/raw_labels/hostile.json'}
    (project/'params.yaml').write_text(json.dumps({'labelstudio': {'hostile': section}}))
    before = {p: sha256_file(p) for p in files_under(project) if '.git' not in p.parts}
    r = run_cli('run', 'labelstudio', '--section', 'labelstudio.hostile', cwd=project, env=labelstudio.env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert {p: sha256_file(p) for p in before} == before
    nb = project/'runs/labelstudio-hostile/latest.ipynb'
    if not nb.exists(): [nb] = project.glob('runs/labelstudio*/latest.ipynb')
    text = json.loads(nb.read_text())
    shown = ''.join(''.join(o.get('text', '')) for c in text['cells'] for o in c.get('outputs', []))
    assert ('2 tasks (2 labeled, 0 unlabeled); 3 annotations in the export, 1 of them cancelled '
            '(Label Studio itself counts 2: it leaves cancelled annotations out)') in shown, shown
    assert 'annotations not counting 1 cancelled' in shown, shown
    page = render_notebook_html(nb).read_text()
    assert title not in page and html.escape(title, quote=False) in page
    assert_no_secret(labelstudio.token, project)

def test_labeling_config_change_exports_again(labelstudio, labelstudio_env, project):
    "Issue 30: the export's meta keeps the labeling config (the task type), and a changed config is a change."
    from mlops_nb.labelstudio import skip_reason
    ls = labelstudio
    p = ls.make_project('config-change', [{'data': {'image': '/data/upload/1/x.png'}, 'annotations': ['3']}])
    out = project/'data/raw_labels/cfg.json'
    export_project(LabelstudioParams(project='config-change', out=out))
    assert json.loads(meta_path(out).read_text())['label_config'] == lsmod.DIGITS_CONFIG
    assert 'unchanged' in skip_reason('config-change', out)
    ls.client.projects.update(id=p.id, label_config=lsmod.label_config([*lsmod.DIGIT_LABELS, '10']))
    assert skip_reason('config-change', out) is None
    export_project(LabelstudioParams(project='config-change', out=out))
    assert '"10"' in json.loads(meta_path(out).read_text())['label_config']
