"""GitHub workflows, audited statically: zizmor (default and auditor personas), actionlint, and the project's own
rules (make-only run steps, actions pinned to commits, least privilege per job, secrets only through environments,
a self-hosted job reachable from a pull request only behind all three gates). A deliberately unsafe fixture workflow
must fail every one of them, so the audits cannot pass by checking nothing.

zizmor and actionlint run from their own hash-pinned venv (`.ci/env.sh audit`, `MLOPS_AUDIT_VENV`); both ship a
static binary and run offline."""
import json, os, re, subprocess
from pathlib import Path
import pytest, yaml

UNSAFE = Path(__file__).parent/'data/workflows/unsafe.yml'
AUDIT_VENV = os.environ.get('MLOPS_AUDIT_VENV')

def workflows(source_tree):
    return sorted((source_tree/'.github/workflows').glob('*.yml'))

def make_targets(source_tree):
    return set(re.findall(r'^([a-zA-Z][\w-]*):', (source_tree/'Makefile').read_text(), re.M))

def triggers(doc)->dict:
    on = doc.get(True, doc.get('on'))   # YAML 1.1 reads the key `on` as True
    return {on: None} if isinstance(on, str) else dict.fromkeys(on) if isinstance(on, list) else dict(on or {})

def gated(job)->bool:
    "A job a pull request can reach only from this repository, with the `train` label, behind an environment."
    cond = str(job.get('if', ''))
    return ('head.repo.full_name == github.repository' in cond and "labels.*.name, 'train'" in cond
            and bool(job.get('environment')))

def step_problems(wf, name, step, targets)->list[str]:
    out = []
    if 'uses' in step:
        if not re.fullmatch(r'[\w.-]+/[\w.-]+@[0-9a-f]{40}', step['uses']): out.append(f'{wf}/{name}: {step["uses"]} is not pinned to a commit')
        if step['uses'].startswith('actions/checkout@') and (step.get('with') or {}).get('persist-credentials') is not False:
            out.append(f'{wf}/{name}: checkout keeps the token in .git/config (persist-credentials: false)')
    if 'run' in step:
        cmd = step['run'].strip()
        if not re.fullmatch(r'make( [\w-]+)+', cmd): out.append(f'{wf}/{name}: run step does more than call make: {cmd!r}')
        elif missing := set(cmd.split()[1:]) - targets: out.append(f'{wf}/{name}: unknown make targets {missing}')
        if '${{' in cmd: out.append(f'{wf}/{name}: expression inside run: {cmd!r}')
    return out

def job_problems(wf, name, job, on, targets)->list[str]:
    out = []
    if 'timeout-minutes' not in job: out.append(f'{wf}/{name}: no timeout')
    if not isinstance(job.get('permissions'), dict): out.append(f'{wf}/{name}: no job-level permissions')
    reachable = {'pull_request', 'pull_request_target'} & set(on)
    if reachable and 'self-hosted' in str(job['runs-on']) and not gated(job):
        out.append(f'{wf}/{name}: self-hosted runner reachable from a pull request without the three gates')
    if 'secrets.' in json.dumps(job.get('steps', [])) and not job.get('environment'):
        out.append(f'{wf}/{name}: secrets used outside an environment')
    for step in job.get('steps', []): out += step_problems(wf, name, step, targets)
    return out

def workflow_problems(path:Path, targets:set)->list[str]:
    "Every rule of ours that `path` breaks."
    doc,wf = yaml.safe_load(path.read_text()),path.name
    on,out = triggers(doc),[]
    if not on: out.append(f'{wf}: no triggers')
    if 'pull_request_target' in on: out.append(f'{wf}: pull_request_target runs pull-request code with the base repository secrets')
    if doc.get('permissions') != {}: out.append(f'{wf}: workflow-level permissions must be {{}} (grant them per job)')
    if 'secrets.' in json.dumps(doc.get('env', {})): out.append(f'{wf}: secrets at workflow level')
    for name,job in doc['jobs'].items(): out += job_problems(wf, name, job, on, targets)
    return out

def test_there_are_workflows(source_tree):
    assert {p.name for p in workflows(source_tree)} == {'ci.yml', 'model.yml', 'refresh.yml', 'benchmark.yml', 'image.yml'}

def test_workflow_rules(source_tree):
    targets = make_targets(source_tree)
    problems = [p for wf in workflows(source_tree) for p in workflow_problems(wf, targets)]
    assert problems == [], '\n'.join(problems)

def test_unsafe_fixture_breaks_our_rules(source_tree):
    problems = '\n'.join(workflow_problems(UNSAFE, make_targets(source_tree)))
    for expected in ('pull_request_target', 'self-hosted runner reachable from a pull request', 'secrets at workflow level',
                     'not pinned', 'persist-credentials', 'expression inside run', 'workflow-level permissions'):
        assert expected in problems, f'{expected!r} not found in:\n{problems}'

def test_refresh_cannot_trigger_itself(source_tree):
    on = triggers(yaml.safe_load((source_tree/'.github/workflows/refresh.yml').read_text()))
    assert set(on) == {'schedule', 'workflow_dispatch', 'repository_dispatch'}, on
    assert on['repository_dispatch'] == {'types': ['labelstudio-changed']}

def test_secrets_only_from_github_secrets(source_tree):
    for wf in workflows(source_tree):
        text = wf.read_text()
        for m in re.finditer(r'(LABEL_STUDIO_API_KEY|AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|REFRESH_APP_PRIVATE_KEY):\s*(.+)', text):
            assert m.group(2).strip().startswith('${{ secrets.'), f'{wf.name}: {m.group(1)} must come from secrets'

def audit_tool(name)->Path:
    if not AUDIT_VENV: pytest.fail('MLOPS_AUDIT_VENV is not set: run through make test (it builds .ci/env.sh audit)')
    return Path(AUDIT_VENV)/'bin'/name

def zizmor(*args, cwd):
    r = subprocess.run([str(audit_tool('zizmor')), '--offline', '--format', 'json', *args], cwd=cwd, capture_output=True, text=True)
    return r.returncode, {f['ident'] for f in json.loads(r.stdout or '[]')}

def test_zizmor_default_persona_finds_nothing(source_tree):
    rc,found = zizmor('.github/workflows', cwd=source_tree)
    assert rc == 0 and not found, found

def test_zizmor_auditor_persona_no_permission_or_secret_findings(source_tree):
    rc,found = zizmor('--persona=auditor', '.github/workflows', cwd=source_tree)
    assert not found & {'excessive-permissions', 'secrets-outside-env', 'artipacked', 'template-injection',
                        'dangerous-triggers', 'unpinned-uses', 'github-app'}, found

def test_zizmor_rejects_the_unsafe_fixture(source_tree):
    rc,found = zizmor('--persona=auditor', str(UNSAFE), cwd=source_tree)
    assert rc != 0
    assert {'dangerous-triggers', 'template-injection', 'excessive-permissions', 'unpinned-uses', 'artipacked'} <= found, found

def actionlint(*paths, cwd):
    return subprocess.run([str(audit_tool('actionlint')), '-config-file', '.github/actionlint.yaml', *map(str, paths)],
                          cwd=cwd, capture_output=True, text=True)

def test_actionlint_clean(source_tree):
    r = actionlint(*[p.relative_to(source_tree) for p in workflows(source_tree)], cwd=source_tree)
    assert r.returncode == 0, r.stdout + r.stderr

def test_actionlint_rejects_the_unsafe_fixture(source_tree):
    r = actionlint(UNSAFE, cwd=source_tree)
    assert r.returncode == 1 and 'github.event.pull_request.title' in r.stdout, r.stdout + r.stderr

def test_pull_requests_gate_and_main_does_not(source_tree):
    "Compare records the verdict; the pull-request job turns it into a failure with `make gate`, after the report."
    def runs(name):
        doc = yaml.safe_load((source_tree/'.github/workflows'/name).read_text())
        return [s['run'].split() for job in doc['jobs'].values() for s in job['steps'] if 'run' in s]
    pr = runs('model.yml')
    assert ['make', 'gate'] in pr and pr.index(['make', 'gate']) > pr.index(['make', 'pr-comment'])
    assert not any('gate' in r for r in runs('benchmark.yml'))
    main = [t for r in runs('benchmark.yml') if r[0] == 'make' for t in r[1:]]
    assert main.index('suggest') > main.index('promote')  # labelers see the champion, once it is one

def test_only_main_pushes_the_image(source_tree):
    "Pull requests build and test the image with no write permission; only main's push job may write packages."
    def jobs(name): return yaml.safe_load((source_tree/'.github/workflows'/name).read_text())['jobs']
    image = jobs('image.yml')
    writers = {n for n,j in image.items() if j['permissions'].get('packages') == 'write'}
    assert writers == {'push'} and "github.event_name == 'push'" in image['push']['if']
    assert "github.event_name != 'push'" in image['test']['if']
    runs = lambda job: [s['run'] for s in job['steps'] if 'run' in s]
    assert runs(image['test']) == ['make image image-test'] and runs(image['push'])[-1] == 'make image-push'
    champion = jobs('benchmark.yml')['image']
    assert champion['needs'] == 'promote' and runs(champion) == ['make image-champion']
    ci = jobs('ci.yml')['test']
    assert ci['env']['IMAGE_TEST'] == 'skip'  # the image is image.yml's job on GitHub, not ci.yml's

def hadolint(path:Path, cwd:Path)->subprocess.CompletedProcess:
    return subprocess.run([str(audit_tool('hadolint')), '--config', str(cwd/'.hadolint.yaml'), '--no-color', str(path)],
                          cwd=cwd, capture_output=True, text=True)

def test_hadolint_clean_and_rejects_a_root_image(source_tree, tmp_path):
    "hadolint passes the Containerfile, and fails the same file ending as root with an unpinned pip install."
    assert hadolint(source_tree/'Containerfile', source_tree).returncode == 0
    bad = tmp_path/'Containerfile'
    bad.write_text((source_tree/'Containerfile').read_text() + 'USER root\nRUN pip install requests\n')
    r = hadolint(bad, source_tree)
    assert r.returncode == 1 and 'DL3002' in r.stdout and 'DL3013' in r.stdout, r.stdout
