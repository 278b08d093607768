"""The editing path as users live it: `mlops-nb lab`, JupyterLab in headless Chromium, open a stage notebook, run a
cell, save, and git sees nothing; a one-line edit is a one-file diff of a few lines; package edits sync back into
their own notebook only."""
import json, os, re, shutil, socket, subprocess, threading, time, urllib.error, urllib.request
from pathlib import Path
import pytest
from conftest import BIN, SOURCE_TREE, git
from mlops_nb.lab import free_port

CHROMIUM = os.environ.get('MLOPS_CHROMIUM', '/usr/bin/chromium')
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--no-first-run', '--disable-dev-shm-usage']
NOTEBOOKS = sorted(p.name for p in (SOURCE_TREE/'nbs').glob('*.ipynb'))

@pytest.fixture(scope='module')
def nb_project(tmp_path_factory):
    "A git repository holding the project's notebooks, package and settings, as a developer's clone has them."
    root = tmp_path_factory.mktemp('rt')/'proj'; root.mkdir()
    for f in ('settings.ini', 'params.yaml', '.gitignore', '.gitattributes', '.gitconfig'): shutil.copy(SOURCE_TREE/f, root/f)
    shutil.copytree(SOURCE_TREE/'nbs', root/'nbs', ignore=shutil.ignore_patterns('.*'))
    shutil.copytree(SOURCE_TREE/'mlops_nb', root/'mlops_nb', ignore=shutil.ignore_patterns('__pycache__'))
    git(root, 'init', '-q'); git(root, 'add', '-A'); git(root, 'commit', '-qm', 'clone')
    return root

@pytest.fixture(scope='module')
def lab_server(nb_project, tmp_path_factory):
    "`mlops-nb lab` on a free loopback port with a throwaway HOME: (base URL, token, output lines, HOME)."
    home = tmp_path_factory.mktemp('home')
    env = {k: v for k,v in os.environ.items() if not k.startswith(('JUPYTER', 'SSH_'))}
    env.update(HOME=str(home), PYTHONUNBUFFERED='1')
    port = free_port()
    proc = subprocess.Popen([str(BIN/'mlops-nb'), 'lab', '--port', str(port)], cwd=nb_project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    def read():
        for l in proc.stdout: lines.append(l.rstrip('\n'))
    threading.Thread(target=read, daemon=True).start()
    deadline,token = time.time() + 120,None
    while token is None and time.time() < deadline and proc.poll() is None:
        token = next((m.group(1) for l in lines if (m := re.search(rf'127\.0\.0\.1:{port}/lab\?token=([0-9a-f]{{48}})', l))), None)
        time.sleep(0.2)
    assert token, '\n'.join(lines)
    yield f'http://127.0.0.1:{port}', token, lines, home
    proc.terminate(); proc.wait(60)

def api(base, token, path, method='GET'):
    req = urllib.request.Request(f'{base}/api/{path}', method=method, headers={'Authorization': f'token {token}'})
    with urllib.request.urlopen(req, timeout=30) as r: return json.loads(r.read() or b'null')

def kernel_idle(base, token, nb):
    return any(s['path'] == f'nbs/{nb}' and s['kernel']['execution_state'] == 'idle' for s in api(base, token, 'sessions'))

def wait_for(cond, what, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond(): return
        time.sleep(0.3)
    raise AssertionError(f'timed out waiting for {what}')

def open_notebook(page, base, token, nb):
    "Open `nbs/nb` in JupyterLab (a fresh workspace) and wait for its kernel."
    page.goto(f'{base}/lab/tree/nbs/{nb}?reset&token={token}')
    page.wait_for_selector('.jp-NotebookPanel .jp-Cell', timeout=90_000)
    wait_for(lambda: kernel_idle(base, token, nb), f'the kernel of {nb}')

def save(page, path:Path):
    "Ctrl+S, then wait until the server has written the file."
    before = path.stat().st_mtime_ns
    page.keyboard.press('Control+s')
    wait_for(lambda: path.stat().st_mtime_ns != before, f'{path.name} to be saved', 30)
    time.sleep(0.3)

def run_first_code_cell(page):
    "Click into the first code cell, run it (Ctrl+Enter) and wait for its execution count (a notebook of prose: none)."
    cell = page.locator('.jp-NotebookPanel .jp-CodeCell').first
    if not cell.count(): return
    cell.locator('.cm-content').click()
    page.keyboard.press('Control+Enter')
    cell.locator('.jp-InputPrompt', has_text='[1]').wait_for(timeout=60_000)

def shutdown_sessions(base, token):
    for s in api(base, token, 'sessions'): api(base, token, f'sessions/{s["id"]}', 'DELETE')

def test_jupyterlab_round_trip_changes_nothing(nb_project, lab_server, artifacts):
    from playwright.sync_api import sync_playwright
    base,token,lines,home = lab_server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={'width': 1280, 'height': 800})
        for nb in NOTEBOOKS:
            t0 = time.time()
            try:
                open_notebook(page, base, token, nb)
                run_first_code_cell(page)
                save(page, nb_project/'nbs'/nb)
            except Exception:
                page.screenshot(path=str(artifacts/f'jupyterlab-failed-{nb}.png')); raise
            print(f'{nb}: opened, ran a cell, saved in {time.time()-t0:.1f}s')
            status = git(nb_project, 'status', '--porcelain')
            assert status == '', f'{nb}: opening, running a cell and saving changed files:\n{status}{git(nb_project, "diff")[:3000]}'
            shutdown_sessions(base, token)
        # a one-line edit of a markdown cell: one file, a few lines
        nb = '30_train.ipynb'
        open_notebook(page, base, token, nb)
        first = page.locator('.jp-NotebookPanel .jp-MarkdownCell').first
        first.dblclick()
        page.keyboard.press('Control+End')
        page.keyboard.type('\nEdited in JupyterLab.')
        page.keyboard.press('Shift+Enter')
        save(page, nb_project/'nbs'/nb)
        page.screenshot(path=str(artifacts/'jupyterlab-roundtrip.png'))
        shutdown_sessions(base, token)
        browser.close()
    numstat = git(nb_project, 'diff', '--numstat').split('\n')
    numstat = [l.split('\t') for l in numstat if l]
    assert [n[2] for n in numstat] == [f'nbs/{nb}'], numstat
    added,deleted = int(numstat[0][0]),int(numstat[0][1])
    assert added <= 2 and deleted <= 1, git(nb_project, 'diff')
    assert 'Edited in JupyterLab.' in git(nb_project, 'diff')
    # the stored form still holds, and nothing JupyterLab left is untracked
    r = subprocess.run([str(BIN/'mlops-nb'), 'clean-nbs', '--check', '--path', 'nbs'], cwd=nb_project, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert git(nb_project, 'status', '--porcelain', '--untracked-files=all') == f' M nbs/{nb}\n'
    git(nb_project, 'checkout', '--', f'nbs/{nb}')  # the project is shared with the tunnel test
    # nothing in the user's home: no config, no workspace layout naming the open notebooks, no signatures (issue 32)
    assert not list(home.rglob('jupyter_*_config.py')), list(home.rglob('*'))
    assert not list(home.rglob('workspaces/*')) and not list(home.rglob('nbsignatures.db')), list(home.rglob('*'))
    log = '\n'.join(lines)
    for noisy in ('pre_save_hook', 'Traceback'): assert noisy not in log, log[-3000:]

def test_package_edit_syncs_back_to_its_notebook_only(nb_project, tmp_path):
    proj = tmp_path/'p'
    shutil.copytree(nb_project, proj)
    git(proj, 'checkout', '-q', '--', '.')
    mod = proj/'mlops_nb/lab.py'
    mod.write_text(mod.read_text().replace('"Whether `ip` only accepts connections from this machine."',
                                           '"Whether `ip` accepts connections only from this machine."'))
    r = subprocess.run([str(BIN/'nbdev_update')], cwd=proj, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert git(proj, 'status', '--porcelain') == ' M mlops_nb/lab.py\n M nbs/70_lab.ipynb\n'
    diff = git(proj, 'diff', '--numstat', '--', 'nbs')
    assert diff.split('\t')[:2] == ['1', '1'], diff
    r = subprocess.run([str(BIN/'mlops-nb'), 'clean-nbs', '--check', '--path', 'nbs'], cwd=proj, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout

def test_check_names_a_notebook_not_in_stored_form(nb_project, tmp_path):
    proj = tmp_path/'p'
    shutil.copytree(nb_project/'nbs', proj/'nbs')
    f = proj/'nbs/30_train.ipynb'
    nb = json.loads(f.read_text())
    for c in nb['cells']: c['source'] = ''.join(c['source'])
    f.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + '\n')
    before = {p.name: p.read_bytes() for p in (proj/'nbs').glob('*.ipynb')}
    r = subprocess.run([str(BIN/'mlops-nb'), 'clean-nbs', '--check', '--path', 'nbs'], cwd=proj, capture_output=True, text=True)
    assert r.returncode == 1 and r.stdout.strip() == 'FAIL: nbs/30_train.ipynb is not stored as JupyterLab saves it: run make clean-nbs', r.stdout
    assert {p.name: p.read_bytes() for p in (proj/'nbs').glob('*.ipynb')} == before
    r = subprocess.run([str(BIN/'mlops-nb'), 'clean-nbs', '--path', 'nbs'], cwd=proj, capture_output=True, text=True)
    assert r.returncode == 0 and f.read_bytes() != before['30_train.ipynb']
    assert [p.name for p in (proj/'nbs').glob('*.ipynb') if p.read_bytes() != before[p.name]] == ['30_train.ipynb']
    assert (nb_project/'nbs/30_train.ipynb').read_bytes() == f.read_bytes()

@pytest.fixture
def sshd(tmp_path):
    "Debian's sshd on a free loopback port with a throwaway host key and client key: (port, ssh options)."
    if not Path('/usr/sbin/sshd').exists(): pytest.fail('/usr/sbin/sshd missing: run tests/install_chromium.sh (Debian openssh-server)')
    d = tmp_path/'ssh'; d.mkdir(mode=0o700)
    for name in ('host', 'client'): subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(d/name)], check=True)
    (d/'authorized_keys').write_text((d/'client.pub').read_text()); (d/'authorized_keys').chmod(0o600)
    port = free_port()
    (d/'sshd_config').write_text(f'ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host\nAuthorizedKeysFile {d}/authorized_keys\n'
                                 f'PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n'
                                 f'PermitRootLogin prohibit-password\nAllowTcpForwarding local\nPidFile {d}/sshd.pid\n'
                                 f'SetEnv PATH={BIN}:/usr/local/bin:/usr/bin:/bin\n')
    Path('/run/sshd').mkdir(exist_ok=True)
    proc = subprocess.Popen(['/usr/sbin/sshd', '-D', '-e', '-f', str(d/'sshd_config')], stderr=subprocess.PIPE, text=True)
    opts = ['-i', str(d/'client'), '-o', 'StrictHostKeyChecking=no', '-o', f'UserKnownHostsFile={d}/known_hosts', '-o', 'BatchMode=yes']
    wait_for(lambda: subprocess.run(['ssh', *opts, '-p', str(port), 'root@127.0.0.1', 'true'], capture_output=True).returncode == 0,
             'sshd', 30)
    yield port, opts
    proc.terminate(); proc.wait(10)

def test_lab_over_a_real_ssh_tunnel(nb_project, sshd, tmp_path):
    "Start `mlops-nb lab` inside an SSH session, open the tunnel line it prints, and do the round trip through it."
    from playwright.sync_api import sync_playwright
    sshport,opts = sshd
    lab_port = free_port()
    remote = f'cd {nb_project} && HOME={tmp_path} PYTHONUNBUFFERED=1 exec mlops-nb lab --port {lab_port}'
    session = subprocess.Popen(['ssh', *opts, '-tt', '-p', str(sshport), 'root@127.0.0.1', remote],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.PIPE, text=True)
    lines = []
    threading.Thread(target=lambda: [lines.append(l.rstrip('\r\n')) for l in session.stdout], daemon=True).start()
    tunnel = None
    try:
        wait_for(lambda: any('lab?token=' in l for l in lines), 'mlops-nb lab over ssh', 120)
        printed = next(l.strip() for l in lines if l.strip().startswith('ssh -N -L'))
        assert printed == f'ssh -N -L {lab_port}:127.0.0.1:{lab_port} -p {sshport} root@127.0.0.1', lines
        assert not any('a guess' in l for l in lines), 'inside an SSH session the host is known, not guessed'
        token = next(re.search(r'token=([0-9a-f]{48})', l).group(1) for l in lines if 'lab?token=' in l)
        # the laptop side: the printed line, on another local port so only the tunnel can answer there
        local = free_port()
        cmd = printed.split()
        cmd[3] = f'{local}:127.0.0.1:{lab_port}'
        tunnel = subprocess.Popen([cmd[0], *opts, '-o', 'ExitOnForwardFailure=yes', *cmd[1:]], stderr=subprocess.PIPE, text=True)
        base = f'http://127.0.0.1:{local}'
        wait_for(lambda: tunnel.poll() is None and _answers(base), 'the tunnel', 30)
        nb = '20_dataset.ipynb'
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={'width': 1280, 'height': 800})
            open_notebook(page, base, token, nb)
            run_first_code_cell(page)
            save(page, nb_project/'nbs'/nb)
            browser.close()
        assert git(nb_project, 'status', '--porcelain') == ''
        shutdown_sessions(base, token)
    finally:
        for proc,grace in ((tunnel, 10), (session, 30)):   # ssh may sit on an open forward after SIGTERM: then kill
            if proc is None: continue
            proc.terminate()
            try: proc.wait(grace)
            except subprocess.TimeoutExpired: proc.kill(); proc.wait(10)
    # the SSH session is gone (a laptop closing its lid): the server it started must not outlive it
    wait_for(lambda: _refused(lab_port), 'JupyterLab to stop after its SSH session ended', 30)

def _refused(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=2): return False
    except OSError: return True

def _answers(base):
    try:
        with urllib.request.urlopen(f'{base}/api/status', timeout=3): return True
    except urllib.error.HTTPError as e: return e.code == 403
    except OSError: return False
