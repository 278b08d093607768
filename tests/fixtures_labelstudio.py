"""Session fixture `labelstudio`: ONE real Label Studio server for the whole test session.

It runs from its own venv ($MLOPS_LABELSTUDIO_VENV, else `label-studio` on PATH, else the venv that
`.ci/env.sh labelstudio` builds or reuses), bound to 127.0.0.1 on a free port, with a temp data dir,
a generated legacy API token, and the package's own server environment (no error reports, analytics or version
check; SSRF_PROTECTION_ENABLED=false for the webhook tests).

A fresh Label Studio database needs ~2 minutes of Django migrations; the first session on a machine
migrates an empty database once and keeps it as a template under $MLOPS_CACHE (~/.cache/mlops_nb),
later sessions copy it and start in ~10 s. The template holds no user and no token.

    def test_x(labelstudio, monkeypatch):
        p = labelstudio.make_project('t', [{'image': 'http://x/1.png'}, {'data': {'image': '...'}, 'annotations': ['3']}])
        urls = labelstudio.upload(p.id, {'a.png': png_bytes})   # -> ['/data/upload/1/xxxx-a.png'] (needs auth)
        monkeypatch.setattr(os, 'environ', {**os.environ, **labelstudio.env})  # or monkeypatch.setenv for each
"""
from __future__ import annotations
import json, os, re, secrets, shutil, signal, socket, subprocess, tempfile, time
from dataclasses import dataclass, field
from pathlib import Path
import pytest

HERE = Path(__file__).resolve().parent
SOURCE_TREE = Path(os.environ.get('MLOPS_NB_SOURCE_TREE', HERE.parent))
CACHE = Path(os.environ.get('MLOPS_CACHE', Path.home()/'.cache'/'mlops_nb'))
START_TIMEOUT = int(os.environ.get('MLOPS_LS_START_TIMEOUT', 420))

DIGITS_CONFIG = ('<View><Image name="image" value="$image"/>'
                 '<Choices name="label" toName="image" choice="single" showInline="true">'
                 + ''.join(f'<Choice value="{i}"/>' for i in range(10)) + '</Choices></View>')

def ls_executable()->Path:
    "The `label-studio` script: $MLOPS_LABELSTUDIO_VENV, else PATH, else the venv `.ci/env.sh labelstudio` builds/reuses."
    if v := os.environ.get('MLOPS_LABELSTUDIO_VENV'):
        exe = Path(v)/'bin'/'label-studio'
        if not exe.exists(): pytest.fail(f'MLOPS_LABELSTUDIO_VENV={v} has no bin/label-studio')
        return exe
    if w := shutil.which('label-studio'): return Path(w)
    env_sh = SOURCE_TREE/'.ci'/'env.sh'
    if env_sh.exists():
        r = subprocess.run([str(env_sh), 'labelstudio'], cwd=SOURCE_TREE, capture_output=True, text=True)
        if r.returncode == 0 and (exe := Path(r.stdout.strip().splitlines()[-1])/'bin'/'label-studio').exists(): return exe
    pytest.fail('no Label Studio server found: set MLOPS_LABELSTUDIO_VENV (make labelstudio-env builds it)')

def free_port()->int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def server_env(**extra)->dict:
    "The environment `mlops-nb labelstudio serve --webhooks` gives its server (nothing sent outside, webhooks to loopback)."
    from mlops_nb.labelstudio_server import server_env as package_env
    return {**package_env(webhooks=True), **extra}

def template_db(exe:Path)->Path|None:
    "A migrated, user-less sqlite database for this Label Studio install (built once per machine, atomically)."
    key = re.sub(r'[^A-Za-z0-9_.-]', '_', exe.resolve().parent.parent.name)[:60]
    dest = CACHE/f'{key}-template.sqlite3'
    if dest.exists(): return dest
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix='.ls-template.') as d:
        r = subprocess.run([str(exe), 'version', '--data-dir', d], env=server_env(), capture_output=True, text=True,
                           timeout=START_TIMEOUT)
        db = Path(d)/'label_studio.sqlite3'
        if r.returncode or not db.exists(): return None
        tmp = CACHE/f'.{dest.name}.{os.getpid()}.tmp'
        shutil.copyfile(db, tmp); os.replace(tmp, dest)
    return dest

def wait_healthy(proc:subprocess.Popen, log:Path, timeout:float=START_TIMEOUT)->str:
    "Wait until the server answers /health; return its URL (read from its log: it may move to another port)."
    import httpx
    t0,url = time.time(),None
    while time.time()-t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f'label-studio exited with {proc.returncode}:\n{log.read_text()[-3000:]}')
        if url is None and (m := re.search(r'Starting development server at (http://[\d.]+:\d+)/', log.read_text(errors='replace'))):
            url = m.group(1)
        if url:
            try:
                if httpx.get(f'{url}/health', timeout=2).status_code == 200: return url
            except httpx.HTTPError: pass
        time.sleep(0.5)
    raise RuntimeError(f'label-studio did not answer /health within {timeout}s:\n{log.read_text()[-3000:]}')

def stop_process(proc:subprocess.Popen):
    "Stop a server started in its own session: SIGTERM to its process group, then SIGKILL."
    if proc.poll() is not None: return
    try: os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError: return
    try: proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL); proc.wait(15)

def start_server(data_dir:Path, token:str, port:int|None=None, username:str='admin@example.com', password:str|None=None):
    "Start a Label Studio (own process group) with a legacy token; return (process, url, log path)."
    exe = ls_executable()
    data_dir.mkdir(parents=True, exist_ok=True)
    if not (data_dir/'label_studio.sqlite3').exists() and (tpl := template_db(exe)):
        shutil.copyfile(tpl, data_dir/'label_studio.sqlite3')
    log = data_dir/'server.log'
    # password and token through the environment (private to the process), not argv (readable by anyone via `ps`)
    cmd = [str(exe), 'start', '--no-browser', '--internal-host', '127.0.0.1', '--port', str(port or free_port()),
           '--data-dir', str(data_dir), '--username', username, '--enable-legacy-api-token']
    env = server_env(LABEL_STUDIO_PASSWORD=password or secrets.token_urlsafe(12), LABEL_STUDIO_USER_TOKEN=token)
    with open(log, 'ab') as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=data_dir,
                                env=env, start_new_session=True)
    try: url = wait_healthy(proc, log)
    except BaseException:
        stop_process(proc); raise
    return proc, url, log

@dataclass
class LabelStudioServer:
    "A running Label Studio: `.url`, `.token` (legacy), `.client` (label_studio_sdk LabelStudio), helpers."
    url:str
    token:str
    proc:subprocess.Popen
    data_dir:Path
    log:Path
    username:str = 'admin@example.com'
    password:str = ''
    _client:object = field(default=None, repr=False)

    def __repr__(self): return f'LabelStudioServer(url={self.url!r}, data_dir={str(self.data_dir)!r})'

    @property
    def env(self)->dict:
        "The environment a stage needs to reach this server."
        return {'LABEL_STUDIO_URL': self.url, 'LABEL_STUDIO_API_KEY': self.token}

    @property
    def client(self):
        if self._client is None:
            from label_studio_sdk.client import LabelStudio
            self._client = LabelStudio(base_url=self.url, api_key=self.token, timeout=120)
        return self._client

    def http(self):
        "An httpx client authenticated with the legacy token (for endpoints the SDK does not wrap)."
        import httpx
        return httpx.Client(base_url=self.url, headers={'Authorization': f'Token {self.token}'}, timeout=120)

    @staticmethod
    def annotation(a)->dict:
        "Shorthand -> import format: '3' or {'label': '3', 'was_cancelled': True, 'completed_by': uid} or a full dict."
        if isinstance(a, str): a = {'label': a}
        a = dict(a)
        if 'label' in a:
            label = a.pop('label')
            a['result'] = [] if label is None else [{'from_name': 'label', 'to_name': 'image', 'type': 'choices',
                                                     'value': {'choices': [str(label)]}}]
        a.setdefault('result', []); a.setdefault('ground_truth', False); a.setdefault('was_cancelled', False)
        return a

    def import_tasks(self, project_id:int, tasks:list)->list[int]:
        "Import tasks (data dicts, or {'data':..., 'annotations': [...]}) in bulk; returns the new task ids."
        items = []
        for t in tasks:
            t = dict(t) if 'data' in t else {'data': dict(t)}
            if 'annotations' in t: t['annotations'] = [self.annotation(a) for a in t['annotations']]
            items.append(t)
        ids = []
        with self.http() as h:
            for i in range(0, len(items), 5000):
                r = h.post(f'/api/projects/{project_id}/import', params={'return_task_ids': 'true'}, json=items[i:i+5000])
                r.raise_for_status(); ids += r.json().get('task_ids', [])
        return ids

    def make_project(self, title:str, tasks_with_annotations:list=(), label_config:str=DIGITS_CONFIG):
        "Create a project (digits config by default) and import tasks with their annotations; returns the SDK project."
        p = self.client.projects.create(title=title, label_config=label_config)
        if tasks_with_annotations: self.import_tasks(p.id, list(tasks_with_annotations))
        return self.client.projects.get(id=p.id)

    def upload(self, project_id:int, files:dict[str, bytes])->list[str]:
        "Upload files into the project's storage (no tasks); returns their `/data/upload/...` URLs (auth needed), in order."
        names,ids = list(files),[]
        with self.http() as h:
            for i in range(0, len(names), 100):  # Django's DATA_UPLOAD_MAX_NUMBER_FILES is 100
                batch = [(f'f{j}', (n, files[n])) for j,n in enumerate(names[i:i+100])]
                r = h.post(f'/api/projects/{project_id}/import', params={'commit_to_project': 'false'}, files=batch)
                r.raise_for_status(); ids += r.json()['file_upload_ids']
            r = h.get(f'/api/projects/{project_id}/file-uploads', params={'ids': json.dumps(ids)}); r.raise_for_status()
        by_id = {u['id']: u['file'] for u in r.json()}
        return ['/data/' + by_id[i] for i in ids]

    def personal_access_token(self)->str:
        "The admin user's personal access token (a JWT refresh token), created on first use (Label Studio allows one)."
        if not getattr(self, '_pat', None):
            with self.http() as h:
                r = h.post('/api/token/'); r.raise_for_status(); self._pat = r.json()['token']
        return self._pat

    def add_user(self, email:str)->int:
        "Create another annotator in the organization; returns the user id."
        with self.http() as h:
            r = h.post('/api/users/', json={'email': email, 'username': email.split('@')[0], 'first_name': email.split('@')[0]})
            r.raise_for_status(); return r.json()['id']

@pytest.fixture(scope='session')
def labelstudio(tmp_path_factory):
    "One real Label Studio server for the session (see module docstring)."
    data_dir = tmp_path_factory.mktemp('labelstudio')
    token = secrets.token_hex(20)
    password = secrets.token_urlsafe(12)
    proc,url,log = start_server(data_dir, token, password=password)
    srv = LabelStudioServer(url=url, token=token, proc=proc, data_dir=data_dir, log=log, password=password)
    try: yield srv
    finally: stop_process(proc)

@pytest.fixture
def labelstudio_env(labelstudio, monkeypatch)->dict:
    "Point LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY at the session server for one test."
    for k,v in labelstudio.env.items(): monkeypatch.setenv(k, v)
    return labelstudio.env
