"""`mlops-nb report`: real stage runs (papermill) rendered to a static runs page and stage pages that read as reports,
checked in headless Chromium at 1280x800: the header with the run's key figures in the first screen, the library code
folded, a failed run's error first, pages small, and no script, dialog or request beyond `file:`/`data:` on any page,
even with hostile class names, scraps and parameters, and even where escaping missed a spot (the CSP holds)."""
import json, os, re, shutil, subprocess, sys, threading
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse
import pytest
from conftest import cli, git
from fixtures_labelstudio import free_port
from mlops_nb.core import MlopsError
from mlops_nb.run_page import external_resources
from mlops_nb.runs import find_runs
from mlops_nb.runner import run_stage

CHROMIUM = os.environ.get('MLOPS_CHROMIUM', '/usr/bin/chromium')
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--disable-sync', '--no-first-run']
VIEWPORT = {'width': 1280, 'height': 800}
SECRET = 'lsk-report-test-secret-4711'
XSS = '<img src=x onerror=alert(7)>'
XSS_FETCH = '''<img src=x onerror="fetch('http://127.0.0.1:9/x')">'''
PAGE_BOUND = 200_000   # bytes of a stage page, its embedded figures (data: URIs) aside

def stage_nb(params:str, body:str)->str:
    cells = [{'cell_type': 'markdown', 'metadata': {}, 'source': '# demo stage\n> glues results, draws a curve\n\nMath $x^2$ and a [link](https://example.com).'},
             {'cell_type': 'code', 'metadata': {'tags': ['parameters']}, 'source': params, 'outputs': [], 'execution_count': None},
             {'cell_type': 'code', 'metadata': {}, 'source': body, 'outputs': [], 'execution_count': None}]
    return json.dumps({'cells': cells, 'metadata': {'kernelspec': {'name': 'python3', 'language': 'python', 'display_name': 'python3'}},
                       'nbformat': 4, 'nbformat_minor': 5})

DEMO = '''import os
import scrapbook as sb
import matplotlib.pyplot as plt
from IPython.display import HTML, Markdown, display
accuracy = 0.5 + n_points/100
sb.glue("accuracy", accuracy)
sb.glue("n_images", n_points*10)
sb.glue("class_name", label)
sb.glue("experiment", os.environ.get("DVC_EXP_NAME", ""))
fig, ax = plt.subplots(figsize=(4, 3))
ax.plot(range(n_points), [1/(i+1) for i in range(n_points)], marker="o"); ax.set_title("training curve"); ax.set_xlabel("epoch")
sb.glue("training_curve", fig, encoder="display", display=True)
plt.close(fig)
display(Markdown(f"| class |\\n|---|\\n| {label} |\\n\\n<script>fetch('http://127.0.0.1:9/md')</script>"))
display(HTML(f"<b>{label}</b><img src=x onerror=\\"fetch('http://127.0.0.1:9/html')\\"><script>alert(8)</script>"))
print(f"accuracy {accuracy}")'''
BROKEN = 'print("about to fail")\nraise RuntimeError(f"demo failure n={n}")'

class Browser:
    "One headless Chromium page that records every request, dialog, console problem and page error."
    def __init__(self, pw):
        self.browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.page = self.browser.new_page(viewport=VIEWPORT)
        self.requests,self.dialogs,self.problems,self.blocked = [],[],[],[]
        self.page.on('request', lambda req: self.requests.append(req.url))
        self.page.on('requestfailed', lambda req: self.blocked.append(req.url) if req.failure in ('csp', 'net::ERR_BLOCKED_BY_CSP') else None)
        self.page.on('dialog', self._dialog)
        self.page.on('console', lambda m: self.problems.append(f'console {m.type}: {m.text}') if m.type in ('error', 'warning') else None)
        self.page.on('pageerror', lambda e: self.problems.append(f'page error: {e}'))

    def _dialog(self, d):
        self.dialogs.append(d.message)
        d.dismiss()

    def open(self, url:str):
        assert self.page.goto(url).ok, url
        self.page.wait_for_load_state('load')
        self.page.wait_for_timeout(150)   # let any onerror handler fire
        return self.page

    def outside(self, allowed=('file:', 'data:'))->list[str]:
        "Requests that left for anywhere but `allowed` (attempts the page's policy refused never leave: not counted)."
        return [u for u in self.requests if not u.startswith(allowed) and u not in self.blocked]

@contextmanager
def chromium():
    if not Path(CHROMIUM).exists(): pytest.fail(f'{CHROMIUM} missing: run tests/install_chromium.sh (Debian chromium) first')
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = Browser(pw)
        try: yield b
        finally: b.browser.close()

INERT = '''() => ({scripts: document.scripts.length,
  handlers: [...document.querySelectorAll('*')].flatMap(e => [...e.attributes].map(a => a.name)).filter(n => n.startsWith('on'))})'''

def data_bytes(text:str)->int: return sum(len(m) for m in re.findall(r'data:image/[^"\')\s]+', text))

def has_csp(text:str)->bool:
    "The page's first element after the charset is the Content-Security-Policy forbidding scripts and network."
    m = re.search(r'<head>\s*<meta charset="utf-8"/?>\s*<meta (?=[^>]*http-equiv="Content-Security-Policy")[^>]*content="([^"]+)"', text)
    return bool(m) and "default-src 'none'" in m.group(1).replace('&#x27;', "'") and 'script-src' not in m.group(1)

@pytest.fixture
def executed_runs(project, monkeypatch):
    "Three real stage runs in a fresh project: two of a demo stage (one a named instance), one failing stage."
    monkeypatch.setenv('LABEL_STUDIO_API_KEY', SECRET)
    monkeypatch.setenv('DVC_EXP_NAME', f'exp-{XSS}')
    (project/'nbs').mkdir()
    (project/'nbs/10_demo.ipynb').write_text(stage_nb('n_points = 4  # points on the curve\nlabel = "cat"  # a class name\n', DEMO))
    (project/'nbs/11_broken.ipynb').write_text(stage_nb('n = 1\n', BROKEN))
    a = run_stage('demo', {'n_points': 3, 'label': XSS}, root=project)
    b = run_stage('demo', {'n_points': 7, 'label': XSS_FETCH}, root=project, name='big')
    with pytest.raises(MlopsError, match='demo failure n=2'): run_stage('broken', {'n': 2}, root=project)
    broken = next(p for p in (project/'runs/broken').glob('*.ipynb') if p.name != 'latest.ipynb')
    # a notebook that leaked a secret (an older runner) and a stale page with CDN scripts (nbconvert's default template)
    nb = json.loads(a.notebook.read_text())
    nb['cells'][-1]['outputs'].append({'output_type': 'stream', 'name': 'stdout', 'text': f'token {SECRET}\n'})
    a.notebook.write_text(json.dumps(nb))
    b.notebook.with_suffix('.html').write_text('<html><head><script src="https://cdnjs.cloudflare.com/require.js"></script></head></html>')
    return {'demo': a.notebook, 'demo-big': b.notebook, 'broken': broken}

@contextmanager
def static_host(folder:Path):
    "A plain static HTTP server for `folder` on a free loopback port."
    port = free_port()
    server = ThreadingHTTPServer(('127.0.0.1', port), partial(SimpleHTTPRequestHandler, directory=str(folder)))
    server.RequestHandlerClass.log_message = lambda *a: None
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try: yield f'http://127.0.0.1:{port}'
    finally:
        server.shutdown()
        server.server_close()

def test_runs_page_in_headless_chromium(project, executed_runs, artifacts):
    r = cli('report', cwd=project)
    assert r.returncode == 0, r.stderr
    index = project/'runs/index.html'
    assert 'runs page:' in r.stdout and '3 runs, 1 failed' in r.stdout, r.stdout

    notebooks = find_runs(project/'runs')
    assert sorted(notebooks) == sorted(executed_runs.values()), 'latest.ipynb copies must not be listed'
    pages = sorted((project/'runs').rglob('*.html'))
    assert {p.with_suffix('.ipynb') for p in pages if p != index} == set(notebooks)
    for p in pages:
        text = p.read_text()
        assert external_resources(text) == [], (p, external_resources(text))
        assert not re.search(r'<(script|link|img)\b[^>]*(src|href)=["\']?(https?:)?//', text, re.I), p
        assert SECRET not in text, f'secret in {p}'
        assert has_csp(text), f'{p}: no Content-Security-Policy first in <head>'
        assert '<script' not in text, p

    # newest first: the runs were made demo, demo-big, broken
    expected = [('broken', 'failed', executed_runs['broken'].stem), ('demo-big', 'ok', executed_runs['demo-big'].stem),
                ('demo', 'ok', executed_runs['demo'].stem)]
    with chromium() as b:
        page = b.open(index.as_uri())
        rows = page.eval_on_selector_all('#runs tbody tr', 'rs => rs.map(r => [r.dataset.group, r.dataset.status, r.dataset.runId])')
        assert [tuple(x) for x in rows] == expected
        cells = page.eval_on_selector_all('#runs tbody tr', 'rs => rs.map(r => [r.querySelector(".stage").innerText, r.querySelector(".status").innerText])')
        assert [c[0] for c in cells] == ['broken', 'demo-big', 'demo']
        assert cells[0][1].startswith('failed at cell In [') and 'demo failure n=2' in cells[0][1] and cells[1][1] == 'ok'
        results = page.eval_on_selector_all('#runs tbody tr .results', 'rs => rs.map(r => r.innerText)')
        assert 'accuracy 0.57' in results[1] and 'n_images 70' in results[1] and 'accuracy 0.53' in results[2]
        # hostile text from runs is shown as text, never as markup: the class name scrap and the experiment name
        assert f'class_name {XSS}' in results[2] and f'class_name {XSS_FETCH}' in results[1], results
        exps = page.eval_on_selector_all('#runs tbody tr .experiment', 'es => es.map(e => e.innerText)')
        assert exps == [f'exp exp-{XSS}']*2, exps
        # the figures are inline and decoded
        imgs = page.eval_on_selector_all('img', 'is => is.map(i => [i.alt, i.complete && i.naturalWidth > 0, i.src.slice(0, 22)])')
        assert imgs and all(ok and src == 'data:image/png;base64,' for _,ok,src in imgs), imgs
        assert any('training_curve' in alt for alt,_,_ in imgs), imgs
        page.screenshot(path=str(artifacts/'runs-index.png'), full_page=True)

        # every link resolves: notebooks exist, pages load (without errors or network) and show the injected parameters
        links = page.eval_on_selector_all('a[href]', 'as => as.map(a => a.href)')
        assert len(links) >= 6
        for url in links:
            target = Path(unquote(urlparse(url).path))
            assert url.startswith('file:') and target.is_file(), url
        for url in [u for u in links if u.endswith('.html')]:
            page = b.open(url)
            text = page.inner_text('body')
            assert '# Parameters' in text and '← all runs' in text, url
            assert page.evaluate(INERT) == {'scripts': 0, 'handlers': []}, url
            assert page.eval_on_selector('.mlops-back a', 'a => a.href') == index.as_uri()
            run = Path(unquote(urlparse(url).path)).stem
            if run == executed_runs['demo'].stem:
                assert 'n_points = 3' in text and '***' in text and SECRET not in page.content()
                header = page.inner_text('header.mlops-run')
                assert XSS in header and f'exp-{XSS}' in header, header   # parameter, scrap and experiment, as text
            if run == executed_runs['broken'].stem: assert 'demo failure n=2' in page.inner_text('#failure')
        assert page.eval_on_selector_all('img', 'is => is.every(i => !i.src || (i.complete && i.naturalWidth > 0))')
    assert b.dialogs == [] and b.problems == [], (b.dialogs, b.problems)
    assert b.outside() == [], b.outside()
    assert (artifacts/'runs-index.png').stat().st_size > 10_000

def test_runs_page_from_a_static_host(project, executed_runs):
    "The same pages served by a plain static HTTP server: every link works, nothing else is fetched."
    assert cli('report', cwd=project).returncode == 0
    with static_host(project/'runs') as base, chromium() as b:
        page = b.open(f'{base}/index.html')
        links = page.eval_on_selector_all('a.report', 'as => as.map(a => a.href)')
        assert len(links) == 3 and all(u.startswith(base + '/') for u in links), links
        for url in links:
            page = b.open(url)
            assert page.inner_text('header.mlops-run h1'), url
            assert page.eval_on_selector('.mlops-back a', 'a => a.href') == f'{base}/index.html'
    assert b.outside(allowed=(base + '/', 'data:')) == [] and b.dialogs == [], (b.outside(allowed=(base + '/', 'data:')), b.dialogs)

def injected(base:str)->str:
    "Hostile markup whose every script and request targets `base`: a listener there sees whatever gets out."
    return (f'{XSS}{XSS_FETCH}<img src=x onerror="fetch(\'{base}/onerror\')"><script>fetch("{base}/script"); alert(8)</script>'
            f'<img src="{base}/img.png"><div style="background:url({base}/bg.png)">x</div><iframe src="{base}/frame"></iframe>'
            f'<link rel="stylesheet" href="{base}/style.css"><meta http-equiv="refresh" content="5;url={base}/refresh">')

def inject(page:Path, base:str, csp:bool=True)->Path:
    "A copy of `page` with hostile markup pasted raw into its body, as if an escaping had missed a spot."
    text = page.read_text()
    if not csp: text = re.sub(r'<meta [^>]*http-equiv="Content-Security-Policy"[^>]*>', '', text)
    out = page.with_name(f'{page.stem}.injected{"" if csp else "-nocsp"}.html')
    out.write_text(re.sub(r'(<body[^>]*>)', lambda m: m.group(1) + injected(base), text, count=1))
    return out

@contextmanager
def listener():
    "An HTTP server on a free loopback port that records every request it gets."
    hits = []
    class Record(SimpleHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()
        do_POST = do_GET
        def log_message(self, *a): pass
    server = ThreadingHTTPServer(('127.0.0.1', free_port()), Record)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try: yield f'http://127.0.0.1:{server.server_address[1]}', hits
    finally:
        server.shutdown()
        server.server_close()

@pytest.fixture(scope='module')
def stage_runs(tmp_path_factory)->dict:
    """Real runs of the package's stage notebooks in one project: train on digits (as the demo does, fewer epochs), a
    train run that fails, dataset and evaluate on their samples, and compare, last with class names an attacker chose
    in Label Studio. Module-scoped: the checks below only read what these runs wrote."""
    project = tmp_path_factory.mktemp('stages')/'proj'
    project.mkdir()
    (project/'params.yaml').write_text('{}\n')
    git(project, 'init', '-q')
    git(project, 'add', '.')
    git(project, 'commit', '-qm', 'init')
    with pytest.MonkeyPatch.context() as mp:
        for k,v in {'LABEL_STUDIO_API_KEY': SECRET, 'MLOPS_PROGRESS': 'plain', 'CUDA_VISIBLE_DEVICES': ''}.items():
            mp.setenv(k, v)
        mp.delenv('MLOPS_NB_ROOT', raising=False)
        mp.chdir(project)
        return _run_stages(project)

def hostile_class_names(metrics_fp:Path):
    "Rename two classes of a metrics file to markup, as Label Studio's API lets a labeller do."
    m = json.loads(metrics_fp.read_text())
    m['per_class'][XSS] = m['per_class'].pop('2')
    m['per_class'][XSS_FETCH] = m['per_class'].pop('3')
    metrics_fp.write_text(json.dumps(m))

def _run_stages(project:Path)->dict:
    from mlops_nb.folder import sample_dataset
    sample_dataset(project/'data/datasets/digits', n=300, size=16)
    train = run_stage('train', {'dataset': 'data/datasets/digits', 'size': 16, 'epochs': 4}, root=project)
    with pytest.raises(MlopsError, match='labels.csv not found'):
        run_stage('train', {'dataset': 'data/datasets/nosuch'}, root=project)
    failed, = [p for p in (project/'runs/train').glob('*.ipynb') if p not in (train.notebook, project/'runs/train/latest.ipynb')]
    dataset = run_stage('dataset', {}, root=project, sample=True)
    evaluate = run_stage('evaluate', {}, root=project, sample=True)
    run_stage('compare', {}, root=project, sample=True)   # compares the sample results with a sample champion ...
    hostile_class_names(project/'data/sample/metrics/benchmark.json')
    compare = run_stage('compare', {}, root=project, sample=True)   # ... and compares them again, renamed
    r = cli('report', cwd=project)
    assert r.returncode == 0, r.stderr
    return {'project': project, 'train': train, 'failed': failed, 'dataset': dataset.notebook,
            'evaluate': evaluate.notebook, 'compare': compare.notebook}

IN_VIEW = '''sel => [...document.querySelectorAll(sel)].map(e => { const r = e.getBoundingClientRect();
  return [e.innerText.trim(), r.height > 0 && r.top >= 0 && r.bottom <= innerHeight]; })'''
FIGURES = '''() => [...document.querySelectorAll('header .figs img')].map(i =>
  [i.alt, i.complete && i.naturalWidth > 0, i.getBoundingClientRect().bottom <= innerHeight])'''
FOLDS = "() => [...document.querySelectorAll('details.mlops-fold')].map(d => [d.querySelector('summary .h').innerText, d.open])"

def stage_pages(runs:dict)->dict:
    return {k: Path(v.notebook if k == 'train' else v).with_suffix('.html') for k,v in runs.items() if k != 'project'}

def table_in_view(page, sel:str)->dict:
    "name -> (value, whether the row is entirely in the first screen) for the rows of a header table."
    return {t.split('\t')[0]: (t.split('\t')[-1], seen) for t,seen in page.evaluate(IN_VIEW, sel)}

def test_stage_page_sizes(stage_runs, artifacts):
    "Every stage page is under the bound once its embedded figures are set aside, carries the policy, leaks nothing."
    sizes = {}
    for k,p in stage_pages(stage_runs).items():
        text = p.read_text()
        sizes[k] = {'bytes': len(text.encode()), 'figures_bytes': data_bytes(text)}
        assert sizes[k]['bytes'] - sizes[k]['figures_bytes'] <= PAGE_BOUND, (k, sizes[k])
        assert has_csp(text) and external_resources(text) == [] and SECRET not in text, k
    (artifacts/'report-page-sizes.json').write_text(json.dumps(sizes, indent=2))

def test_train_page_reads_as_a_report(stage_runs, artifacts):
    "1280x800: the header with the run's key results, parameters and curve fills the first screen; the library folds."
    train = stage_runs['train']
    with chromium() as b:
        page = b.open(stage_pages(stage_runs)['train'].as_uri())
        assert page.inner_text('header.mlops-run h1 .badge') == 'ok'
        results = table_in_view(page, '.scraps tr')
        assert results['valid_accuracy'] == (f"{train.scraps['valid_accuracy']:.4g}", True), results
        assert results['n_train'] == (str(train.scraps['n_train']), True), results
        params = table_in_view(page, '.params tr')
        assert params['epochs'] == ('4', True) and params['dataset'] == ('data/datasets/digits', True), params
        assert ['training curve (from the epoch log)', True, True] in page.evaluate(FIGURES)
        facts = dict(x.split('\n', 1) for x,seen in page.evaluate(IN_VIEW, '.facts div') if seen)
        assert set(facts) >= {'STAGE', 'COMMIT', 'STARTED (UTC)', 'DURATION', 'STATUS'}, facts
        # the library code is folded, the unrun tests are left out, the run section is open
        folds = page.evaluate(FOLDS)
        # 30_train keeps 7 library sections since its building blocks moved to notebooks 25-29
        assert len(folds) >= 6 and not any(o for _,o in folds) and ['Training', False] in folds, folds
        assert not page.locator('pre', has_text='def train_model(').first.is_visible()
        assert 'test_eq(' not in page.content()
        run_cell = page.locator('.jp-CodeCell', has_text='result = train_model(').last
        run_cell.scroll_into_view_if_needed()
        assert run_cell.is_visible() and '[train] epoch 4/4' in page.inner_text('body')
        page.evaluate('window.scrollTo(0, 0)')
        page.screenshot(path=str(artifacts/'report-train-page.png'))
        page.screenshot(path=str(artifacts/'report-train-page-full.png'), full_page=True)
    assert b.dialogs == [] and b.problems == [] and b.outside() == [], (b.dialogs, b.problems, b.outside())

def test_failed_page_starts_with_the_failure(stage_runs, artifacts):
    "The failing cell (linked, open), the one-line error and the traceback come first, the parameters still on screen."
    with chromium() as b:
        page = b.open(stage_pages(stage_runs)['failed'].as_uri())
        assert page.inner_text('header.mlops-run h1 .badge').startswith('failed at cell In [')
        assert page.evaluate("() => document.querySelector('#failure').previousElementSibling.tagName") == 'H1'
        (err,seen), = page.evaluate(IN_VIEW, '#failure .err')
        assert seen and err.startswith('MlopsError: dataset') and 'labels.csv not found' in err, err
        assert 'Traceback' in page.inner_text('#failure .tb')
        cell = page.eval_on_selector('#failure h2 a', 'a => a.getAttribute("href")')[1:]
        assert page.evaluate('id => !!document.getElementById(id) && !document.getElementById(id).closest("details")', cell)
        assert page.evaluate("() => document.querySelector('.params').getBoundingClientRect().top < innerHeight")
        assert 'nosuch' in page.inner_text('.params')
        page.screenshot(path=str(artifacts/'report-train-failed-page.png'))
    assert b.dialogs == [] and b.problems == [] and b.outside() == [], (b.dialogs, b.problems, b.outside())

def test_compare_page_shows_its_report_first(stage_runs):
    "The compare page's header carries the markdown report the run displayed, sanitized: the verdict in the first screen."
    with chromium() as b:
        page = b.open(stage_pages(stage_runs)['compare'].as_uri())
        (report,seen), = page.evaluate(IN_VIEW, 'header .figs .report h2')
        assert seen and report.startswith('Benchmark'), report
        assert 'display(Markdown(' in page.inner_text('header .figs .report figcaption')
        assert page.evaluate(INERT) == {'scripts': 0, 'handlers': []}
    assert b.dialogs == [] and b.problems == [] and b.outside() == [], (b.dialogs, b.problems, b.outside())

def test_every_page_is_inert(stage_runs):
    "The index and every stage page, the compare page with hostile class names included: no script, handler or request."
    with chromium() as b:
        for p in [stage_runs['project']/'runs/index.html', *stage_pages(stage_runs).values()]:
            page = b.open(p.as_uri())
            assert page.evaluate(INERT) == {'scripts': 0, 'handlers': []}, p
            # no tag carries an event handler in the served HTML (escaped as text, or removed)
            assert not re.search(r'<[a-zA-Z][^<>]*\son\w+\s*=', page.content()), p
    assert b.dialogs == [] and b.problems == [] and b.outside() == [], (b.dialogs, b.problems, b.outside())

def test_csp_holds_where_escaping_missed(stage_runs):
    """Hostile markup pasted raw into every page (the index, each stage page, the compare page): the policy stops every
    script and request, so a listener on the target port gets nothing. The same markup without the policy does run and
    does reach the listener: the check can fail."""
    pages = [stage_runs['project']/'runs/index.html', *stage_pages(stage_runs).values()]
    with listener() as (base, hits), chromium() as b:
        for p in pages:
            b.open(inject(p, base).as_uri())
        b.page.wait_for_timeout(500)
        assert b.dialogs == [] and hits == [], (b.dialogs, hits)
        assert b.outside() == [], b.outside()   # attempts the policy refused are counted apart, in b.blocked
        assert {urlparse(u).path for u in b.blocked} >= {'/img.png', '/bg.png', '/style.css'}, b.blocked
        assert sum('Content Security Policy' in m for m in b.problems) >= 3*len(pages), b.problems
    with listener() as (base, hits), chromium() as b:
        b.open(inject(pages[-1], base, csp=False).as_uri())
        b.page.wait_for_timeout(500)
        assert b.dialogs and {'/img.png', '/script', '/onerror'} <= set(hits), (b.dialogs, hits)

def test_report_errors_are_one_line(project):
    r = cli('report', cwd=project)
    assert r.returncode == 2 and 'no runs folder' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    (project/'runs').mkdir()
    r = cli('report', cwd=project)
    assert r.returncode == 0 and '0 runs' in r.stdout
    text = (project/'runs/index.html').read_text()
    assert 'No runs yet' in text and has_csp(text)
