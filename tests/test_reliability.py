"""Reliability against the installed wheel (issue 12, items 1, 2, 5, 6): outputs stay inside the project, a missing
params section is an error, a failed or killed run leaves every tracked output as it was, and bad input is exit 2 with
one line naming the key or file. Every case hashes the project before and after."""
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import cli, git
from mlops_nb.core import sha256_bytes

CORPUS = Path(__file__).parent/'data/corpus/reliability'
BIN = Path(sys.executable).parent

def snapshot(d:Path)->dict:
    "sha256 of every file under `d` (git's own files left out), by relative path."
    return {str(p.relative_to(d)): sha256_bytes(p.read_bytes()) for p in sorted(d.rglob('*'))
            if p.is_file() and '.git' not in p.relative_to(d).parts}

def one_error_line(r, only:bool=True)->str:
    "The CLI's error: one `error:` line and no traceback; with `only`, nothing else on stderr (refused before any run)."
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    errs = [l for l in lines if l.startswith('mlops-nb run: error: ')]
    assert len(errs) == 1 and 'Traceback' not in r.stderr and (not only or lines == errs), r.stderr[-3000:]
    return errs[0]

def _train_params(extra=()): return ['-p', 'size=16', '-p', 'bs=16', *extra]

@pytest.fixture(scope='module')
def trained_template(tmp_path_factory, source_tree)->Path:
    "Once per module: a project with the real params.yaml, a tiny training dataset and a good train run's outputs."
    root = tmp_path_factory.mktemp('template')/'proj'; root.mkdir()
    (root/'params.yaml').write_text((source_tree/'params.yaml').read_text())
    git(root, 'init', '-q'); git(root, 'add', '.'); git(root, 'commit', '-qm', 'init')
    from mlops_nb.folder import sample_dataset
    sample_dataset(root/'data/datasets/digits', n=120, size=16)
    r = cli('run', 'train', *_train_params(['-p', 'epochs=2']), cwd=root,
            env={'CUDA_VISIBLE_DEVICES': '', 'MLOPS_PROGRESS': 'plain'})
    assert r.returncode == 0, r.stderr[-3000:]
    for f in ('data/models/model.json', 'dvclive/metrics.json', 'metrics/train.json', 'runs/train/latest.ipynb'):
        assert (root/f).is_file(), f
    return root

@pytest.fixture
def trained(trained_template, tmp_path, monkeypatch)->Path:
    "A fresh copy of the trained project as the working directory."
    root = tmp_path/'proj'
    shutil.copytree(trained_template, root, symlinks=True)
    monkeypatch.chdir(root)
    monkeypatch.delenv('MLOPS_NB_ROOT', raising=False)
    monkeypatch.setenv('MLOPS_PROGRESS', 'plain')
    return root

# --- item 1: outputs stay inside the project, nothing that is not ours is deleted ---------------------------------

@pytest.mark.parametrize('args,msg', [
    (['dataset', '--section', 'dataset.digits', '-p', 'out=../../escaped'],
     "dataset.digits.out='../../escaped' is outside the project"),
    (['dataset', '--section', 'dataset.digits', '-p', 'out={outside}'], 'dataset.digits.out='),
    (['evaluate', '-p', 'overlay_dir={outside}'], 'evaluate.overlay_dir='),
    (['train', '-p', 'live_dir=../dvclive'], "train.live_dir='../dvclive' is outside the project"),
    (['compare', '-p', 'out={outside}/compare.md'], 'compare.out='),
], ids=['dotdot', 'absolute', 'overlay-absolute', 'live-dir', 'report'])
def test_output_outside_project_refused(trained, tmp_path, args, msg):
    outside = tmp_path/'precious'; outside.mkdir(); (outside/'thesis.tex').write_text('years of work')
    before,before_out = snapshot(trained),snapshot(outside)
    r = cli('run', *[a.format(outside=outside) for a in args])
    assert r.returncode == 2, r.stderr[-2000:]
    line = one_error_line(r)
    assert msg.format(outside=outside) in line and 'is outside the project' in line and '--allow-outside' in line, line
    assert snapshot(trained) == before and snapshot(outside) == before_out
    assert not (trained.parent.parent/'escaped').exists()

def test_existing_foreign_folder_never_replaced(trained, tmp_path):
    "Even with --allow-outside, a folder that is not the stage's own (no dataset.json) is refused, never emptied."
    notes = trained/'notes'; notes.mkdir(); (notes/'todo.txt').write_text('mine')
    outside = tmp_path/'home'; outside.mkdir(); (outside/'.bashrc').write_text('alias ll=ls')
    before,before_out = snapshot(trained),snapshot(outside)
    for args,where in ((['dataset', '--sample', '-p', 'out=notes'], notes),
                       (['evaluate', '--allow-outside', '-p', f'overlay_dir={outside}'], outside)):
        r = cli('run', *args)
        assert r.returncode == 2, r.stderr[-2000:]
        assert f'refusing to replace {where}: it is not empty' in one_error_line(r)
    assert snapshot(trained) == before and snapshot(outside) == before_out

def test_file_outputs_never_replace_project_files(trained):
    """Issue 32: a file output pointed at a file the user has (a stage's notebook, the README) is refused before any run,
    one line, exit 2, every file byte-identical; an output the stage wrote itself is replaced on its next run."""
    from mlops_nb.runner import packaged_notebooks
    (trained/'README.md').write_text('# my project\n')
    (trained/'nbs').mkdir(); shutil.copy(packaged_notebooks()/'30_train.ipynb', trained/'nbs/30_train.ipynb')
    before = snapshot(trained)
    for args,target in ((['evaluate', '-p', 'metrics_fp=nbs/30_train.ipynb'], 'nbs/30_train.ipynb'),
                        (['evaluate', '-p', 'metrics_fp=README.md'], 'README.md'),
                        (['compare', '-p', 'out=README.md'], 'README.md'),
                        (['train', *_train_params(['-p', 'metrics_fp=README.md'])], 'README.md'),
                        (['dataset', '--sample', '-p', 'metrics_fp=nbs/30_train.ipynb'], 'nbs/30_train.ipynb')):
        r = cli('run', *args)
        assert r.returncode == 2, r.stderr[-2000:]
        assert f'refusing to replace {target} with ' in one_error_line(r), r.stderr
    r = cli('report', '--out', 'README.md')
    assert r.returncode == 2 and 'refusing to replace README.md with report --out' in r.stderr, r.stderr[-2000:]
    assert 'Traceback' not in r.stderr and snapshot(trained) == before
    for _ in range(2):  # a file the stage wrote (runs/outputs.json records it) is the stage's to replace
        r = cli('run', 'train', *_train_params(['-p', 'epochs=1', '-p', 'metrics_fp=metrics/mine.json']))
        assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((trained/'metrics/mine.json').read_text())['n_train'] > 0

# --- item 2: a missing or misspelled params section is an error ---------------------------------------------------

@pytest.mark.parametrize('args,msg', [
    (['train', '--params', 'no-train.yaml'], "params section 'train' not found: no-train.yaml has dataset"),
    (['dataset', '--section', 'dataset.nosuch'],
     "params section 'dataset.nosuch' not found: section dataset has digits"),
    (['train', '--section', 'trian'],
     "params section 'trian' not found: {root}/params.yaml has labelstudio, dataset, benchmark, audit, train, evaluate, compare"),
])
def test_missing_section_is_an_error(trained, args, msg):
    (trained/'no-train.yaml').write_text('dataset:\n  digits:\n    out: data/datasets/digits\n')
    before = snapshot(trained)
    r = cli('run', *args)
    assert r.returncode == 2, r.stderr[-2000:]
    assert msg.format(root=trained) in one_error_line(r)
    assert snapshot(trained) == before

# --- item 5: a failed or killed run never puts tracked outputs out of step ----------------------------------------

def test_failed_run_keeps_latest(trained):
    "A run failing inside the notebook keeps its executed copy under its own id; latest.ipynb stays the last good run."
    before = snapshot(trained)
    r = cli('run', 'train', '-p', 'dataset=data/datasets/none', env={'CUDA_VISIBLE_DEVICES': ''})
    assert r.returncode == 1
    line = one_error_line(r, only=False)
    assert 'stage train failed in cell' in line and 'labels.csv not found' in line
    assert 'latest.ipynb still holds the last good run' in line
    after = snapshot(trained)
    assert {k: after[k] for k in before} == before
    new = sorted(set(after) - set(before))
    assert len(new) == 1 and new[0].startswith('runs/train/') and new[0] != 'runs/train/latest.ipynb', new

def test_kill_9_mid_training_changes_nothing(trained):
    """`kill -9` of `mlops-nb run train` at epoch 3: model, dvclive, metrics and latest are byte-identical, and the next
    run removes the killed run's temp files."""
    before = snapshot(trained)
    cmd = [str(BIN/'mlops-nb'), 'run', 'train', *_train_params(['-p', 'epochs=400'])]
    p = subprocess.Popen(cmd, cwd=trained, text=True,
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True,
                         env={**os.environ, 'CUDA_VISIBLE_DEVICES': ''})
    t0,seen = time.time(),''
    try:
        while time.time()-t0 < 300 and '[train] epoch 3/400' not in seen:
            line = p.stderr.readline()
            if not line: break
            seen += line
        assert '[train] epoch 3/400' in seen, seen[-3000:]
    finally:
        os.killpg(p.pid, signal.SIGKILL); p.wait()
    time.sleep(3)   # the kernel notices its parent is gone and exits
    after = snapshot(trained)
    assert {k: after.get(k) for k in before} == before
    stale = [k for k in set(after) - set(before)]
    assert any(k.startswith('runs/train/.') and k.endswith('.tmp.ipynb') for k in stale), stale
    assert any(k.startswith('data/.models.train.p') for k in stale), stale
    r = cli('run', 'train', *_train_params(['-p', 'epochs=1']), env={'CUDA_VISIBLE_DEVICES': ''})
    assert r.returncode == 0, r.stderr[-3000:]
    left = [*(trained/'runs/train').glob('.*'), *(trained/'data').glob('.*'), *trained.glob('.dvclive*'),
            *(trained/'data/models').glob('.*')]
    assert left == [], left
    card = json.loads((trained/'data/models/model.json').read_text())
    live = json.loads((trained/'dvclive/metrics.json').read_text())
    assert card['params']['epochs'] == 1 and live['step'] == 0
    assert card['best']['accuracy'] == live['best']['accuracy']   # the curves belong to the published model

# --- item 6: input errors are exit 2 and name what is wrong ---------------------------------------------------------

@pytest.mark.parametrize('args,msg', [
    (['train', '-p', 'epochs=abc'], "train.epochs must be an integer, not 'abc'"),
    (['train', '-p', 'bs=-5'], 'train.bs must be >= 1, got -5'),
    (['train', '-p', 'size=0'], 'train.size must be >= 8, got 0'),
    (['train', '-p', 'lr=fast'], "train.lr must be a number or 'find' or 'auto', not 'fast'"),
    (['train', '-p', 'metrics=[accuracy, f2]'], "train.metrics must be 'accuracy' or"),
    (['dataset', '--section', 'dataset.digits', '-p', 'valid_pct=1.5'],
     'dataset.digits.valid_pct must be >= 0 and < 1, got 1.5'),
    (['dataset', '--section', 'dataset.digits', '-p', 'workers=0'], 'dataset.digits.workers must be >= 1, got 0'),
    (['evaluate', '-p', 'max_overlays=many'], "evaluate.max_overlays must be an integer, not 'many'"),
    (['compare', '-p', 'gates={accuracy: lots}'], "compare.gates.accuracy must be a number, not 'lots'"),
    (['train', '--params', str(CORPUS/'params_latin1.yaml')], 'params_latin1.yaml is not UTF-8 text (byte 18)'),
    (['train', '--params', str(CORPUS)], f'params file {CORPUS} is a folder, not a file'),  # issue 32
])
def test_bad_value_exit_2_names_key(trained, args, msg):
    before = snapshot(trained)
    r = cli('run', *args)
    assert r.returncode == 2, r.stderr[-2000:]
    assert msg in one_error_line(r)
    assert snapshot(trained) == before

@pytest.mark.parametrize('damage,msg', [
    ('labels', 'data/datasets/digits/labels.csv line 3 has 2 fields, not 6'),
    ('card', 'data/models/model.json is not valid JSON'),
])
def test_damaged_input_file_is_named(trained, damage, msg):
    "A damaged labels.csv (train) or model.json (evaluate) fails the stage with a line naming the file."
    if damage == 'labels': shutil.copy(CORPUS/'labels_short_row.csv', trained/'data/datasets/digits/labels.csv')
    else: shutil.copy(CORPUS/'model_truncated.json', trained/'data/models/model.json')
    before = snapshot(trained)
    stage = 'train' if damage == 'labels' else 'evaluate'
    extra = (['-p', 'model_dir=data/models', '-p', 'benchmark_dir=data/datasets/digits', '-p', 'split=valid']
             if stage == 'evaluate' else [])
    r = cli('run', stage, *extra, env={'CUDA_VISIBLE_DEVICES': ''})
    assert r.returncode == 1, r.stderr[-2000:]
    line = one_error_line(r, only=False)
    path,what = msg.split(' ', 1)
    assert f'stage {stage} failed in cell' in line and f'{trained/path} {what}' in line, line
    after = snapshot(trained)
    assert {k: after[k] for k in before} == before

def _reverse_classes(root:Path):
    card = json.loads((root/'data/models/model.json').read_text())
    (root/'data/models/model.json').write_text(json.dumps({**card, 'classes': card['classes'][::-1]}))

def _duplicate_class(root:Path):
    card = json.loads((root/'data/models/model.json').read_text())
    (root/'data/models/model.json').write_text(json.dumps({**card, 'classes': [card['classes'][0]]*2 + card['classes'][2:]}))

def _replace_image(root:Path):
    from mlops_nb.core import digit_png
    from mlops_nb.folder import DatasetFolder
    row = DatasetFolder.read(root/'data/datasets/digits').split('valid')[0]
    (root/'data/datasets/digits'/row['file']).write_bytes(digit_png(1500, 16)[0])   # a valid PNG, another digit

def _change_label_byte(root:Path):
    f = root/'data/datasets/digits/labels.csv'
    lines = f.read_text().splitlines(keepends=True)
    i = next(i for i,l in enumerate(lines) if ',valid,' in l)
    label = lines[i].split(',')[1]
    lines[i] = lines[i].replace(f',{label},', f',{(int(label)+1) % 10},', 1)
    f.write_text(''.join(lines))

def _unknown_label(root:Path):
    from mlops_nb.folder import DatasetFolder, write_dataset_folder
    ds = DatasetFolder.read(root/'data/datasets/digits')
    rows = [{**r, 'split': 'benchmark', **({'label': 'cat'} if i == 0 else {})} for i,r in enumerate(ds.split('valid'))]
    write_dataset_folder(root/'data/datasets/bench', rows, {r['file']: (ds.path/r['file']).read_bytes() for r in rows},
                         {'classes': sorted({r['label'] for r in rows}), 'mode': 'benchmark'})

@pytest.mark.parametrize('damage,msg', [
    (_reverse_classes, 'data/models/model.json does not match best-model.pth: its classes or the weights changed'),
    (_duplicate_class, "data/models/model.json lists class '0' twice"),
    (_replace_image, 'does not hold the content its name says (sha256 differs)'),
    (_change_label_byte, 'labels.csv is not the one dataset.json was written with'),
    (_unknown_label, "labels 'cat' (1 images) are not classes of the model"),
], ids=['reversed-classes', 'duplicated-class', 'replaced-image', 'labels-byte', 'unknown-label'])
def test_inconsistent_inputs_are_never_evaluated(trained, damage, msg):
    """Issue 32: a model card that does not belong to its weights, an image whose content is not its name, a labels file
    changed behind its card, a benchmark label the model does not know: evaluate refuses with one line, writes nothing."""
    damage(trained)
    bench,split = ('data/datasets/bench', 'benchmark') if damage is _unknown_label else ('data/datasets/digits', 'valid')
    before = snapshot(trained)
    r = cli('run', 'evaluate', '-p', f'benchmark_dir={bench}', '-p', f'split={split}', env={'CUDA_VISIBLE_DEVICES': ''})
    assert r.returncode == 1, r.stderr[-2000:]
    line = one_error_line(r, only=False)
    assert 'stage evaluate failed in cell' in line and msg in line, line
    after = snapshot(trained)
    assert {k: after[k] for k in before} == before and not (trained/'metrics/benchmark.json').exists()

def test_store_down_leaves_local_results(trained):
    """Issue 32: evaluate publishing to an S3 store whose endpoint is down fails, and the metrics, plots, overlays and
    latest.ipynb are byte-identical: the local outputs and the run record never disagree."""
    from fixtures_labelstudio import free_port
    args,env = ['-p', 'benchmark_dir=data/datasets/digits', '-p', 'split=valid'],{'CUDA_VISIBLE_DEVICES': ''}
    assert cli('run', 'evaluate', *args, env=env).returncode == 0
    before = snapshot(trained)
    down = {**env, 'AWS_ENDPOINT_URL': f'http://127.0.0.1:{free_port()}', 'AWS_ACCESS_KEY_ID': 'AKIA' + 'X'*16,
            'AWS_SECRET_ACCESS_KEY': 'y'*40}
    r = cli('run', 'evaluate', *args, '-p', 'store=s3://results-bucket/x', env=down)
    assert r.returncode in (1, 2) and 'Traceback' not in r.stderr, r.stderr[-2000:]
    after = snapshot(trained)
    assert {k: after[k] for k in before} == before
    assert [k for k in set(after) - set(before) if not k.startswith('runs/evaluate/')] == []

def _can_mount_tmpfs()->bool:
    r = subprocess.run(['unshare', '-rm', 'sh', '-c', 'mount -t tmpfs -o size=4k tmpfs /mnt'], capture_output=True)
    return r.returncode == 0

def full_disk_run(root:Path, script:str)->tuple:
    "Run `script` (which mounts a tiny tmpfs, then execs mlops-nb) in a user namespace: exit 2 and its one error line."
    r = subprocess.run(['unshare', '-rm', 'sh', '-c', script], cwd=root, capture_output=True, text=True,
                       env={**os.environ, 'CUDA_VISIBLE_DEVICES': ''}, timeout=600)
    assert r.returncode == 2, r.stderr[-3000:]
    return r, one_error_line(r, only=False)

@pytest.mark.skipif(not shutil.which('unshare') or not _can_mount_tmpfs(),
                    reason='needs a user namespace to mount a tiny tmpfs')
def test_full_disk_names_the_folder(trained):
    "A full disk under runs/ (a real 4 KiB tmpfs, filled): exit 2 naming the folder; nothing the project had changes."
    before = snapshot(trained)
    r,line = full_disk_run(trained, 'mount -t tmpfs -o size=4k tmpfs runs && mkdir -p runs/train && '
                                    '(dd if=/dev/zero of=runs/fill bs=1k 2>/dev/null; true) && '
                                    f'exec {BIN/"mlops-nb"} run train')
    assert f'no space left on the device to write the executed notebook in {trained}/runs/train' in line, line
    assert snapshot(trained) == before

@pytest.mark.skipif(not shutil.which('unshare') or not _can_mount_tmpfs(),
                    reason='needs a user namespace to mount a tiny tmpfs')
def test_full_disk_during_training_names_the_model_folder(trained, tmp_path):
    """Issue 32: the disk fills up while training (a real tmpfs over data/, holding the dataset and the model with 64 KiB
    to spare, so the first checkpoint does not fit): exit 2, one line naming the model folder, not torch's C++ error."""
    r,line = full_disk_run(trained, f'cp -a data {tmp_path}/ && size=$(( $(du -sk data | cut -f1) + 64 )) && '
                                    f'mount -t tmpfs -o size=${{size}}k tmpfs data && cp -a {tmp_path}/data/. data/ && '
                                    f'exec {BIN/"mlops-nb"} run train -p size=16 -p bs=16 -p epochs=2')
    assert f'no space left on the device to write {trained}/data/models' in line, line
    assert 'inline_container' not in r.stderr and 'Traceback' not in r.stderr

