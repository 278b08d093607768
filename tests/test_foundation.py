"""The foundation: the installed package, the CLI's contract, the papermill runner, and the sync check."""
import json, os, shutil, subprocess, sys, sysconfig
from pathlib import Path
import pytest
from conftest import cli, git

def test_tests_run_against_installed_wheel(source_tree):
    import mlops_nb
    pkg = Path(mlops_nb.__file__).resolve()
    assert source_tree.resolve() not in pkg.parents, f'mlops_nb imported from the source tree: {pkg}'
    assert Path(sys.prefix).resolve() in pkg.parents, f'mlops_nb is not installed in this environment: {pkg}'
    # the stage notebooks ship inside the wheel
    from mlops_nb.runner import packaged_notebooks
    assert (packaged_notebooks()/'20_dataset.ipynb').exists()

def test_help_lists_commands_and_is_fast():
    r = cli('--help')
    assert r.returncode == 0 and 'run' in r.stdout and 'stages' in r.stdout
    # --help must not import torch/fastai/papermill (checked in-process, in a fresh interpreter)
    code = 'import sys; from mlops_nb.cli import main; main(["--help"]); print(sorted(m for m in ("torch","fastai","papermill","label_studio_sdk") if m in sys.modules))'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith('[]'), out

def test_stages_lists_pipeline_in_order(project):
    r = cli('stages')
    assert r.returncode == 0, r.stderr
    names = [l.split()[0] for l in r.stdout.splitlines()]
    assert 'dataset' in names
    order = [n for n in ('labelstudio', 'dataset', 'train', 'evaluate', 'compare') if n in names]
    assert [n for n in names if n in order] == order

STAGE = {'cells': [
    {'cell_type': 'code', 'metadata': {'tags': ['parameters']}, 'source': 'n = 1  # a number\nlabel = "x"\n', 'outputs': [], 'execution_count': None},
    {'cell_type': 'code', 'metadata': {}, 'source': 'import scrapbook as sb\nif n < 0: raise ValueError(f"n must be >= 0, got {n}")\nsb.glue("square", n*n)\nsb.glue("label", label)\n', 'outputs': [], 'execution_count': None}],
    'metadata': {'kernelspec': {'name': 'python3', 'language': 'python', 'display_name': 'python3'}}, 'nbformat': 4, 'nbformat_minor': 4}

@pytest.fixture
def square_project(project):
    (project/'nbs').mkdir()
    (project/'nbs/15_square.ipynb').write_text(json.dumps(STAGE))
    (project/'params.yaml').write_text('square:\n  n: 3\n  label: from-params\n')
    return project

def test_run_writes_executed_notebook_with_params_and_scraps(square_project):
    r = cli('run', 'square', '-p', 'n=12')
    assert r.returncode == 0, r.stderr
    latest = square_project/'runs/square/latest.ipynb'
    nb = json.loads(latest.read_text())
    injected = [c for c in nb['cells'] if 'injected-parameters' in c['metadata'].get('tags', [])]
    assert injected and 'n = 12' in ''.join(injected[0]['source']) and 'from-params' in ''.join(injected[0]['source'])
    runs = [p for p in (square_project/'runs/square').glob('*.ipynb') if p.name != 'latest.ipynb']
    assert len(runs) == 1 and runs[0].read_text() == latest.read_text()
    from mlops_nb.runner import read_scraps
    assert read_scraps(latest) == {'square': 144, 'label': 'from-params'}
    assert 'square: 144' in r.stdout

GLUED = {'cells': [
    {'cell_type': 'code', 'metadata': {'tags': ['parameters']}, 'source': 'n = 1\n', 'outputs': [], 'execution_count': None},
    *[{'cell_type': 'markdown', 'metadata': {}, 'source': f'step {i}'} for i in range(10)],
    {'cell_type': 'code', 'metadata': {}, 'source': 'import sys\nfrom mlops_nb.runner import glue\n'
     'glue("square", n*n)\nglue("label", "a <b>")\nglue("per_class", {"0": [1, 0.5]})\n'
     'from IPython.display import HTML\nglue("table", HTML("<b>t</b>"), encoder="display")\n'
     'print(sorted(m for m in ("scrapbook", "papermill", "pandas") if m in sys.modules))\n', 'outputs': [], 'execution_count': None}],
    'metadata': {'kernelspec': {'name': 'python3', 'language': 'python', 'display_name': 'python3'}}, 'nbformat': 4, 'nbformat_minor': 4}

def test_glue_is_scrapbook_format_without_scrapbook_in_the_kernel(project):
    """Results glued with `mlops_nb.runner.glue` read back with scrapbook itself; the kernel never imports scrapbook,
    papermill or pandas; the executed notebook records its source as a path and is written a few times, not per cell."""
    (project/'nbs').mkdir()
    (project/'nbs/16_glued.ipynb').write_text(json.dumps(GLUED))
    saves = project/'saves.log'
    code = ('import sys, papermill.iorw as io, papermill.engines as en, papermill.execute as ex\n'
            f'_w = io.write_ipynb\ndef w(nb, path):\n    open({str(saves)!r}, "a").write("x")\n    _w(nb, path)\n'
            'en.write_ipynb = ex.write_ipynb = io.write_ipynb = w\n'
            'from mlops_nb.cli import main\nsys.exit(main(["run", "glued", "--sample", "-p", "n=5"]))')
    r = subprocess.run([sys.executable, '-c', code], cwd=project, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert 'square: 25' in r.stdout and 'label: a <b>' in r.stdout
    latest = project/'runs/glued/latest.ipynb'
    import scrapbook as sb
    scraps = sb.read_notebook(str(latest)).scraps
    assert {k: s.data for k,s in scraps.items() if s.data is not None} == {'square': 25, 'label': 'a <b>', 'per_class': {'0': [1, 0.5]}}
    assert 'text/html' in scraps['table'].display['data']
    from mlops_nb.runner import read_scraps
    assert read_scraps(latest) == {'square': 25, 'label': 'a <b>', 'per_class': {'0': [1, 0.5]}}
    nb = json.loads(latest.read_text())
    printed = [''.join(o.get('text', '')) for c in nb['cells'] for o in c.get('outputs', [])]
    assert '[]\n' in printed, printed
    assert nb['metadata']['papermill']['input_path'] == str(project.resolve()/'nbs/16_glued.ipynb')
    # at the start, at the end (the engine), and papermill's own final write: not twice per cell (24 for 12 cells)
    assert len(saves.read_text()) <= 4, len(saves.read_text())

def test_failing_stage_exits_1_and_keeps_notebook(square_project):
    r = cli('run', 'square', '-p', 'n=-4')
    assert r.returncode == 1
    err = r.stderr.strip().splitlines()[-1]   # progress lines before it, then one error line
    assert err.startswith('mlops-nb run: error: stage square failed in cell') and 'n must be >= 0, got -4' in err, r.stderr
    assert 'Traceback' not in r.stderr
    kept = [p for p in (square_project/'runs/square').glob('*.ipynb')]   # under its run id; latest.ipynb only on success
    assert [p.name for p in kept] != ['latest.ipynb'] and len(kept) == 1 and 'n must be >= 0' in kept[0].read_text()

@pytest.mark.parametrize('args,msg', [
    (['run', 'nosuchstage'], "unknown stage 'nosuchstage'"),
    (['run', 'square', '-p', 'n'], 'has no "="'),
    (['run', 'square', '-p', 'm=1'], "stage square has no parameter 'm'"),
    (['run', 'square', '-p', 'api_token=abc'], 'looks like a secret'),
    (['run', 'square', '--params', 'missing.yaml'], 'not found'),
    (['run', 'square', '--params', 'bad.yaml'], 'is not valid YAML'),
    (['frobnicate'], "unknown command 'frobnicate'"),
])
def test_bad_input_exit_2_one_line_nothing_written(square_project, args, msg):
    (square_project/'bad.yaml').write_text('square: [1,\n')
    r = cli(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert msg in r.stderr and 'Traceback' not in r.stderr
    if args[0] == 'run': assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (square_project/'runs').exists()

def test_secret_value_never_reaches_executed_notebook(square_project):
    tok = 'tok-' + 'a1b2c3d4e5f6' * 2
    r = cli('run', 'square', '-p', f'label={tok}', env={'LABEL_STUDIO_API_KEY': tok})
    assert r.returncode == 2 and 'holds the value of a secret' in r.stderr
    assert not (square_project/'runs').exists()

def test_sync_check_names_drifted_module(source_tree, tmp_path):
    "An edited-but-unsynced mlops_nb/*.py makes the test command's sync check fail, naming the file."
    work = tmp_path/'src'
    work.mkdir()
    for p in ('settings.ini', 'setup.py'): shutil.copy(source_tree/p, work/p)
    for p in ('nbs', 'mlops_nb', '.ci'): shutil.copytree(source_tree/p, work/p, ignore=shutil.ignore_patterns('__pycache__'))
    venv = tmp_path/'venv'; (venv/'bin').mkdir(parents=True)
    for tool in ('nbdev_clean', 'nbdev_export', 'mlops-nb'): (venv/'bin'/tool).symlink_to(Path(sys.executable).parent/tool)
    env = {**os.environ, 'VENV': str(venv)}
    ok = subprocess.run(['bash', str(work/'.ci/check_sync.sh')], cwd=work, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    core = work/'mlops_nb/core.py'
    core.write_text(core.read_text() + '\ndef hand_edit(): return 1\n')
    bad = subprocess.run(['bash', str(work/'.ci/check_sync.sh')], cwd=work, env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and 'mlops_nb/core.py' in bad.stdout, bad.stdout
    assert 'hand_edit' in core.read_text(), 'the check must never overwrite a hand edit'

def test_every_parameters_cell_parses_for_papermill(project, caplog):
    "papermill must understand every line of each stage's parameters cell (else it warns and the docs of `--help` are lost)."
    import logging, papermill as pm
    from mlops_nb.runner import stage_notebooks, notebook_parameters
    caplog.set_level(logging.WARNING, logger='papermill')
    for stage,nb in stage_notebooks().items():
        found = pm.inspect_notebook(str(nb))
        assert set(found) == set(notebook_parameters(nb)), stage
    bad = [r.getMessage() for r in caplog.records if 'Unable to parse' in r.getMessage()]
    assert not bad, bad
