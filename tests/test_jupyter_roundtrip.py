"""The editing path as users live it: `mlops-nb lab`, JupyterLab in headless Chromium, open a stage notebook, run a
cell, save, and git sees nothing; a one-line edit is a one-file diff of a few lines; package edits sync back into
their own notebook only."""
import os, queue, re, shutil, subprocess, threading, time, urllib.request, json
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
    # nothing in the user's home but Jupyter's own runtime/workspace files; no config written there
    assert not list(home.rglob('jupyter_*_config.py')), list(home.rglob('*'))
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
