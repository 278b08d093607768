"""The whole pipeline under DVC: the source tree's `dvc.yaml`, `params.yaml` and `.dvc/config` in a fresh git repo,
small demo projects in the real Label Studio, the stage notebooks shipped with the installed package, real `dvc`,
and moto's standalone HTTP S3 server as the remote. Assertions read DVC's own output (`Running stage 'X'`,
`Stage 'X' didn't change, skipping`) and `dvc status --json`.

The tests share ONE project (module fixture `demo`, one full `dvc repro`) and run in file order: each builds on the
state the previous one left (no-op repro, code and pin changes, a param experiment, a benchmark change, push/pull, a
dead endpoint). The stages and their order are read from DVC (`dvc stage list`, `dvc dag --dot`), not kept here."""
import hashlib, json, os, re, shutil, socket, subprocess, sys, time, uuid
from dataclasses import dataclass, field
from pathlib import Path
import pytest, yaml
from conftest import backbone_weights, copy_pipeline, git
from fixtures_labelstudio import free_port

BIN = Path(sys.executable).parent
CHECK = 'labelstudio-check'  # always_changed: one process asks every Label Studio project for its fingerprint
EXPORTS = {'labelstudio@digits', 'labelstudio@digits-benchmark'}  # each reruns only when its metrics/labelstudio/<project>.json moved
POOL = 'dataset@digits'  # the training pool's dataset stage (foreach over params.yaml's dataset section)
AUDITS = {'audit@digits', 'audit@digits-benchmark'}  # the label audit of each project (foreach over the audit section)

@dataclass
class Dag:
    "The pipeline as DVC resolves it: every stage name, and the edges between them."
    stages:set
    edges:list
    def below(self, *start)->set:
        "`start` and every stage downstream of it."
        out,todo = set(),list(start)
        while todo:
            s = todo.pop()
            if s not in out: out.add(s); todo += [b for a,b in self.edges if a == s]
        return out
    def in_order(self, ran:list)->bool:
        "Whether `ran` runs every stage after the stages it depends on."
        pos = {s: i for i,s in enumerate(ran)}
        return all(pos[a] < pos[b] for a,b in self.edges if a in pos and b in pos)

def ran(out:str)->list[str]: return re.findall(r"^Running stage '([^']+)':", out, re.M)
def skipped(out:str)->set[str]: return set(re.findall(r"^Stage '([^']+)' didn't change, skipping", out, re.M))
def notebook_skipped(out:str)->int: return len(re.findall(r'^\[labelstudio\] .*: not running the notebook$', out, re.M))

def sha(p:Path)->str: return hashlib.sha256(p.read_bytes()).hexdigest()

def tree_hashes(root:Path, *, skip=('.gitignore',))->dict[str, str]:
    "relative path -> sha256 of every file under `root`."
    return {str(p.relative_to(root)): sha(p) for p in sorted(root.rglob('*')) if p.is_file() and p.name not in skip}

@dataclass
class Demo:
    root:Path
    ls:object  # the Label Studio fixture
    titles:dict  # params key -> unique project title
    outputs:list = field(default_factory=list)  # everything dvc/mlops-nb printed, for the secret scan
    timings:dict = field(default_factory=dict)
    repro1:subprocess.CompletedProcess|None = None  # the first full `dvc repro`
    clone:Path|None = None  # the fresh clone of the S3 round trip

    def env(self, extra:dict|None=None)->dict:
        "The environment of a user's shell: Label Studio from env, `mlops-nb` on PATH, no AWS leftovers."
        e = {k: v for k,v in os.environ.items() if not k.startswith('AWS_') and k != 'MLOPS_NB_ROOT'}
        e.update(self.ls.env, PATH=os.pathsep.join([str(BIN), e.get('PATH', '')]), PYTHONUNBUFFERED='1')
        return {**e, **(extra or {})}

    def run(self, *args, cwd:Path|None=None, env:dict|None=None, timeout:int=600, what:str|None=None)->subprocess.CompletedProcess:
        t0 = time.time()
        r = subprocess.run([*map(str, args)], cwd=cwd or self.root, env=self.env(env), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=timeout)
        if what: self.timings[what] = round(time.time()-t0, 1)
        self.outputs.append(r.stdout)
        return r

    def dvc(self, *args, **kw)->subprocess.CompletedProcess: return self.run(sys.executable, '-m', 'dvc', *args, **kw)

    def dag(self)->Dag:
        "The stages and edges of this project's pipeline, as DVC reads dvc.yaml and params.yaml."
        names = set(self.ok(self.dvc('stage', 'list', '--name-only')).split())
        return Dag(names, re.findall(r'^"([^"]+)" -> "([^"]+)";$', self.ok(self.dvc('dag', '--dot')), re.M))

    def stale(self)->set:
        "The stages `dvc status` lists, besides the always-changed check."
        return set(self.status()) - {CHECK}

    def ok(self, r:subprocess.CompletedProcess)->str:
        assert r.returncode == 0, f'{" ".join(map(str, r.args))} failed ({r.returncode}):\n{r.stdout[-4000:]}'
        return r.stdout

    def status(self, cwd:Path|None=None)->dict: return json.loads(self.ok(self.dvc('status', '--json', cwd=cwd)))

    def lock(self)->dict: return yaml.safe_load((self.root/'dvc.lock').read_text())

    def commit(self, msg:str):
        git(self.root, 'add', '-A'); git(self.root, 'commit', '-q', '--allow-empty', '-m', msg)

def out_md5(lock:dict, stage:str, path:str)->str:
    return next(o['md5'] for o in lock['stages'][stage]['outs'] if o['path'] == path)

@pytest.fixture(scope='module')
def demo(labelstudio, source_tree, artifacts, tmp_path_factory):
    "The demo project after one full `dvc repro` (committed), with its own small Label Studio projects."
    root = tmp_path_factory.mktemp('pipeline')/'proj'
    copy_pipeline(source_tree, root)
    git(root, 'init', '-q'); git(root, 'config', 'user.name', 'test'); git(root, 'config', 'user.email', 'test@example.com')
    tag = uuid.uuid4().hex[:8]
    d = Demo(root, labelstudio, {'digits': f'pipeline-pool-{tag}', 'digits-benchmark': f'pipeline-bench-{tag}'})
    # isolation from other tests' projects, and tiny sizes so the whole pipeline runs in ~1.5 min
    params = yaml.safe_load((root/'params.yaml').read_text())
    for key,title in d.titles.items(): params['labelstudio'][key] = {'project': title}
    params['train'].update(epochs=1, bs=16, size=16)
    (root/'params.yaml').write_text(yaml.safe_dump(params, sort_keys=False))
    d.ok(d.run(BIN/'mlops-nb', 'labelstudio', 'seed-demo', '--n-pool', 60, '--n-bench', 30, '--size', 16,
               '--pool', d.titles['digits'], '--benchmark', d.titles['digits-benchmark'], what='seed'))
    d.commit('demo project')
    d.repro1 = d.dvc('repro', what='full repro')
    if d.repro1.returncode == 0: d.commit('pipeline run')
    yield d
    (artifacts/'pipeline-timings.json').write_text(json.dumps(d.timings, indent=1))

def test_full_repro(demo):
    "One `dvc repro` runs every stage once, in dependency order, and writes every declared output."
    out,root,dag = demo.ok(demo.repro1),demo.root,demo.dag()
    ds_rows = {}
    stages = ran(out)
    assert sorted(stages) == sorted(dag.stages), stages
    assert {CHECK, POOL, 'dataset-benchmark', 'train', 'evaluate', 'compare'} | EXPORTS | AUDITS == dag.stages, dag.stages
    assert stages[0] == CHECK and dag.below(CHECK) == dag.stages  # every export depends on the fingerprints it writes
    assert dag.in_order(stages), stages
    assert demo.ok(demo.dvc('config', 'core.analytics')).strip() == 'false'
    for key in demo.titles:
        export = json.loads((root/f'data/raw_labels/{key}.json').read_text())
        meta = json.loads((root/f'data/raw_labels/{key}.meta.json').read_text())
        assert len(export) == (60 if key == 'digits' else 30) == meta['counts']['tasks']
        assert meta['project']['title'] == demo.titles[key]
        ds = json.loads((root/f'data/datasets/{key}/dataset.json').read_text())
        rows = (root/f'data/datasets/{key}/labels.csv').read_text().splitlines()[1:]
        ds_rows[key] = len(rows)
        assert 0 < ds['n_images'] == len(rows) == len(list((root/f'data/datasets/{key}/images').iterdir())) <= len(export)
    assert (root/'data/models/best-model.pth').stat().st_size > 0
    assert json.loads((root/'data/models/model.json').read_text())['params']['epochs'] == 1
    assert 0 <= json.loads((root/'metrics/benchmark.json').read_text())['accuracy'] <= 1
    assert (root/'reports/compare.md').read_text().strip()
    sides = [{'name': 'champion', 'commit': None}, {'name': 'candidate', 'commit': ANY_SHA}]
    verdict = json.loads((root/'reports/compare.json').read_text())
    assert verdict == {'gate': 'no champion', 'experiment': '', 'gates': [], 'sides': sides}
    # every path came from the stages' typed defaults: no stage wrote sample data
    assert not (root/'data/sample').exists() and not (root/'data/smoke').exists()
    for key in demo.titles:  # the audits: what was audited, links to the project's tasks
        audit = json.loads((root/f'metrics/audit-{key}.json').read_text())
        assert audit['project'] == key and audit['n_labeled'] == ds_rows[key] and audit['version'].startswith('label-review-')
        assert audit['labelstudio']['project_id'] == json.loads((root/f'data/raw_labels/{key}.meta.json').read_text())['project']['id']
    bench = json.loads((root/'metrics/audit-digits-benchmark.json').read_text())
    assert (f'{bench["n_issues"]} benchmark label' in (root/'reports/compare.md').read_text()) == (bench['n_issues'] > 0)
    for run in ('dataset-digits-benchmark', 'dataset-digits', 'audit-digits', 'audit-digits-benchmark', 'train', 'evaluate', 'compare'):
        assert (root/f'runs/{run}/latest.ipynb').exists(), run
    # nothing left to do but ask Label Studio
    assert demo.status() == {CHECK: ['always changed']}

def test_second_repro_runs_nothing(demo):
    "Unchanged Label Studio projects: the change check runs, finds every fingerprint unchanged; no export or later stage runs."
    root = demo.root
    before = {'exports': tree_hashes(root/'data/raw_labels'), 'runs': sorted(map(str, (root/'runs').rglob('*'))),
              'lock': sha(root/'dvc.lock')}
    out = demo.ok(demo.dvc('repro', what='no-op repro'))
    t0 = time.time(); demo.status(); demo.timings['status'] = round(time.time()-t0, 1)
    assert ran(out) == [CHECK] and notebook_skipped(out) == 0, out
    assert skipped(out) == demo.dag().stages - {CHECK}
    assert 'labelstudio check: digits: unchanged' in out and 'labelstudio check: digits-benchmark: unchanged' in out, out
    assert tree_hashes(root/'data/raw_labels') == before['exports']  # byte-identical exports
    assert sorted(map(str, (root/'runs').rglob('*'))) == before['runs']  # no executed notebook anywhere
    assert sha(root/'dvc.lock') == before['lock']

def edit_cell(nb:Path, old:str, new:str):
    "Replace `old` by `new` in the one cell of notebook `nb` that holds it, as an editor saves it."
    d = json.loads(nb.read_text())
    cells = [c for c in d['cells'] if old in ''.join(c['source'])]
    assert len(cells) == 1, (nb.name, old, len(cells))
    cells[0]['source'] = ''.join(cells[0]['source']).replace(old, new).splitlines(keepends=True)
    nb.write_text(json.dumps(d, indent=1, ensure_ascii=False) + '\n')

def test_code_and_pins_rerun_what_runs_them(demo):
    """What reruns when code or a pin changes, read from `dvc status`: a helper notebook's code (edited, then
    `nbdev_export`) reruns exactly the stages whose run imports it; its prose, its tests, or a module no stage imports
    rerun nothing; a training-stack pin reruns train, an unrelated pin does not (`mlops-nb deps --write` records the
    pins); `mlops-nb deps --check` (what `make check-sync` runs) names the stage and the module a dvc.yaml misses."""
    root = demo.root
    def export(): demo.ok(demo.run(BIN/'nbdev_export', what='nbdev_export'))
    def restore():
        git(root, 'checkout', '--', '.')
        assert demo.stale() == set(), demo.status()
    assert demo.stale() == set()
    # a helper's code: small_cnn, the network every `arch: cnn` run builds
    edit_cell(root/'nbs/25_models.ipynb', 'nn.ReLU(inplace=True)]', 'nn.ReLU6(inplace=True)]')
    export()
    assert 'nn.ReLU6(inplace=True)' in (root/'mlops_nb/models.py').read_text()
    assert demo.stale() == {'train', 'evaluate'} | AUDITS, demo.status()  # the audits' fold models are cnns too
    restore()
    # a helper's prose and tests, and a comment in a module no stage runs (the lab server): nothing is stale
    edit_cell(root/'nbs/25_models.ipynb', '## Architectures', '## Architectures, as the docs now call them')
    edit_cell(root/'nbs/25_models.ipynb', "test_eq(head_keys(_m), ['11.weight', '11.bias'])",
              "test_eq(head_keys(_m), ['11.weight', '11.bias'])  # the head, by its keys")
    edit_cell(root/'nbs/70_lab.ipynb', 'def is_loopback(', '# a comment a reviewer asked for\ndef is_loopback(')
    export()
    assert '# a comment a reviewer asked for' in (root/'mlops_nb/lab.py').read_text()
    assert demo.stale() == set(), demo.status()
    restore()
    # the training stack: a torch pin reruns train; a boto3 pin does not (evaluate's store and the fetcher import it)
    pins = (root/'constraints.txt').read_text()
    for old,new,train_stale in (('torch==2.14.1', 'torch==2.14.2', True), ('boto3==', 'boto3==9', False)):
        assert old in pins
        (root/'constraints.txt').write_text(pins.replace(old, new))
        demo.ok(demo.run(BIN/'mlops-nb', 'deps', '--write'))
        assert ('train' in demo.stale()) == train_stale, (old, demo.status())
        restore()
    # dvc.yaml that misses an import: the check names the stage and the module, and the fix
    text = (root/'dvc.yaml').read_text()
    (root/'dvc.yaml').write_text(text.replace('\n      - mlops_nb/learner.py\n', '\n', 1))  # train's (foreach stages indent 8)
    r = demo.run(BIN/'mlops-nb', 'deps', '--check')
    assert r.returncode == 1, r.stdout
    assert 'stage train does not list mlops_nb/learner.py (imported by its run)' in r.stdout, r.stdout
    assert 'mlops-nb deps --write' in r.stdout and 'Traceback' not in r.stdout
    demo.ok(demo.run(BIN/'mlops-nb', 'deps', '--write'))
    assert (root/'dvc.yaml').read_text() == text  # comments, order and the other deps kept
    assert demo.run(BIN/'mlops-nb', 'deps', '--check').returncode == 0
    restore()

def test_train_param_change_reruns_train_evaluate_compare(demo):
    "`dvc exp run -S train.epochs=15` reruns exactly train -> evaluate -> compare."
    out = demo.ok(demo.dvc('exp', 'run', '--name', 'epochs-15', '-S', 'train.epochs=15', what='exp run (train param)'))
    notebooks,dag = [s for s in ran(out) if s != CHECK],demo.dag()
    assert set(notebooks) == dag.below('train') and dag.in_order(notebooks), out
    assert notebook_skipped(out) == 0 and skipped(out) == dag.stages - {CHECK} - dag.below('train')
    assert yaml.safe_load((demo.root/'params.yaml').read_text())['train']['epochs'] == 15
    assert demo.lock()['stages']['train']['params']['params.yaml']['train']['epochs'] == 15
    assert json.loads((demo.root/'data/models/model.json').read_text())['params']['epochs'] == 15

class _AnySha(str):
    def __eq__(self, other): return isinstance(other, str) and re.fullmatch(r'[0-9a-f]{40}', other) is not None
    __hash__ = str.__hash__
ANY_SHA = _AnySha('<any 40-hex sha>')

def find_exp(rows, name):
    for row in rows:
        if row.get('name') == name and row.get('data'): return row['data']
        for exp in row.get('experiments') or []:
            if (hit := find_exp(exp.get('revs', []), name)): return hit
    return None

def test_exp_show_lists_metrics(demo):
    "`dvc exp show --json` lists the experiment with its param and the benchmark and training metrics."
    rows = json.loads(demo.ok(demo.dvc('exp', 'show', '--json')))
    exp = find_exp(rows, 'epochs-15')
    assert exp, f'experiment epochs-15 not in exp show: {[r.get("name") or r.get("rev") for r in rows]}'
    assert exp['params']['params.yaml']['data']['train']['epochs'] == 15
    bench = exp['metrics']['metrics/benchmark.summary.json']['data']   # the headline; the full results are no metric
    full = json.loads((demo.root/'metrics/benchmark.json').read_text())
    assert bench == {k: full[k] for k in ('accuracy', 'macro_f1', 'log_loss', 'n')} and 'per_class' in full
    train = exp['metrics']['metrics/train.json']['data']
    assert set(train) == {'valid_accuracy', 'best_epoch', 'n_train'}, train
    assert exp['metrics']['reports/compare.json']['data'] == {'gate': 'no champion', 'experiment': 'epochs-15'}
    assert set(exp['metrics']) == {'metrics/benchmark.summary.json', 'metrics/train.json', 'reports/compare.json'}
    assert exp_show_columns(exp) <= 21, exp_show_columns(exp, detail=True)   # about 20 (train.weights: the 21st)
    baseline = next(r for r in rows if r.get('rev') not in (None, 'workspace'))['data']
    assert baseline['params']['params.yaml']['data']['train']['epochs'] == 1
    assert 0 <= baseline['metrics']['metrics/benchmark.summary.json']['data']['accuracy'] <= 1
    md = demo.ok(demo.dvc('exp', 'show', '--md'))
    assert 'epochs-15' in md and 'accuracy' in md
    demo.commit('epochs 15')

def exp_show_columns(data:dict, detail:bool=False):
    "How many param and metric columns `dvc exp show` prints for one row (DVC leaves lists out of its table)."
    def leaves(d, prefix=''):
        for k,v in d.items():
            if isinstance(v, dict): yield from leaves(v, f'{prefix}{k}.')
            elif not isinstance(v, list): yield f'{prefix}{k}'
    cols = [c for kind in ('params', 'metrics') for f in data[kind].values() for c in leaves(f.get('data') or {})]
    return cols if detail else len(cols)

def test_gate_after_promote(demo):
    """After `make promote`'s two steps, a worse experiment is recorded by `dvc exp run` (compare succeeds, the verdict
    says failed, `dvc exp show` lists it) and `mlops-nb gate` exits 3 naming the metric and the drop; a run with the
    champion's settings passes the gate."""
    root = demo.root
    # the champion: the committed epochs-15 experiment (about 0.8 accuracy on the tiny demo data), `make promote`'s steps
    demo.ok(demo.dvc('repro', '--single-item', '--force', 'evaluate', what='promote: evaluate at HEAD'))
    assert 'champion:' in demo.ok(demo.run(BIN/'mlops-nb', 'promote'))
    champion = json.loads((root/'metrics/benchmark.json').read_text())
    assert champion['accuracy'] >= 0.4, champion['accuracy']
    out = demo.ok(demo.dvc('exp', 'run', '--name', 'worse', '-S', 'train.epochs=1', '-S', 'train.lr=0.000001',
                           what='exp run (worse)'))
    assert [s for s in ran(out) if s != CHECK and s not in AUDITS] == ['train', 'evaluate', 'compare'], out
    assert AUDITS <= set(ran(out))  # the folds train with train.lr: a new lr reruns the audits
    verdict = json.loads((root/'reports/compare.json').read_text())
    assert (verdict['gate'], verdict['experiment']) == ('failed', 'worse'), verdict
    exp = find_exp(json.loads(demo.ok(demo.dvc('exp', 'show', '--json'))), 'worse')
    assert exp, 'the worse experiment is not recorded'
    assert exp['metrics']['reports/compare.json']['data'] == {'gate': 'failed', 'experiment': 'worse'}
    summary = exp['metrics']['metrics/benchmark.summary.json']['data']
    assert summary['accuracy'] < champion['accuracy'] and set(summary) == {'accuracy', 'macro_f1', 'log_loss', 'n'}
    md = (root/'reports/compare.md').read_text()
    assert '**❌ Gate failed**' in md and '- **Experiment**: worse' in md
    gate = demo.run(BIN/'mlops-nb', 'gate')
    assert gate.returncode == 3, gate.stdout
    assert re.fullmatch(r'gate failed \(experiment worse\): accuracy dropped 0\.\d{4} > 0\.005.*\n', gate.stdout), \
        gate.stdout
    # the champion's own settings: the same model, no drop, the gate passes
    demo.ok(demo.dvc('exp', 'run', '--name', 'champion-settings', '-S', 'train.epochs=15', '-S', 'train.lr=0.01',
                     what='exp run (champion settings)'))
    assert json.loads((root/'reports/compare.json').read_text())['gate'] == 'passed'
    gate = demo.run(BIN/'mlops-nb', 'gate')
    assert gate.returncode == 0 and gate.stdout.startswith('gate passed (experiment champion-settings)'), gate.stdout
    demo.commit('champion settings')

def test_suggest_after_promote(demo):
    """`make suggest` after `make promote`: every unannotated task of the pool shows exactly one suggestion named
    after the champion's weights, the benchmark project none; a second push imports nothing."""
    root,client = demo.root,demo.ls.client
    champion = json.loads((root/'results/champion.json').read_text())
    version = f'cnn-{champion["model_sha256"][:12]}'
    out = demo.ok(demo.run(BIN/'mlops-nb', 'suggest', what='suggest'))
    assert f'suggesting with the champion (commit {champion["commit"][:12]}' in out and version in out, out
    pid = next(p.id for p in client.projects.list() if p.title == demo.titles['digits'])
    bid = next(p.id for p in client.projects.list() if p.title == demo.titles['digits-benchmark'])
    unlabeled = {t.id for t in client.tasks.list(project=pid, fields='task_only') if not t.total_annotations}
    preds = [(p.task, p.model_version) for p in client.predictions.list(project=pid)]
    assert unlabeled and sorted(preds) == sorted((t, version) for t in unlabeled), (preds, unlabeled)
    assert list(client.predictions.list(project=bid)) == []
    assert re.search(rf'^digits \(project {pid}\): {version}: 0 imported, 0 replaced, {len(unlabeled)} already shown',
                     demo.ok(demo.run(BIN/'mlops-nb', 'suggest')), re.M)

def test_benchmark_change_reruns_benchmark_side_only(demo):
    "A new benchmark annotation reruns its export, both dataset stages (leakage-check dep), evaluate and compare; not train."
    root,lock0 = demo.root,demo.lock()
    export = json.loads((root/'data/raw_labels/digits-benchmark.json').read_text())
    task = next(t for t in export if not t['annotations'])
    with demo.ls.http() as h:
        h.post(f'/api/tasks/{task["id"]}/annotations/', json={'result': [{'from_name': 'label', 'to_name': 'image', 'type': 'choices',
               'value': {'choices': ['3']}}], 'was_cancelled': False, 'ground_truth': False}).raise_for_status()
    train_ds = tree_hashes(root/'data/datasets/digits')
    # issue 34: after the change check, `dvc status` names the benchmark's export only (one fingerprint file each)
    demo.ok(demo.dvc('repro', '--single-item', CHECK))
    assert demo.stale() & EXPORTS == {'labelstudio@digits-benchmark'}
    out = demo.ok(demo.dvc('repro', what='repro (benchmark change)'))
    assert 'labelstudio@digits' not in ran(out)  # the pool's export does not even start
    notebooks = [s for s in ran(out) if s != CHECK]
    dag = demo.dag()   # everything below the benchmark's export, but train: the pool's dataset came out byte-identical
    same = {'train', 'audit@digits'}  # the pool's dataset came out byte-identical: neither its model nor its audit reruns
    assert set(notebooks) == dag.below('labelstudio@digits-benchmark') - same and dag.in_order(notebooks), out
    assert POOL in notebooks  # its leakage check reads the benchmark
    assert notebook_skipped(out) == 0
    assert skipped(out) == same | {'labelstudio@digits'}  # its fingerprint file did not move
    lock = demo.lock()
    assert out_md5(lock, 'dataset-benchmark', 'data/datasets/digits-benchmark') != out_md5(lock0, 'dataset-benchmark', 'data/datasets/digits-benchmark')
    assert out_md5(lock, POOL, 'data/datasets/digits') == out_md5(lock0, POOL, 'data/datasets/digits')
    assert tree_hashes(root/'data/datasets/digits') == train_ds
    assert lock['stages']['train'] == lock0['stages']['train']
    # issue 32: the earlier stages rewrote dvc.lock and metrics/ in this very repro; the commit is still clean
    assert json.loads((root/'metrics/benchmark.json').read_text())['git']['dirty'] is False
    rows = json.loads((root/'data/raw_labels/digits-benchmark.json').read_text())
    assert next(t for t in rows if t['id'] == task['id'])['annotations']
    demo.commit('benchmark annotation')

def test_s3_push_clone_pull_round_trip(demo, s3_endpoint, tmp_path):
    "`dvc push` to S3 (endpoint in .dvc/config.local, keys in env), fresh clone, `dvc pull`: same bytes, nothing to rerun."
    root,s3 = demo.root,s3_endpoint
    bucket = s3.make_bucket(f'pipeline-{uuid.uuid4().hex[:8]}')
    keys = {k: v for k,v in s3.env.items() if k != 'AWS_ENDPOINT_URL'}  # the endpoint must come from config.local
    demo.ok(demo.dvc('remote', 'add', '-d', 's3', f's3://{bucket}/dvcstore'))
    demo.ok(demo.dvc('remote', 'modify', '--local', 's3', 'endpointurl', s3.url))
    assert s3.url in (root/'.dvc/config.local').read_text() and s3.url not in (root/'.dvc/config').read_text()
    demo.commit('s3 remote')
    assert '.dvc/config.local' not in git(root, 'ls-files')
    demo.ok(demo.dvc('push', env=keys, what='dvc push (s3)'))
    assert s3.client().list_objects_v2(Bucket=bucket, Prefix='dvcstore/')['KeyCount'] > 0

    clone = tmp_path/'clone'
    subprocess.run(['git', 'clone', '-q', str(root), str(clone)], check=True, capture_output=True)
    assert not (clone/'data').exists() and not (clone/'.dvc/cache').exists()
    demo.ok(demo.dvc('remote', 'modify', '--local', 's3', 'endpointurl', s3.url, cwd=clone))
    demo.ok(demo.dvc('pull', env=keys, cwd=clone, what='dvc pull (s3, fresh clone)'))
    assert not (clone/'.dvc-remote').exists()  # it came from S3, not the default local remote
    assert tree_hashes(clone/'data') == tree_hashes(root/'data')
    # the executed notebooks (runs/<stage>/latest.ipynb), the report, metrics and plots come back too
    ours = {k: v for k,v in tree_hashes(root/'runs').items() if k.endswith('/latest.ipynb') and not k.startswith('labelstudio-')}
    assert tree_hashes(clone/'runs') == ours and len(ours) == 7  # two datasets, two audits, train, evaluate, compare
    for d in ('reports', 'dvclive', 'metrics', 'plots'): assert tree_hashes(clone/d) == tree_hashes(root/d), d
    # a clone is ready for CI: after `dvc pull` only the Label Studio check remains, and it finds nothing to do
    assert demo.status(cwd=clone) == {CHECK: ['always changed']}
    out = demo.ok(demo.dvc('repro', cwd=clone, what='repro in the clone'))
    assert ran(out) == [CHECK] and notebook_skipped(out) == 0 and skipped(out) == demo.dag().stages - {CHECK}, out
    demo.clone = clone

def test_s3_endpoint_down_during_push(demo, s3_endpoint):
    "S3 endpoint down: `dvc push` fails fast with one clear line naming the endpoint; the local cache and workspace stay intact."
    root = demo.root
    dead = f'http://127.0.0.1:{free_port()}'
    demo.ok(demo.dvc('remote', 'add', '--local', 's3down', 's3://pipeline-down/dvcstore'))  # a second remote, this clone only
    demo.ok(demo.dvc('remote', 'modify', '--local', 's3down', 'endpointurl', dead))
    cache = root/'.dvc/cache/files/md5'
    before = tree_hashes(cache, skip=())
    keys = {k: v for k,v in s3_endpoint.env.items() if k != 'AWS_ENDPOINT_URL'}
    r = demo.dvc('push', '-r', 's3down', env=keys, timeout=300, what='dvc push (endpoint down)')
    assert r.returncode != 0
    assert 'Could not connect to the endpoint URL' in r.stdout and dead in r.stdout, r.stdout
    assert 'Traceback' not in r.stdout and len(r.stdout.strip().splitlines()) <= 5, r.stdout
    assert tree_hashes(cache, skip=()) == before
    for p,h in before.items():  # every cache file still holds the content its name says
        if not p.endswith('.dir'): assert hashlib.md5((cache/p).read_bytes()).hexdigest() == Path(p).parent.name + Path(p).name
    assert demo.status() == {CHECK: ['always changed']}
    model = root/'data/models/best-model.pth'
    h = sha(model); model.unlink()
    demo.ok(demo.dvc('checkout', 'data/models'))
    assert sha(model) == h
    demo.ok(demo.dvc('remote', 'remove', '--local', 's3down'))

def test_model_job_played_locally(demo, s3_endpoint, source_tree, tmp_path):
    """`.github/workflows/model.yml` played as GitHub would run it on a labelled pull request: a fresh checkout of the
    PR branch from a bare `origin`, the moto S3 remote, the real Label Studio and a loopback fake GitHub API; each step
    is the make target the workflow calls. Then the same job again on its own commit: nothing new anywhere."""
    from fake_github import FakeGitHub
    origin = tmp_path/'origin.git'
    subprocess.run(['git', 'init', '-q', '--bare', '-b', 'main', str(origin)], check=True)
    git(demo.root, 'push', '-q', str(origin), 'HEAD:refs/heads/main')
    dev = tmp_path/'dev'   # a data scientist's clone: a new seed and a local results store, pushed as a PR branch
    subprocess.run(['git', 'clone', '-q', str(origin), str(dev)], check=True)
    params = yaml.safe_load((dev/'params.yaml').read_text())
    params['train']['seed'] = 7
    params['evaluate'] = {'store': 'results'}
    (dev/'params.yaml').write_text(yaml.safe_dump(params, sort_keys=False))
    git(dev, 'checkout', '-q', '-b', 'pr-seed'); git(dev, 'commit', '-qam', 'seed 7'); git(dev, 'push', '-q', 'origin', 'pr-seed')
    main_before,pr_head = git(origin, 'rev-parse', 'main'),git(origin, 'rev-parse', 'pr-seed').strip()
    work = tmp_path/'runner'   # actions/checkout of the PR head, persist-credentials: false
    subprocess.run(['git', 'clone', '-q', '-b', 'pr-seed', str(origin), str(work)], check=True)
    demo.ok(demo.dvc('remote', 'modify', '--local', 's3', 'endpointurl', s3_endpoint.url, cwd=work))
    shutil.copy(source_tree/'Makefile', work/'Makefile')   # untracked here: only the pipeline state is committed
    gh = FakeGitHub('ghs_model_job_token_42')
    event = tmp_path/'event.json'; event.write_text(json.dumps({'pull_request': {'number': 12}}))
    env = {**{k: v for k,v in s3_endpoint.env.items() if k != 'AWS_ENDPOINT_URL'}, 'GITHUB_TOKEN': gh.token,
           'GITHUB_REPOSITORY': gh.repo, 'GITHUB_API_URL': gh.url, 'GITHUB_HEAD_REF': 'pr-seed', 'GITHUB_EVENT_PATH': str(event)}
    def job():
        out = {t: demo.run('make', '-o', 'install', f'BIN={BIN}', t, cwd=work, env=env, what=f'model job: {t}')
               for t in ('pr-model', 'pr-commit', 'pr-comment', 'gate')}
        for t in ('pr-model', 'pr-commit', 'pr-comment'): demo.ok(out[t])
        assert out['gate'].returncode in (0, 2, 3) and 'Traceback' not in out['gate'].stdout, out['gate'].stdout
        return out
    try:
        first = job()
        assert set(ran(first['pr-model'].stdout)) >= {'train', 'evaluate', 'compare'}, first['pr-model'].stdout[-3000:]
        # dvc.lock and the tracked results are committed on the PR branch, pushed; main never moves
        assert git(origin, 'rev-parse', 'pr-seed').strip() == git(work, 'rev-parse', 'HEAD').strip() != pr_head
        changed = git(origin, 'show', '--name-only', '--format=', 'pr-seed').split()
        assert 'dvc.lock' in changed and any(c.startswith('metrics/') for c in changed), changed
        assert git(origin, 'rev-parse', 'main') == main_before
        assert gh.token not in (work/'.git/config').read_text()
        # results stored under the PR head commit; CI dispatched on the branch; one report comment
        assert (work/'results'/pr_head).is_dir(), sorted(p.name for p in (work/'results').iterdir())
        assert gh.dispatches == [('ci.yml', {'ref': 'pr-seed'})]
        assert len(gh.comments[12]) == 1 and gh.comments[12][0]['body'].startswith('<!-- mlops-nb')
        calls,head = len(gh.requests),git(origin, 'rev-parse', 'pr-seed')
        # the job again, on its own commit: nothing to reproduce, commit, push or post
        second = job()
        assert ran(second['pr-model'].stdout) == [CHECK], second['pr-model'].stdout[-3000:]
        assert 'nothing to commit' in second['pr-commit'].stdout
        assert 'unchanged on #12' in second['pr-comment'].stdout
        assert git(origin, 'rev-parse', 'pr-seed') == head and len(gh.dispatches) == 1 and len(gh.comments[12]) == 1
        assert [m for m,_ in gh.calls()[calls:]] == ['GET'], gh.calls()[calls:]   # one look for the comment, nothing else
    finally: gh.close()

def test_exp_run_from_tracked_backbone_weights(demo, tmp_path):
    """Issue 31's check: weights the project tracks (`dvc add` into pretrained/) and `dvc exp run -S train.arch=<a
    timm model> -S train.weights=<file>`, with every proxy pointing nowhere (only the loopback Label Studio reachable):
    it trains, and the model card, reports/compare.md and the run's scraps name the file's sha256. The workspace goes
    back to the committed pipeline afterwards."""
    from mlops_nb.core import sha256_file
    from mlops_nb.folder import sample_dataset
    root,name = demo.root,'test_resnet-digits.pth'
    w = backbone_weights(sample_dataset(tmp_path/'digits', n=200, size=16), root/'pretrained'/name)
    demo.ok(demo.dvc('add', f'pretrained/{name}', what='dvc add weights'))
    demo.commit('backbone weights')   # as the README says: an experiment holds only what git tracks (the .dvc file)
    nowhere = {'HTTP_PROXY': 'http://127.0.0.1:9', 'HTTPS_PROXY': 'http://127.0.0.1:9', 'NO_PROXY': '127.0.0.1,localhost'}
    out = demo.ok(demo.dvc('exp', 'run', '--name', 'timm-weights', '-S', 'train.arch=test_resnet',
                           '-S', f'train.weights=pretrained/{name}', env=nowhere, what='exp run (timm + weights)'))
    assert {'train', 'evaluate', 'compare'} <= set(ran(out)), out
    sha = sha256_file(w)
    card = json.loads((root/'data/models/model.json').read_text())
    assert card['arch'] == 'test_resnet' and card['params']['weights_sha256'] == sha
    assert sha in (root/'reports/compare.md').read_text()
    from mlops_nb.runner import read_scraps
    assert read_scraps(root/'runs/train/latest.ipynb')['weights_sha256'] == sha
    git(root, 'reset', '-q', '--hard', 'HEAD~1')
    (root/'pretrained'/name).unlink(missing_ok=True)
    demo.ok(demo.dvc('checkout', '--force', what='back to the committed pipeline'))

def test_no_secret_anywhere(demo, s3_endpoint):
    "Neither the Label Studio token nor the S3 secret key is in any file, git history, experiment, executed notebook or output."
    secrets = [demo.ls.token, s3_endpoint.env['AWS_SECRET_ACCESS_KEY']]
    roots = [demo.root] + ([demo.clone] if demo.clone else [])
    files = [p for r in roots for p in r.rglob('*') if p.is_file() and '.git' not in p.relative_to(r).parts[:1]]
    for must in ('dvc.yaml', 'dvc.lock', 'params.yaml', 'data/raw_labels/digits.json', 'reports/compare.md',
                 'metrics/benchmark.json', 'runs/labelstudio-digits', 'runs/train/latest.ipynb'):
        assert any(str(p.relative_to(demo.root)).startswith(must) for p in files if p.is_relative_to(demo.root)), must
    history = subprocess.run(['git', 'log', '--all', '-p'], cwd=demo.root, capture_output=True, text=True).stdout
    assert 'refs/exps' in git(demo.root, 'for-each-ref')  # the history scanned includes the experiment
    for s in secrets:
        hits = [str(p) for p in files if s.encode() in p.read_bytes()]
        assert not hits, f'secret found in {hits}'
        assert s not in history
        assert not any(s in o for o in demo.outputs)
