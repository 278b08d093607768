"""The secrets pre-commit hook, through real `git commit`s in a repository set up by `mlops-nb hooks`."""
import hashlib, os, subprocess
from pathlib import Path
from conftest import cli, git

SECRET = 'lsk-hook-test-value-8841'

def commit(repo, *args, env=None):
    e = {**os.environ, **(env or {})}
    return subprocess.run(['git', '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '-q', *args],
                          cwd=repo, capture_output=True, text=True, env=e)

def test_commit_holding_a_secret_is_refused_with_the_fix(project):
    (project/'.gitconfig').write_text('[merge "nbdev-merge"]\n\tdriver = nbdev_merge %O %A %B %P\n')
    r = cli('hooks', cwd=project)
    assert r.returncode == 0, r.stderr
    assert git(project, 'config', '--get', 'include.path').strip() == '../.gitconfig'
    # what `dvc exp run -S train.seed=$LABEL_STUDIO_API_KEY` leaves behind
    (project/'params.yaml').write_text(f'train:\n  seed: {SECRET}\n')
    head = git(project, 'rev-parse', 'HEAD')
    r = commit(project, '-am', 'oops', env={'LABEL_STUDIO_API_KEY': SECRET})
    assert r.returncode == 1, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'params.yaml holds the value of $LABEL_STUDIO_API_KEY' in lines[0], r.stderr
    assert 'git restore --staged --worktree params.yaml' in lines[0] and SECRET not in r.stderr
    assert git(project, 'rev-parse', 'HEAD') == head
    # the token file of the local Label Studio counts too, without any environment variable
    (project/'.labelstudio').mkdir(); (project/'.labelstudio/token').write_text(SECRET + '\n')
    r = commit(project, '-am', 'oops again')
    assert r.returncode == 1 and '.labelstudio/token' in r.stderr, r.stderr
    # restored as the message says: the commit goes through
    subprocess.run(['git', 'restore', '--staged', '--worktree', 'params.yaml'], cwd=project, check=True)
    (project/'notes.md').write_text('no secrets here\n'); git(project, 'add', 'notes.md')
    r = commit(project, '-m', 'fine', env={'LABEL_STUDIO_API_KEY': SECRET})
    assert r.returncode == 0, r.stderr
    assert SECRET not in git(project, 'log', '-p', '--all')

def test_someone_elses_hook_is_left_alone(project):
    hook = project/'.git/hooks/pre-commit'
    hook.write_text('#!/bin/sh\nexit 0\n'); hook.chmod(0o755)
    before = hashlib.sha256(hook.read_bytes()).hexdigest()
    r = cli('hooks', cwd=project)
    assert r.returncode == 0 and 'is not ours: left alone' in r.stderr, r.stderr
    assert hashlib.sha256(hook.read_bytes()).hexdigest() == before
