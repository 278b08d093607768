"""`mlops-nb lab`: a real JupyterLab from the installed package, on loopback, token required, stopped cleanly."""
import json, os, queue, re, signal, socket, subprocess, threading, time, urllib.error, urllib.request
from pathlib import Path
import psutil, pytest
from conftest import BIN, cli, git
from mlops_nb.lab import free_port, start_lab


def get(url, token=None, method='GET'):
    "(status, body, headers) of a request, redirects not followed."
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k): return None
    req = urllib.request.Request(url, method=method, headers={'Authorization': f'token {token}'} if token else {})
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=30) as r: return r.status, r.read().decode(errors='replace'), r.headers
    except urllib.error.HTTPError as e: return e.code, e.read().decode(errors='replace'), e.headers

def refused(port, host='127.0.0.1'):
    try:
        with socket.create_connection((host, port), timeout=3): return False
    except OSError: return True

def outward_ip():
    "This machine's non-loopback address, if it has one (a UDP connect sends nothing)."
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(('192.0.2.1', 9)); ip = s.getsockname()[0]
    except OSError: return None
    return None if ip.startswith('127.') else ip

def files_containing(root, needle):
    hits = []
    for p in Path(root).rglob('*'):
        if p.is_file() and '.git' not in p.parts:
            try:
                if needle in p.read_text(errors='ignore'): hits.append(p)
            except OSError: pass
    return hits

@pytest.fixture
def home(tmp_path, monkeypatch):
    "A throwaway HOME, so nbdev's and Jupyter's user files never touch the real one."
    h = tmp_path/'home'; h.mkdir()
    monkeypatch.setenv('HOME', str(h))
    for k in ('JUPYTER_TOKEN', 'JUPYTER_CONFIG_DIR', 'JUPYTER_DATA_DIR', 'JUPYTER_RUNTIME_DIR'): monkeypatch.delenv(k, raising=False)
    return h

def test_server_loopback_token_and_clean_stop(project, home):
    (project/'runs').mkdir()
    t0 = time.time()
    server = start_lab(port=0, root=project)
    try:
        started = time.time() - t0
        assert server.url == f'http://127.0.0.1:{server.port}/' and re.fullmatch(r'[0-9a-f]{48}', server.token)
        # listens on loopback only
        listening = {c.laddr.ip for c in psutil.Process(server.process.pid).net_connections('inet') if c.status == 'LISTEN' and c.laddr.port == server.port}
        assert listening == {'127.0.0.1'}, listening
        if ip := outward_ip(): assert refused(server.port, ip), f'reachable on {ip}'
        # no token, wrong token: refused
        for path in ('api/status', 'api/contents', 'api/kernels'):
            assert get(server.url + path)[0] == 403, path
            assert get(server.url + path, 'f'*48)[0] == 403, path
        code,_,headers = get(server.url + 'lab')
        assert code == 302 and '/login' in headers['Location']
        # with the token: served
        code,body,_ = get(server.url + 'api/status', server.token)
        assert code == 200 and 'started' in json.loads(body)
        code,body,_ = get(server.url + 'api/contents', server.token)
        assert code == 200 and 'params.yaml' in {c['name'] for c in json.loads(body)['content']}
        code,body,_ = get(server.lab_url)
        assert code == 200 and 'jupyter-config-data' in body, body[:300]
        # a kernel from this interpreter, which must go away with the server
        code,body,_ = get(server.url + 'api/kernels', server.token, method='POST')
        assert code == 201, body
        children = psutil.Process(server.process.pid).children(recursive=True)
        assert children, 'no kernel process started'
        # the token is nowhere on disk in the project, nor in the log; the token file is gone
        assert not (server.workdir/'token').exists()
        assert server.token not in server.log_text() and 'Jupyter Server' in server.log_text()
        assert files_containing(project, server.token) == []
    finally:
        rc = server.stop()
    assert rc == 0 and not server.running()
    assert refused(server.port)
    gone,alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f'kernel processes left: {alive}'
    assert not server.workdir.exists()
    print(f'lab server start {started:.1f}s')

def test_remote_needs_flag_and_still_a_token(project, home):
    port = free_port()
    r = cli('lab', '--ip', '0.0.0.0', '--port', port, '--no-hooks', cwd=project)
    assert r.returncode == 2 and '--allow-remote' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and refused(port)
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0)); busy.listen()
        r = cli('lab', '--port', busy.getsockname()[1], '--no-hooks', cwd=project)
        assert r.returncode == 2 and 'already in use' in r.stderr, r.stderr
    with start_lab(port=0, ip='0.0.0.0', allow_remote=True, root=project) as server:
        listening = {c.laddr.ip for c in psutil.Process(server.process.pid).net_connections('inet') if c.status == 'LISTEN' and c.laddr.port == server.port}
        assert listening == {'0.0.0.0'}, listening
        assert get(server.url + 'api/status')[0] == 403
        if ip := outward_ip():
            assert get(f'http://{ip}:{server.port}/api/status')[0] == 403
            assert get(f'http://{ip}:{server.port}/api/status', server.token)[0] == 200
        assert get(server.url + 'api/status', server.token)[0] == 200

def test_cli_prints_tunnel_installs_hooks_and_stops_on_ctrl_c(project, home):
    port = free_port()
    env = {**os.environ, 'PYTHONUNBUFFERED': '1'}
    env.pop('SSH_CONNECTION', None)
    proc = subprocess.Popen([str(BIN/'mlops-nb'), 'lab', '--port', str(port), '--ssh-host', 'me@gpu-box'], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l.rstrip('\n')) for l in proc.stdout], daemon=True).start()
    seen,url = [],None
    deadline = time.time() + 120
    try:
        while url is None and time.time() < deadline and proc.poll() is None:
            try: line = lines.get(timeout=1)
            except queue.Empty: continue
            seen.append(line)
            if m := re.fullmatch(rf'\s*(http://127\.0\.0\.1:{port}/lab\?token=([0-9a-f]{{48}}))', line): url,token = m.group(1),m.group(2)
        assert url, '\n'.join(seen)
        assert f'    ssh -N -L {port}:127.0.0.1:{port} me@gpu-box' in seen, '\n'.join(seen)
        assert get(f'http://127.0.0.1:{port}/api/status')[0] == 403
        assert get(f'http://127.0.0.1:{port}/api/status', token)[0] == 200
        # git hooks in the repository's .git; nothing in (the throwaway) ~/.jupyter
        assert 'check-secrets' in (project/'.git/hooks/pre-commit').read_text()
        assert not (home/'.jupyter').exists(), list(home.rglob('*'))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None: proc.kill(); proc.wait()
    time.sleep(0.5)
    while not lines.empty(): seen.append(lines.get())
    assert refused(port), 'server still listening after Ctrl-C'
    assert sum(token in l for l in seen) == 1, 'the token is shown exactly once'
    assert files_containing(project, token) == []
