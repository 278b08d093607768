"""`mlops-nb report`: real stage runs (papermill) rendered to a static runs page, checked in headless Chromium."""
import json, os, re, shutil
from pathlib import Path
from urllib.parse import unquote, urlparse
import pytest
from conftest import cli
from mlops_nb.core import MlopsError
from mlops_nb.report import external_resources, find_runs
from mlops_nb.runner import run_stage

CHROMIUM = os.environ.get('MLOPS_CHROMIUM', '/usr/bin/chromium')
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--disable-sync', '--no-first-run']
SECRET = 'lsk-report-test-secret-4711'

def stage_nb(params:str, body:str)->str:
    cells = [{'cell_type': 'markdown', 'metadata': {}, 'source': '# demo stage\n> glues results, draws a curve\n\nMath $x^2$ and a [link](https://example.com).'},
             {'cell_type': 'code', 'metadata': {'tags': ['parameters']}, 'source': params, 'outputs': [], 'execution_count': None},
             {'cell_type': 'code', 'metadata': {}, 'source': body, 'outputs': [], 'execution_count': None}]
    return json.dumps({'cells': cells, 'metadata': {'kernelspec': {'name': 'python3', 'language': 'python', 'display_name': 'python3'}},
                       'nbformat': 4, 'nbformat_minor': 5})

DEMO = '''import scrapbook as sb
import matplotlib.pyplot as plt
accuracy = 0.5 + n_points/100
sb.glue("accuracy", accuracy)
sb.glue("n_images", n_points*10)
fig, ax = plt.subplots(figsize=(4, 3))
ax.plot(range(n_points), [1/(i+1) for i in range(n_points)], marker="o"); ax.set_title("training curve"); ax.set_xlabel("epoch")
sb.glue("training_curve", fig, encoder="display", display=True)
plt.close(fig)
print(f"accuracy {accuracy}")'''
BROKEN = 'print("about to fail")\nraise RuntimeError(f"demo failure n={n}")'

@pytest.fixture
def executed_runs(project, monkeypatch):
    "Three real stage runs in a fresh project: two of a demo stage (one a named instance), one failing stage."
    monkeypatch.setenv('LABEL_STUDIO_API_KEY', SECRET)
    (project/'nbs').mkdir()
    (project/'nbs/10_demo.ipynb').write_text(stage_nb('n_points = 4  # points on the curve\n', DEMO))
    (project/'nbs/11_broken.ipynb').write_text(stage_nb('n = 1\n', BROKEN))
    a = run_stage('demo', {'n_points': 3}, root=project)
    b = run_stage('demo', {'n_points': 7}, root=project, name='big')
    with pytest.raises(MlopsError, match='demo failure n=2'): run_stage('broken', {'n': 2}, root=project)
    broken = next(p for p in (project/'runs/broken').glob('*.ipynb') if p.name != 'latest.ipynb')
    # a notebook that leaked a secret (an older runner) and a stale page with CDN scripts (nbconvert's default template)
    nb = json.loads(a.notebook.read_text())
    nb['cells'][-1]['outputs'].append({'output_type': 'stream', 'name': 'stdout', 'text': f'token {SECRET}\n'})
    a.notebook.write_text(json.dumps(nb))
    b.notebook.with_suffix('.html').write_text('<html><head><script src="https://cdnjs.cloudflare.com/require.js"></script></head></html>')
    return {'demo': a.notebook, 'demo-big': b.notebook, 'broken': broken}

def test_runs_page_in_headless_chromium(project, executed_runs, artifacts):
    if not Path(CHROMIUM).exists(): pytest.fail(f'{CHROMIUM} missing: run tests/install_chromium.sh (Debian chromium) first')
    from playwright.sync_api import sync_playwright
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

    # newest first: the runs were made demo, demo-big, broken
    expected = [('broken', 'failed', executed_runs['broken'].stem), ('demo-big', 'ok', executed_runs['demo-big'].stem),
                ('demo', 'ok', executed_runs['demo'].stem)]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={'width': 1400, 'height': 900})
            requests,problems = [],[]
            page.on('request', lambda req: requests.append(req.url))
            page.on('console', lambda m: problems.append(f'console {m.type}: {m.text}') if m.type in ('error', 'warning') else None)
            page.on('pageerror', lambda e: problems.append(f'page error: {e}'))
            page.on('requestfailed', lambda req: problems.append(f'request failed: {req.url}'))

            assert page.goto(index.as_uri()).ok
            page.wait_for_load_state('load')
            rows = page.eval_on_selector_all('#runs tbody tr', 'rs => rs.map(r => [r.dataset.group, r.dataset.status, r.dataset.runId])')
            assert [tuple(x) for x in rows] == expected
            cells = page.eval_on_selector_all('#runs tbody tr', 'rs => rs.map(r => [r.querySelector(".stage").innerText, r.querySelector(".status").innerText])')
            assert [c[0] for c in cells] == ['broken', 'demo-big', 'demo']
            assert cells[0][1].startswith('failed') and 'demo failure n=2' in cells[0][1] and cells[1][1] == 'ok'
            results = page.eval_on_selector_all('#runs tbody tr .results', 'rs => rs.map(r => r.innerText)')
            assert 'accuracy 0.57' in results[1] and 'n_images 70' in results[1] and 'accuracy 0.53' in results[2]
            # the figures are inline and decoded
            imgs = page.eval_on_selector_all('img', 'is => is.map(i => [i.alt, i.complete && i.naturalWidth > 0, i.src.slice(0, 22)])')
            assert imgs and all(ok and src == 'data:image/png;base64,' for _,ok,src in imgs), imgs
            assert any('training_curve' in alt for alt,_,_ in imgs), imgs
            artifacts.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(artifacts/'runs-index.png'), full_page=True)

            # every link resolves: notebooks exist, pages load (without errors or network) and show the injected parameters
            links = page.eval_on_selector_all('a[href]', 'as => as.map(a => a.href)')
            assert len(links) >= 6
            for url in links:
                target = Path(unquote(urlparse(url).path))
                assert url.startswith('file:') and target.is_file(), url
            for url in [u for u in links if u.endswith('.html')]:
                assert page.goto(url).ok, url
                page.wait_for_load_state('load')
                text = page.inner_text('body')
                assert '# Parameters' in text and '← all runs' in text, url
                assert page.eval_on_selector('.mlops-back a', 'a => a.href') == index.as_uri()
                run = Path(unquote(urlparse(url).path)).stem
                if run == executed_runs['demo'].stem: assert 'n_points = 3' in text and '***' in text and SECRET not in page.content()
                if run == executed_runs['broken'].stem: assert 'demo failure n=2' in text
            assert page.eval_on_selector_all('img', 'is => is.every(i => i.complete && i.naturalWidth > 0)')
        finally:
            browser.close()
    assert problems == [], problems
    outside = [u for u in requests if not u.startswith(('file:', 'data:'))]
    assert outside == [], outside
    assert (artifacts/'runs-index.png').stat().st_size > 10_000

def test_report_errors_are_one_line(project):
    r = cli('report', cwd=project)
    assert r.returncode == 2 and 'no runs folder' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    (project/'runs').mkdir()
    r = cli('report', cwd=project)
    assert r.returncode == 0 and '0 runs' in r.stdout
    assert 'No runs yet' in (project/'runs/index.html').read_text()
