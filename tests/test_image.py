"""The container image (`Containerfile`), tested from outside: `make image-test` builds nothing, it runs these against
the image `make image` built (`MLOPS_IMAGE`; skipped without it). Inside the image: `mlops-nb --help`; the sample
pipeline on a bind-mounted clean clone, as a non-root host user whose files the outputs stay; one stage against the
Label Studio this session runs on the host; and what the image must not hold (root, `.git`, a token, test data)."""
import json, os, shlex, subprocess, uuid
from pathlib import Path
import pytest
from conftest import git

IMAGE = os.environ.get('MLOPS_IMAGE')
pytestmark = pytest.mark.skipif(not IMAGE, reason='no image: `make image image-test` builds and tests one')
# podman on this kind of machine needs its cgroup manager, runtime and ulimits (.ci/image.sh says why)
ENGINE = shlex.split(os.environ.get('MLOPS_CONTAINER', 'podman'))
RUN = shlex.split(os.environ.get('MLOPS_CONTAINER_RUN_ARGS', ''))
HOST_USER = (4321, 4321)  # a host user who is not root, as on a laptop or a CI runner (uid 1001 on GitHub's)
SECRET_NAMES = ('LABEL_STUDIO_API_KEY', 'AWS_SECRET_ACCESS_KEY', 'AWS_ACCESS_KEY_ID', 'GITHUB_TOKEN', 'WEBHOOK_SECRET')

def engine(*args, timeout=600)->subprocess.CompletedProcess:
    return subprocess.run([*ENGINE, *map(str, args)], capture_output=True, text=True, timeout=timeout)

def run_image(*args, user=None, workspace=None, network='none', entrypoint=None, env=(), timeout=900):
    "`<engine> run --rm` of the image; the workspace bind-mounted at /work; env names passed through, never values."
    opts = [*RUN, '--network', network]
    if user: opts += ['--user', f'{user[0]}:{user[1]}']
    if workspace: opts += ['-v', f'{workspace}:/work']
    if entrypoint: opts += ['--entrypoint', entrypoint]
    for name in env: opts += ['-e', name]
    return engine('run', '--rm', *opts, IMAGE, *args, timeout=timeout)

@pytest.fixture(scope='module')
def config()->dict:
    r = engine('image', 'inspect', IMAGE)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]

@pytest.fixture(scope='module')
def workspace(tmp_path_factory, source_tree)->Path:
    "A clean clone of this checkout's HEAD, owned by a non-root host user (when these tests run as root)."
    ws = tmp_path_factory.mktemp('image')/'ws'
    subprocess.run(['git', 'clone', '-q', str(source_tree), str(ws)], check=True)
    if os.getuid() == 0: subprocess.run(['chown', '-R', '{}:{}'.format(*HOST_USER), str(ws)], check=True)
    return ws

def host_user(): return HOST_USER if os.getuid() == 0 else (os.getuid(), os.getgid())

def test_help_prints_the_commands():
    r = run_image('--help')
    assert r.returncode == 0, r.stderr
    for cmd in ('run', 'stages', 'demo', 'refresh', 'suggest', 'review', 'promote', 'labelstudio'): assert cmd in r.stdout

def test_configured_user_is_not_root(config):
    user = config['Config'].get('User', '')
    assert user and user.split(':')[0] not in ('0', 'root'), user
    r = run_image('-c', 'id -u; id -g', entrypoint='sh')
    assert r.returncode == 0 and r.stdout.split()[0] != '0', r.stdout + r.stderr

def test_labels_name_source_revision_version_license(config, source_tree):
    labels = config['Config']['Labels']
    assert labels['org.opencontainers.image.licenses'] == 'Apache-2.0' and (source_tree/'LICENSE').exists()
    assert labels['org.opencontainers.image.source'].startswith('https://')
    assert len(labels['org.opencontainers.image.revision']) == 40
    version = [l.split('=')[1].strip() for l in (source_tree/'settings.ini').read_text().splitlines() if l.startswith('version')]
    assert labels['org.opencontainers.image.version'] == version[0]

def test_no_git_token_or_test_data_inside(config):
    "Nothing of the checkout but the package: no `.git`, no tests or their data, no Label Studio folder or token file."
    find = "find / -xdev \\( -name .git -o -name .labelstudio -o -name '*.token' -o -name .dvc -o -name test-artifacts \\) -print"
    r = run_image('-c', f'{find}; ls /opt/mlops-nb/lib/python3.11/site-packages/mlops_nb', entrypoint='sh')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert not [l for l in lines if l.startswith('/')], lines
    assert 'stage_nbs' in lines and 'tests' not in lines and 'data' not in lines
    history = engine('history', '--no-trunc', '--format', '{{.CreatedBy}}', IMAGE).stdout
    env = config['Config'].get('Env', [])
    for name in SECRET_NAMES: assert name not in history and not [e for e in env if e.startswith(name)], name

def test_sample_pipeline_writes_into_the_workspace_as_its_owner(workspace):
    "The sample pipeline, no network: its metrics land in the mounted clone, every new file the host user's."
    uid,gid = host_user()
    for stage in ('dataset', 'train', 'evaluate', 'compare'):
        r = run_image('run', stage, '--sample', user=(uid, gid), workspace=workspace)
        assert r.returncode == 0, f'{stage}: {r.stdout[-2000:]}{r.stderr[-2000:]}'
    metrics = json.loads((workspace/'data/sample/metrics/benchmark.json').read_text())
    assert 0 <= metrics['accuracy'] <= 1
    assert (workspace/'runs/evaluate/latest.ipynb').exists()
    foreign = [p for p in workspace.rglob('*') if '.git' not in p.parts and (p.stat().st_uid, p.stat().st_gid) != (uid, gid)]
    assert not foreign, foreign[:5]

def test_a_stage_against_label_studio_on_the_host(workspace, labelstudio, monkeypatch):
    "The export stage in the image reaches the host's Label Studio; the token travels by name and is written nowhere."
    uid,gid = host_user()
    tasks = [{'data': {'image': f'/data/upload/1/{i}.png'}, 'annotations': [str(i)]} for i in range(4)]
    project = labelstudio.make_project(f'image-{uuid.uuid4().hex[:8]}', tasks)
    for k,v in labelstudio.env.items(): monkeypatch.setenv(k, v)
    r = run_image('run', 'labelstudio', '--section', 'labelstudio.digits', '-p', f'project={project.id}',
                  user=(uid, gid), workspace=workspace, network='host', env=list(labelstudio.env))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    export = json.loads((workspace/'data/raw_labels/digits.json').read_text())
    assert len(export) == 4 and (workspace/'data/raw_labels/digits.json').stat().st_uid == uid
    token = labelstudio.env['LABEL_STUDIO_API_KEY']
    leaks = [p for p in workspace.rglob('*') if p.is_file() and '.git' not in p.parts and token in p.read_text(errors='ignore')]
    assert not leaks and token not in r.stdout + r.stderr, leaks
    assert git(workspace, '-c', 'safe.directory=*', 'status', '--porcelain', '--', 'params.yaml', 'dvc.yaml', 'dvc.lock') == ''

@pytest.fixture(scope='module')
def registry(tmp_path_factory):
    "Debian's docker-registry (the reference registry, distribution 2.8) on a loopback port, storage in a temp folder."
    import shutil, socket, time, httpx
    exe = shutil.which('docker-registry')
    if not exe: pytest.skip('no docker-registry here (Debian: apt-get install docker-registry)')
    d = tmp_path_factory.mktemp('registry')
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    (d/'config.yml').write_text(f'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {d}/data\n'
                                f'http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: error\n')
    proc = subprocess.Popen([exe, 'serve', str(d/'config.yml')], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f'http://127.0.0.1:{port}'
    for _ in range(100):
        try:
            if httpx.get(f'{url}/v2/').status_code == 200: break
        except httpx.HTTPError: time.sleep(0.1)
    try: yield f'127.0.0.1:{port}', url
    finally: proc.terminate(); proc.wait(10)

def image_script(*args, env):
    return subprocess.run(['.ci/image.sh', *args], cwd=os.environ.get('MLOPS_NB_SOURCE_TREE', Path(__file__).parents[1]),
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=900)

def test_push_tags_the_commit_main_and_the_champion(registry, source_tree, tmp_path):
    """`make image-push` on main pushes sha-<commit> and main; `make image-champion` adds the benchmark model's version.
    The small base image stands in for the 7 GB one: what is tested is the tagging, not the upload."""
    import httpx
    host,url = registry
    base = [l for l in engine('images', '--format', '{{.Repository}}:{{.Tag}}').stdout.split() if 'mlops-nb-base:' in l]
    if not base: pytest.skip('no local base image (made by `make image` with podman)')
    metrics = tmp_path/'benchmark.json'
    metrics.write_text(json.dumps({'model': {'arch': 'cnn', 'sha256': 'ab'*32}}))
    env = dict(IMAGE=base[0], IMAGE_REPO=f'{host}/Owner/Repo', REGISTRY_TLS_VERIFY='false', GITHUB_REF_NAME='main',
               METRICS=str(metrics), IMAGE_WAIT='0')
    r = image_script('push', env=env)
    assert r.returncode == 0, r.stderr
    short = subprocess.run(['git', 'rev-parse', '--short=7', 'HEAD'], cwd=source_tree, capture_output=True, text=True).stdout.strip()
    tags = lambda: set(httpx.get(f'{url}/v2/owner/repo/tags/list').json()['tags'])
    assert tags() == {f'sha-{short}', 'main'}
    r = image_script('tag-champion', env=env)
    assert r.returncode == 0, r.stderr
    assert tags() == {f'sha-{short}', 'main', 'cnn-' + 'ab'*6}
    missing = image_script('tag-champion', env={**env, 'IMAGE_REPO': f'{host}/owner/nothing'})
    assert missing.returncode == 1 and 'did not appear' in missing.stderr
