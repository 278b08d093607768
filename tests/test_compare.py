"""Compare stage: gates pass and fail on a known pair of metrics files, the report's rows, "no champion yet",
a git ref as champion, Label Studio text escaped in the report, and the whole loop promote -> new commit ->
`mlops-nb run compare` recording the failed verdict (exit 0) -> `mlops-nb gate` exiting 3 against the champion kept
on the HTTP S3 server."""
import json, os
from html.parser import HTMLParser
from pathlib import Path
import pytest
from conftest import cli, git
from mlops_nb.core import MlopsError, write_json
from mlops_nb.compare import compare_models
from mlops_nb.promote import promote
from mlops_nb.evaluate import evaluate_model
from mlops_nb.folder import DatasetFolder, sample_dataset
from mlops_nb.store import ResultsStore, publish_results
from mlops_nb.params import CompareParams, EvaluateParams
from test_evaluate import PIPELINE_PATHS, stub_predictor, fake_model

def compare_params(**kw):
    "CompareParams with the pipeline's paths (dvc.yaml) and no gates unless given: its own defaults are the notebook's sample."
    return CompareParams(**{'gates': {}, 'out': 'reports/compare.md', 'store': 'results/', 'model_dir': 'data/models',
                            'dataset_dir': 'data/datasets/digits', 'plots_dir': 'plots', 'overlay_dir': 'plots/mistakes', **kw})

CHAMP = {'accuracy': .95, 'macro_f1': .94, 'n': 100, 'n_errors': 5, 'git': {'commit': 'a'*40, 'dirty': False},
         'model': {'sha256': '1'*64}, 'benchmark': {'labels_sha256': 'b'*64},
         'per_class': {'0': {'precision': .96, 'recall': .94, 'f1': .95, 'support': 50}, '1': {'precision': .94, 'recall': .96, 'f1': .95, 'support': 50}}}
CAND = {'accuracy': .93, 'macro_f1': .9295, 'n': 100, 'n_errors': 7, 'git': {'commit': 'c'*40, 'dirty': True},
        'model': {'sha256': '2'*64}, 'benchmark': {'labels_sha256': 'b'*64},
        'per_class': {'0': {'precision': .96, 'recall': .94, 'f1': .95, 'support': 50}, '1': {'precision': .90, 'recall': .92, 'f1': .909, 'support': 50}}}

@pytest.fixture
def pair(project):
    write_json(project/'metrics/benchmark.json', CAND)
    write_json(project/'champion.json', CHAMP)
    return project

def test_gate_fails_and_passes_on_known_pair(pair):
    r = compare_models(compare_params(candidate='metrics/benchmark.json', champion='champion.json', gates={'accuracy': 0.005, 'macro_f1': 0.02}))
    assert (r.passed, r.exit_code) == (False, 3)
    assert r.failures == ['accuracy dropped by 0.0200 (0.9500 → 0.9300), more than the allowed 0.0050']
    v = json.loads((pair/'reports/compare.json').read_text())
    assert (v['gate'], v['experiment'], v['sides'][0]) == ('failed', '', {'name': 'champion', 'commit': 'a'*40})
    r = compare_models(compare_params(candidate='metrics/benchmark.json', champion='champion.json', gates={'accuracy': 0.02, 'macro_f1': 0.0105}))
    assert (r.passed, r.exit_code, r.failures) == (True, 0, [])
    r = compare_models(compare_params(candidate='metrics/benchmark.json', champion='champion.json', gates={'per_class.1.recall': 0.03}))
    assert r.failures == ['per_class.1.recall dropped by 0.0400 (0.9600 → 0.9200), more than the allowed 0.0300']
    with pytest.raises(MlopsError, match='write git:main'): compare_models(compare_params(candidate='metrics/benchmark.json', champion='main', gates={}))

def test_report_rows_for_known_pair(pair):
    r = compare_models(compare_params(candidate='metrics/benchmark.json', champion='champion.json', gates={'accuracy': 0.005, 'macro_f1': 0.02}, out='reports/pr.md'))
    md = (pair/'reports/pr.md').read_text()
    for row in ['**❌ Gate failed** — accuracy dropped by 0.0200 (0.9500 → 0.9300), more than the allowed 0.0050.',
                '- **Candidate**: commit `cccccccccccc` (uncommitted changes), model `222222222222`, benchmark `bbbbbbbbbbbb` (n=100) — from `metrics/benchmark.json`',
                '- **Champion**: commit `aaaaaaaaaaaa`, model `111111111111`, benchmark `bbbbbbbbbbbb` (n=100) — from `champion.json`',
                '| metric | champion | candidate | Δ | gate |',
                '| accuracy | 0.9500 | 0.9300 | ▼ -0.0200 | ❌ max drop 0.005 |',
                '| macro_f1 | 0.9400 | 0.9295 | ▼ -0.0105 | ✅ max drop 0.02 |',
                '| n | 100 | 100 | = +0 |  |',
                '| n_errors | 5 | 7 | ▲ +2 |  |',
                '| 1 | 50 | 0.9000 | 0.9200 | 0.9090 | ▼ -0.0400 | ▼ -0.0400 | ▼ -0.0410 |',
                'Unchanged: 0.']:
        assert row in md, f'missing row: {row}\n---\n{md}'
    assert '⚠️ The benchmarks differ' not in md

def test_no_champion_yet_passes_and_says_so(pair):
    r = compare_models(compare_params(candidate='metrics/benchmark.json', champion='store', gates={'accuracy': 0.005}, store='results/'))
    assert (r.passed, r.exit_code, r.champion, r.message) == (True, 0, None, 'no champion yet: gate passed')
    assert '**✅ No champion yet**' in r.report.read_text()

def test_git_ref_champion(pair):
    (pair/'params.yaml').write_text('train:\n  epochs: 3\n')
    (pair/'metrics/benchmark.json').write_text(json.dumps(CHAMP))
    git(pair, 'add', 'params.yaml', 'metrics/benchmark.json'); git(pair, 'commit', '-qm', 'baseline'); git(pair, 'tag', 'baseline')
    (pair/'params.yaml').write_text('train:\n  epochs: 1\n')
    write_json(pair/'metrics/benchmark.json', CAND)
    r = compare_models(compare_params(candidate='metrics/benchmark.json', champion='git:baseline', gates={'accuracy': 0.005}))
    md = r.report.read_text()
    assert (r.exit_code, r.champion) == (3, 'a'*40)
    assert '— from `git:baseline`' in md and '| train.epochs | `3` | `1` |' in md
    assert compare_models(compare_params(candidate='metrics/benchmark.json', champion='git:HEAD~1', gates={'accuracy': 0.005})).champion is None  # no metrics file at the first commit
    with pytest.raises(MlopsError, match="git ref 'nope' not found"): compare_models(compare_params(candidate='metrics/benchmark.json', champion='git:nope', gates={}))

def _evaluate(project, wrong):
    sample_dataset(project/'data/bench', n=20, size=32, mode='benchmark')
    tasks = [int(r['task_id']) for r in DatasetFolder.read(project/'data/bench').split('benchmark')]
    return evaluate_model(EvaluateParams(**PIPELINE_PATHS, model_dir='data/models', benchmark_dir='data/bench'), predict_fn=stub_predictor({tasks[i] for i in wrong}))

def test_promote_then_compare_stage_picks_champion_on_s3(project, s3_env):
    bucket = s3_env.make_bucket('results-promote')
    url = f's3://{bucket}/digits'
    (project/'params.yaml').write_text(
        'compare:\n  candidate: metrics/benchmark.json\n  champion: store\n  gates: {accuracy: 0.005, macro_f1: 0.01}\n'
        f'  out: reports/compare.md\n  store: {url}\n  model_dir: data/models\n  dataset_dir: data/train\n'
        '  plots_dir: plots\n  overlay_dir: plots/mistakes\n')
    git(project, 'add', 'params.yaml'); git(project, 'commit', '-qm', 'params')
    commit_a = git(project, 'rev-parse', 'HEAD').strip()
    # commit A: a good model (1 mistake in 20), trained on 16 images; promoted over HTTP S3 via the CLI
    sample_dataset(project/'data/train', n=16, size=32, valid_every=4)
    fake_model(project/'data/models', b'weights-A')
    _evaluate(project, [0])
    r = cli('promote', '--section', 'compare')   # the compare stage's params: the S3 store
    assert r.returncode == 0, r.stderr
    assert f'champion: {commit_a[:12]}' in r.stdout
    champ = json.loads(s3_env.client().get_object(Bucket=bucket, Key='digits/champion.json')['Body'].read())
    assert champ['commit'] == commit_a and champ['summary']['accuracy'] == 0.95
    # commit B: a worse model (4 mistakes) trained on more data; the compare stage exits 3 naming the metric and the drop
    (project/'README').write_text('b\n'); git(project, 'add', 'README'); git(project, 'commit', '-qm', 'b')
    sample_dataset(project/'data/train', n=20, size=32, valid_every=4)
    fake_model(project/'data/models', b'weights-B')
    _evaluate(project, [0, 1, 2, 3])
    r = cli('run', 'compare', env={'DVC_EXP_NAME': 'more-data'})
    assert r.returncode == 0, r.stderr[-2000:]   # a worse model is a result: the stage records the verdict
    assert 'gate failed: accuracy dropped 0.1500 > 0.005' in r.stdout and 'compare: ok' in r.stdout
    assert 'accuracy dropped by 0.1500 (0.9500 → 0.8000), more than the allowed 0.0050' in r.stderr
    g = cli('gate')
    assert g.returncode == 3
    assert g.stderr == ('gate failed (experiment more-data): accuracy dropped 0.1500 > 0.005; '
                        'macro_f1 dropped 0.1900 > 0.01\n')
    md = (project/'reports/compare.md').read_text()
    assert f'- **Champion**: commit `{commit_a[:12]}`' in md and f'from `{url}/{commit_a}`' in md
    assert '4 tasks added, 0 removed, 0 relabelled.' in md
    assert '![Confusion matrix](../plots/confusion.png)' in md and '[overlay](../plots/mistakes/01-task' in md
    from mlops_nb.runner import read_scraps
    s = read_scraps(project/'runs/compare/latest.ipynb')
    assert (s['exit_code'], s['passed'], s['gate']) == (0, False, 'failed')
    assert (s['champion'], s['experiment']) == (commit_a, 'more-data')
    assert '- **Experiment**: more-data' in md
    secret = s3_env.env['AWS_SECRET_ACCESS_KEY']
    for p in [project/'runs/compare/latest.ipynb', project/'reports/compare.md', project/'reports/compare.json']:
        assert secret not in p.read_text()
    # promote refuses results of a dirty tree (and of another commit than HEAD) unless forced
    (project/'README').write_text('dirty\n')
    _evaluate(project, [0, 1, 2, 3])
    r = cli('promote', '--section', 'compare')
    assert r.returncode == 2 and 'uncommitted changes' in r.stderr
    git(project, 'commit', '-qam', 'c')
    r = cli('promote', '--section', 'compare')
    assert r.returncode == 2 and 'but HEAD is' in r.stderr
    assert json.loads(s3_env.client().get_object(Bucket=bucket, Key='digits/champion.json')['Body'].read())['commit'] == commit_a

def test_gate_without_verdict_is_a_usage_error(project):
    r = cli('gate')
    assert (r.returncode, r.stderr.count('\n')) == (2, 1), r.stderr
    assert 'verdict reports/compare.json not found' in r.stderr and 'dvc repro' in r.stderr

class _Tags(HTMLParser):
    "Every start tag with its attributes, and the text."
    def __init__(self):
        super().__init__(); self.tags,self.text = [],[]
    def handle_starttag(self, tag, attrs): self.tags.append((tag, dict(attrs)))
    def handle_data(self, data): self.text.append(data)

EVIL = '<img src=x onerror=alert(7)>'

def test_label_studio_text_is_escaped_in_the_report(pair):
    "A class name that is an HTML tag (Label Studio accepts any choice through its API) shows as text once rendered."
    from nbconvert.filters.markdown_mistune import markdown2html_mistune
    import mistune
    cand,champ = json.loads(json.dumps(CAND)),json.loads(json.dumps(CHAMP))
    for m,f1 in ((cand, .5), (champ, .9)):
        m['per_class'][EVIL] = {'precision': .5, 'recall': .5, 'f1': f1, 'support': 4}
    write_json(pair/'metrics/benchmark.json', cand)
    write_json(pair/'champion.json', champ)
    mistake = {'rank': 1, 'task_id': '7</td><script>alert(1)</script>', 'file': 'a.png', 'true': EVIL,
               'predicted': '[x](javascript:alert(1))', 'confidence': .9, 'overlay': '01-task7-true<img>.png'}
    write_json(pair/'plots/mistakes/mistakes.json', [mistake])
    gates = {f'per_class.{EVIL}.f1': 0.01}
    r = compare_models(compare_params(candidate='metrics/benchmark.json', champion='champion.json', gates=gates), experiment='<b>exp</b>')
    md = r.report.read_text()
    assert EVIL not in md and '&lt;img src=x onerror=alert(7)&gt;' in md
    for html in (markdown2html_mistune(md), mistune.html(md)):   # nbconvert's renderer (the compare page); mistune
        p = _Tags(); p.feed(html)
        assert not [t for t in p.tags if t[0] in ('script', 'b') or 'onerror' in t[1] or t[1].get('src') == 'x'], p.tags
        assert not [t for t in p.tags if t[0] == 'a' and 'javascript' in t[1].get('href', '')], p.tags
        text = ''.join(p.text)
        assert EVIL in text and '<script>alert(1)</script>' in text and '<b>exp</b>' in text
