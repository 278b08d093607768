"""`mlops-nb refresh` end to end: a clean clone whose `origin` is a bare git repo, whose DVC remote is moto's HTTP S3
server, against the real Label Studio and a loopback fake GitHub REST API that records every request.

The tests share ONE site (module fixture) and run in file order: the first refresh opens the pull request, the
second finds nothing to do, `--if-changed` stops after the fingerprint check, a new annotation updates the pull
request, and a clone without GitHub settings stops after its local commit."""
import json, os, re, shutil, subprocess, sys, time, uuid
from dataclasses import dataclass, field
from pathlib import Path
import pytest, yaml
from conftest import copy_pipeline, git
from fake_github import FakeGitHub

BIN = Path(sys.executable).parent

@dataclass
class Site:
    upstream:Path
    origin:Path
    clone:Path
    ls:object
    s3:object
    bucket:str
    gh:FakeGitHub
    titles:dict
    outputs:list = field(default_factory=list)

    def env(self, github=True, **extra)->dict:
        e = {k: v for k,v in os.environ.items() if not k.startswith(('AWS_', 'GITHUB_')) and k != 'MLOPS_NB_ROOT'}
        e.update(self.ls.env, PATH=os.pathsep.join([str(BIN), e.get('PATH', '')]), PYTHONUNBUFFERED='1')
        e.update({k: v for k,v in self.s3.env.items() if k != 'AWS_ENDPOINT_URL'})
        if github:
            e.update(GITHUB_TOKEN='ghs_faketoken123', GITHUB_REPOSITORY='acme/digits', GITHUB_API_URL=self.gh.url)
        return {**e, **extra}

    def refresh(self, *args, cwd=None, github=True, timeout=600)->subprocess.CompletedProcess:
        r = subprocess.run([str(BIN/'mlops-nb'), 'refresh', *args], cwd=cwd or self.clone, env=self.env(github),
                           capture_output=True, text=True, timeout=timeout)
        self.outputs.append(r.stdout + r.stderr)
        return r

    def origin_ref(self, ref)->str:
        return git(self.origin, 'rev-parse', '-q', '--verify', ref).strip() if subprocess.run(
            ['git', 'rev-parse', '-q', '--verify', ref], cwd=self.origin, capture_output=True).returncode == 0 else ''

def ok(r:subprocess.CompletedProcess)->str:
    assert r.returncode == 0, f'exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}'
    return r.stdout

def make_project(root:Path, source_tree:Path, titles:dict, bucket:str):
    "A pipeline project (this repo's dvc.yaml, params.yaml, notebooks) with an S3 default remote, committed on main."
    copy_pipeline(source_tree, root)
    params = yaml.safe_load((root/'params.yaml').read_text())   # the projects are the keys of params' labelstudio
    for key,title in titles.items(): params['labelstudio'][key] = {'project': title}
    (root/'params.yaml').write_text(yaml.safe_dump(params, sort_keys=False))
    git(root, 'init', '-q', '-b', 'main')
    subprocess.run([sys.executable, '-m', 'dvc', 'remote', 'add', '-d', 's3', f's3://{bucket}/dvcstore'], cwd=root,
                   check=True, capture_output=True)
    git(root, 'add', '-A')
    git(root, 'commit', '-qm', 'pipeline')

def clone(site_origin:Path, dest:Path, s3_url:str)->Path:
    subprocess.run(['git', 'clone', '-q', str(site_origin), str(dest)], check=True, capture_output=True)
    subprocess.run([sys.executable, '-m', 'dvc', 'remote', 'modify', '--local', 's3', 'endpointurl', s3_url], cwd=dest,
                   check=True, capture_output=True)
    return dest

@pytest.fixture(scope='module')
def site(labelstudio, s3_endpoint, source_tree, tmp_path_factory):
    "Tiny Label Studio projects, an upstream repo pushed to a bare origin, a clean clone, a fake GitHub."
    base = tmp_path_factory.mktemp('refresh')
    tag = uuid.uuid4().hex[:8]
    titles = {'digits': f'refresh-pool-{tag}', 'digits-benchmark': f'refresh-bench-{tag}'}
    env = {**os.environ, **labelstudio.env}
    seed = ['labelstudio', 'seed-demo', '--n-pool', '40', '--n-bench', '12', '--size', '16',
            '--pool', titles['digits'], '--benchmark', titles['digits-benchmark']]
    ok(subprocess.run([str(BIN/'mlops-nb'), *seed], env=env, capture_output=True, text=True))
    bucket = s3_endpoint.make_bucket(f'refresh-{tag}')
    make_project(base/'upstream', source_tree, titles, bucket)
    subprocess.run(['git', 'clone', '-q', '--bare', str(base/'upstream'), str(base/'origin.git')], check=True)
    gh = FakeGitHub('ghs_faketoken123', 'acme/digits')
    s = Site(base/'upstream', base/'origin.git', clone(base/'origin.git', base/'clone', s3_endpoint.url), labelstudio,
             s3_endpoint, bucket, gh, titles)
    yield s
    gh.close()

def annotate_one(site, label:str, key:str='digits')->int:
    "Annotate one unannotated task of a project (one API call); its task id."
    pid = next(p.id for p in site.ls.client.projects.list(page_size=100) if p.title == site.titles[key])
    with site.ls.http() as h:
        tasks = h.get('/api/tasks', params={'project': pid, 'page_size': 100}).raise_for_status().json()['tasks']
        task = next(t for t in tasks if not t['total_annotations'])
        h.post(f'/api/tasks/{task["id"]}/annotations/', json={'result': [{'from_name': 'label', 'to_name': 'image',
               'type': 'choices', 'value': {'choices': [label]}}]}).raise_for_status()
    return task['id']

def test_refresh_pushes_branch_and_opens_one_pull_request(site):
    "First refresh: data pushed to S3, one commit on data-refresh (parent: main) pushed, one PR call, main untouched."
    main0 = site.origin_ref('refs/heads/main')
    out = ok(site.refresh())
    assert 'pull request #1 opened (data-refresh -> main)' in out, out
    head = site.origin_ref('refs/heads/data-refresh')
    assert head and site.origin_ref('refs/heads/main') == main0
    assert git(site.origin, 'rev-parse', f'{head}^').strip() == main0
    files = git(site.origin, 'diff', '--name-only', main0, head).split()
    assert 'dvc.lock' in files and 'metrics/labelstudio/digits.json' in files and 'metrics/dataset-digits.json' in files, files
    assert not [f for f in files if f.startswith(('data/', 'runs/'))], files
    lock = yaml.safe_load(git(site.origin, 'show', f'{head}:dvc.lock'))
    assert {'labelstudio-check', 'labelstudio@digits', 'labelstudio@digits-benchmark', 'dataset-benchmark', 'dataset@digits'} <= set(lock['stages'])
    assert 'train' not in lock['stages']  # training is the pull request's business
    fp = json.loads(git(site.origin, 'show', f'{head}:metrics/labelstudio/digits.json'))
    assert fp['title'] == site.titles['digits'] and fp['tasks'] == 40
    posts = site.gh.records('POST')
    assert len(posts) == 1 and posts[0]['path'] == '/repos/acme/digits/pulls', site.gh.requests
    assert (posts[0]['body']['head'], posts[0]['body']['base']) == ('data-refresh', 'main')
    assert all(r['auth'] == 'token ghs_faketoken123' for r in site.gh.records())
    assert site.titles['digits'] in posts[0]['body']['body']
    keys = site.s3.client().list_objects_v2(Bucket=site.bucket, Prefix='dvcstore/')['KeyCount']
    assert keys > 0  # the data version reached the remote
    assert git(site.clone, 'branch', '--show-current').strip() == 'main'

def test_second_refresh_commits_nothing_and_calls_nothing(site):
    "Same data: same branch head, no commit, no API call."
    head,n = site.origin_ref('refs/heads/data-refresh'),len(site.gh.requests)
    out = ok(site.refresh())
    assert 'branch data-refresh already holds this data' in out, out
    assert site.origin_ref('refs/heads/data-refresh') == head
    assert len(site.gh.requests) == n

def test_if_changed_with_nothing_changed_is_one_fingerprint_check(site):
    "`--if-changed`, nothing new: one line, exit 0, no DVC, no git push, no API call, about the cost of one check."
    n = len(site.gh.requests)
    t0 = time.time()
    r = site.refresh('--if-changed')
    secs = time.time() - t0
    out = ok(r)
    assert out.strip().splitlines() == [out.strip()], out
    assert out.startswith('refresh: no change in digits, digits-benchmark'), out
    assert 'Running stage' not in r.stderr and 'dvc' not in r.stderr.lower(), r.stderr
    assert len(site.gh.requests) == n
    t0 = time.time()
    ok(subprocess.run([str(BIN/'mlops-nb'), '--help'], capture_output=True, text=True))
    cli = time.time() - t0
    assert secs < cli + 4, (secs, cli)  # process start + two fingerprints + one git fetch, never a DVC run

def test_new_annotation_updates_the_pull_request(site):
    "A pool annotation: `--if-changed` reruns only its data stages, force-pushes one commit on main, updates the PR."
    main0,head0 = site.origin_ref('refs/heads/main'),site.origin_ref('refs/heads/data-refresh')
    task = annotate_one(site, '7')
    n = len(site.gh.requests)
    r = site.refresh('--if-changed')
    out = ok(r)
    assert 'pull request #1 updated' in out, out
    assert "Running stage 'dataset-benchmark'" not in r.stderr, r.stderr[-3000:]
    assert "Running stage 'dataset@digits'" in r.stderr, r.stderr[-3000:]
    head = site.origin_ref('refs/heads/data-refresh')
    assert head != head0 and git(site.origin, 'rev-parse', f'{head}^').strip() == main0
    assert site.origin_ref('refs/heads/main') == main0
    new = site.gh.records()[n:]
    assert [r['method'] for r in new] == ['GET', 'PATCH'], new
    export = json.loads((site.clone/'data/raw_labels/digits.json').read_text())
    assert next(t for t in export if t['id'] == task)['annotations']

def test_after_merge_the_next_refresh_opens_a_new_pull_request(site):
    "The PR is merged (main = its head): nothing to do; a new annotation changes the now tracked dvc.lock -> PR #2."
    head = site.origin_ref('refs/heads/data-refresh')
    git(site.origin, 'update-ref', 'refs/heads/main', head)
    site.gh.pulls[0]['state'] = 'closed'
    git(site.clone, 'reset', '-q', '--hard')  # the refresh's own dvc.lock/metrics, now on main: a fresh checkout
    git(site.clone, 'clean', '-qfd')
    git(site.clone, 'pull', '-q', '--ff-only', 'origin', 'main')
    n = len(site.gh.requests)
    assert ok(site.refresh('--if-changed')).startswith('refresh: no change in digits, digits-benchmark')
    assert len(site.gh.requests) == n
    task = annotate_one(site, '5')
    out = ok(site.refresh('--if-changed'))
    assert 'pull request #2 opened (data-refresh -> main)' in out, out
    new_head = site.origin_ref('refs/heads/data-refresh')
    assert git(site.origin, 'rev-parse', f'{new_head}^').strip() == head == site.origin_ref('refs/heads/main')
    assert 'dvc.lock' in git(site.origin, 'diff', '--name-only', head, new_head).split()
    assert [r['method'] for r in site.gh.records()[n:]] == ['GET', 'POST']
    export = json.loads((site.clone/'data/raw_labels/digits.json').read_text())
    assert next(t for t in export if t['id'] == task)['annotations']

def test_without_github_settings_stops_after_the_local_commit(site, tmp_path):
    "A fresh clone, no GITHUB_*: data from the S3 remote, the commit stays local, nothing is pushed or called."
    c = clone(site.origin, tmp_path/'local', site.s3.url)
    annotate_one(site, '1')  # the pool changed again: a local user gets a commit to push themselves
    remote_head,n = site.origin_ref('refs/heads/data-refresh'),len(site.gh.requests)
    r = site.refresh('--project', 'digits', cwd=c, github=False)
    out = ok(r)
    assert 'on branch data-refresh (no GITHUB_TOKEN/GITHUB_REPOSITORY: not pushed, no pull request)' in out, out
    # issue 34: a fresh runner (no .cache/) pulls the previous export and dataset, exports the one changed task and
    # fetches only its image; every other image comes from the previous dataset
    # (main's data lacks the two annotations made since: this one and the unmerged pull request's)
    ex = re.search(r'digits\.json: written \(incremental: (\d+) changed, 0 deleted of \d+ tasks', r.stderr)
    assert ex and int(ex[1]) == 2, r.stderr[-5000:]
    m = re.search(r'\[dataset\] wrote digits: (\d+) images, \d+ dropped, (\d+) requests, (\d+) from cache, (\d+) from the '
                  r'previous dataset', r.stderr)
    assert m and (int(m[2]), int(m[3]), int(m[4])) == (2, 0, int(m[1]) - 2), r.stderr[-5000:]
    assert "Running stage 'labelstudio@digits-benchmark'" not in r.stderr   # pulled with --with-deps, not rebuilt
    assert site.origin_ref('refs/heads/data-refresh') == remote_head and len(site.gh.requests) == n
    local = git(c, 'rev-parse', 'refs/heads/data-refresh').strip()
    assert git(c, 'rev-parse', f'{local}^').strip() == git(c, 'rev-parse', 'HEAD').strip()
    assert git(c, 'branch', '--show-current').strip() == 'main'

def test_benchmark_project_reruns_both_dataset_stages(site):
    "`--project digits-benchmark`: its export, its dataset and the pool's dataset (leakage check dep) rerun."
    annotate_one(site, '2', 'digits-benchmark')
    r = site.refresh('--project', 'digits-benchmark')
    out = ok(r)
    assert 'pull request #2 updated' in out, out
    ran = re.findall(r"^Running stage '([^']+)'", r.stderr, re.M)
    # the change check is upstream of every export; the pool's export runs only because its own project moved (the
    # annotation of the test before, refreshed in another clone)
    want = ['labelstudio-check', 'labelstudio@digits-benchmark', 'dataset-benchmark', 'dataset@digits']
    assert [s for s in ran if s != 'labelstudio@digits'] == want, r.stderr[-3000:]

def test_unknown_project_is_one_line(site):
    r = site.refresh('--project', 'nope')
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == ("mlops-nb refresh: error: unknown project 'nope': pick from the pipeline "
                                "projects: digits, digits-benchmark"), r.stderr

def test_no_secret_in_output_or_history(site):
    history = subprocess.run(['git', 'log', '--all', '-p'], cwd=site.origin, capture_output=True, text=True).stdout
    for s in ('ghs_faketoken123', site.ls.token, site.s3.env['AWS_SECRET_ACCESS_KEY']):
        assert s not in history and not any(s in o for o in site.outputs)
