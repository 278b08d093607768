"""The pull-request commands against a loopback fake GitHub API and a bare git origin: one report comment created,
then updated, never duplicated; the pipeline state committed back to the pull request's branch with the token kept
out of .git/config, CI dispatched on it, and nothing at all on a second run; `check-lock` on a real DVC project."""
import json, os, subprocess
from pathlib import Path
import pytest
from conftest import cli, git
from fake_github import FakeGitHub

TOKEN = 'ghs_fake_token_for_tests_123456'

@pytest.fixture
def github():
    gh = FakeGitHub(TOKEN); yield gh; gh.close()

def gh_env(gh, **kw):
    return {'GITHUB_REPOSITORY': gh.repo, 'GITHUB_TOKEN': TOKEN, 'GITHUB_API_URL': gh.url,
            'GITHUB_SERVER_URL': 'https://github.example', **kw}

def test_pr_comment_created_then_updated_never_duplicated(project, github, tmp_path):
    (project/'reports').mkdir(); (project/'plots').mkdir()
    (project/'plots/confusion.png').write_bytes(b'\x89PNG fake')
    git(project, 'add', 'plots'); git(project, 'commit', '-qm', 'plots')
    report = project/'reports/compare.md'
    report.write_text('# Candidate vs champion\n\n![confusion](../plots/confusion.png)\n![gallery](mistakes.png)\n')
    event = tmp_path/'event.json'; event.write_text(json.dumps({'pull_request': {'number': 7}}))
    for i in range(120): github.comments.setdefault(7, []).append({'id': i, 'body': f'someone else {i}'})
    env = gh_env(github, GITHUB_EVENT_PATH=str(event))
    r = cli('pr-comment', cwd=project, env=env)
    assert r.returncode == 0 and 'report comment created on #7' in r.stdout, r.stdout + r.stderr
    ours = [c for c in github.comments[7] if c['body'].startswith('<!-- mlops-nb')]
    assert len(ours) == 1
    sha = git(project, 'rev-parse', 'HEAD').strip()
    assert f'![confusion](https://github.example/{github.repo}/raw/{sha}/plots/confusion.png)' in ours[0]['body']
    assert '`reports/mistakes.png` is not committed' in ours[0]['body']
    assert cli('pr-comment', cwd=project, env=env).stdout.strip().endswith('unchanged on #7')
    report.write_text('# Candidate vs champion\n\nnew numbers\n')
    r = cli('pr-comment', '--pr', '7', cwd=project, env=env)
    assert r.returncode == 0 and 'updated on #7' in r.stdout, r.stdout + r.stderr
    assert [c['body'] for c in github.comments[7] if c['body'].startswith('<!-- mlops-nb')] == \
           ['<!-- mlops-nb: pipeline report -->\n# Candidate vs champion\n\nnew numbers\n']
    assert len(github.comments[7]) == 121
    assert all(h.get('Authorization') == f'token {TOKEN}' for *_,h in github.requests)

def test_pr_comment_errors_are_one_line(project, github):
    r = cli('pr-comment', '--pr', '3', cwd=project, env={'GITHUB_TOKEN': '', 'GITHUB_REPOSITORY': 'a/b'})
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and 'GITHUB_TOKEN is not set' in r.stderr, r.stderr
    (project/'reports').mkdir(); (project/'reports/compare.md').write_text('x\n')
    r = cli('pr-comment', '--pr', '3', cwd=project, env={**gh_env(github), 'GITHUB_TOKEN': 'wrong-token-xyz'})
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and 'answered 401' in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr and 'wrong-token-xyz' not in r.stderr

def test_pr_commit_pushes_the_state_once_and_dispatches_ci(tmp_path, github):
    origin = tmp_path/'origin.git'
    subprocess.run(['git', 'init', '-q', '--bare', '-b', 'main', str(origin)], check=True)
    seed = tmp_path/'seed'; seed.mkdir()
    git(seed, 'init', '-q', '-b', 'main'); (seed/'params.yaml').write_text('{}\n'); (seed/'dvc.lock').write_text('schema: 2.0\n')
    git(seed, 'add', '.'); git(seed, 'commit', '-qm', 'init'); git(seed, 'remote', 'add', 'origin', str(origin))
    git(seed, 'push', '-q', 'origin', 'main'); git(seed, 'push', '-q', 'origin', 'main:feature')
    work = tmp_path/'work'
    subprocess.run(['git', 'clone', '-q', '-b', 'feature', str(origin), str(work)], check=True)
    main_before = git(origin, 'rev-parse', 'main')
    (work/'dvc.lock').write_text('schema: 2.0\nstages: {}\n'); (work/'metrics').mkdir(); (work/'metrics/train.json').write_text('{"acc": 1}\n')
    (work/'scratch.txt').write_text('not pipeline state\n')
    env = gh_env(github, GITHUB_HEAD_REF='feature')
    r = cli('pr-commit', cwd=work, env=env)
    assert r.returncode == 0 and 'pushed' in r.stdout and 'dispatched ci.yml on feature' in r.stdout, r.stdout + r.stderr
    assert git(origin, 'rev-parse', 'feature') == git(work, 'rev-parse', 'HEAD')
    assert sorted(git(origin, 'show', '--name-only', '--format=', 'feature').split()) == ['dvc.lock', 'metrics/train.json']
    assert git(origin, 'rev-parse', 'main') == main_before, 'the default branch must never move'
    assert github.dispatches == [('ci.yml', {'ref': 'feature'})]
    assert TOKEN not in (work/'.git/config').read_text()
    # the job run again on its own commit: nothing to commit, no push, no call
    calls = len(github.requests)
    r = cli('pr-commit', cwd=work, env=env)
    assert r.returncode == 0 and 'nothing to commit' in r.stdout, r.stdout
    assert len(github.requests) == calls and git(origin, 'rev-parse', 'feature') == git(work, 'rev-parse', 'HEAD')

def test_check_lock_names_stale_stages(project):
    (project/'prepare.py').write_text('open("out.json", "w").write(open("in.txt").read())\n')
    (project/'in.txt').write_text('1\n'); (project/'params.yaml').write_text('prepare:\n  n: 1\n')
    (project/'dvc.yaml').write_text('stages:\n  prepare:\n    cmd: python prepare.py\n    deps: [prepare.py, in.txt]\n'
                                    '    params: [prepare.n]\n    metrics:\n      - out.json:\n          cache: false\n')
    dvc = lambda *a: subprocess.run([str(Path(os.sys.executable).parent/'dvc'), *a], cwd=project, capture_output=True, text=True)
    assert dvc('init', '-q').returncode == 0
    assert dvc('repro').returncode == 0
    git(project, 'add', '-A'); git(project, 'commit', '-qm', 'pipeline')
    r = cli('check-lock', cwd=project)
    assert r.returncode == 0 and 'matches the tree' in r.stdout, r.stdout + r.stderr
    (project/'prepare.py').write_text('open("out.json", "w").write("2")\n')
    (project/'params.yaml').write_text('prepare:\n  n: 2\n')
    r = cli('check-lock', cwd=project)
    assert r.returncode == 1, r.stdout
    assert 'stage prepare is stale: dependency prepare.py (modified); param prepare.n (modified)' in r.stdout, r.stdout
    git(project, 'checkout', '--', 'prepare.py', 'params.yaml')
    (project/'out.json').write_text('tampered\n')
    r = cli('check-lock', cwd=project)
    assert r.returncode == 1 and 'output out.json (modified)' in r.stdout, r.stdout
