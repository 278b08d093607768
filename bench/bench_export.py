"""Label Studio export of a 5,000-task project on a local server (tasks with dummy http image URLs, 60 % annotated,
some cancelled), measured alternately in one run (best of N):
  - full `export_project(force=True)` (connect, find the project, fingerprint, snapshot, poll, download, normalize, write
    export + meta atomically, delete the older snapshot) vs the raw SDK call sequence alone (exports.create, poll
    exports.get every 0.5 s like export_project does, exports.download) — ratio;
  - the no-change re-sync: `export_project` when nothing changed (fingerprint, compare, no snapshot), and the runner's
    skip check `mlops_nb.labelstudio.skip_reason` (plain HTTP, no SDK import) vs a full export. Target <= 5 %.

Usage: python bench/bench_export.py [N_TASKS] [REPEATS]
"""
import json, os, shutil, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _common import row, record
import _demo

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
REPEATS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
POLL = 0.5

def tasks(n:int)->list[dict]:
    "n tasks with dummy image URLs: 60 % with one annotation, 1 in 20 of those cancelled."
    from mlops_nb.labelstudio import choice_result
    out = []
    for i in range(n):
        t = {'data': {'image': f'http://images.example.invalid/digits/{i:05d}.png'}}
        if i % 5 < 3:
            cancelled = i % 20 == 0
            t['annotations'] = [{'result': [] if cancelled else choice_result(str(i % 10)), 'was_cancelled': cancelled}]
        out.append(t)
    return out

def raw_snapshot(client, pid:int)->bytes:
    "The plain SDK sequence: create a snapshot, poll until completed, download it."
    ex = client.projects.exports
    snap = ex.create(id=pid, title='raw bench', annotation_filter_options={'usual': True, 'ground_truth': True, 'skipped': True})
    while snap.status != 'completed':
        if snap.status == 'failed': raise RuntimeError('snapshot failed')
        time.sleep(POLL)
        snap = ex.get(id=pid, export_pk=snap.id)
    data = b''.join(ex.download(id=pid, export_pk=snap.id, export_type='JSON', request_options={'chunk_size': 1 << 20}))
    ex.delete(id=pid, export_pk=snap.id)   # not timed in spirit, but cheap; keeps the server's export list short
    return data

def main():
    tmp = Path(tempfile.mkdtemp(prefix='bench-export-'))
    try:
        root = tmp/'proj'; root.mkdir(); (root/'params.yaml').write_text('{}\n')
        os.environ['MLOPS_NB_ROOT'] = str(root)
        with _demo.labelstudio(root, seed=False) as (info, times):
            from mlops_nb.labelstudio import connect, export_project, skip_reason, DIGITS_CONFIG
            from mlops_nb.params import LabelstudioParams
            conn = connect()
            client = conn.client
            p = client.projects.create(title='bench-export', label_config=DIGITS_CONFIG)
            t = time.perf_counter()
            batch = tasks(N)
            for i in range(0, N, 1000):
                client.projects.import_tasks(id=p.id, request=batch[i:i+1000], return_task_ids=False)
            import_s = time.perf_counter() - t
            print(f'imported {N} tasks in {import_s:.1f}s', flush=True)
            out = root/'data'/'raw_labels'/'bench.json'
            full,raw,nochange,skip = [],[],[],[]
            for _ in range(REPEATS):   # alternate, so load changes on the shared machine hit every variant
                t = time.perf_counter(); r = export_project(LabelstudioParams(project=p.id, out=out, force=True, full=True)); full.append(time.perf_counter() - t)
                assert r.counts['tasks'] == N, r.counts
                t = time.perf_counter(); data = raw_snapshot(client, p.id); raw.append(time.perf_counter() - t)
                assert len(json.loads(data)) == N
                t = time.perf_counter(); r = export_project(LabelstudioParams(project=p.id, out=out)); nochange.append(time.perf_counter() - t)
                assert r.snapshot_id is None, 'unchanged project was exported again'
                t = time.perf_counter(); why = skip_reason(p.id, out); skip.append(time.perf_counter() - t)
                assert why, 'skip_reason did not see the project as unchanged'
            size_mb = out.stat().st_size/1e6
        f,rw,nc,sk = min(full),min(raw),min(nochange),min(skip)
        record('export', [
            row(f'bulk import of {N} tasks (60 % annotated), 1,000 per request', import_s, 's'),
            row(f'raw SDK snapshot: create + poll ({POLL} s) + download', rw, 's'),
            row('export_project, full (force)', f, 's'),
            row('  ratio full export_project / raw SDK snapshot', f/rw, 'x'),
            row('no-change re-sync: export_project (unchanged)', nc, 's'),
            row('  as share of a full export', 100*nc/f, '%', '<= 5 %', nc/f <= 0.05),
            row('runner skip check: labelstudio.skip_reason', sk, 's'),
            row('  as share of a full export', 100*sk/f, '%', '<= 5 %', sk/f <= 0.05),
            row('export file size', size_mb, 'MB'),
        ], n_tasks=N, repeats=REPEATS, poll_s=POLL,
           all_times={'full': [round(x, 3) for x in full], 'raw': [round(x, 3) for x in raw],
                      'nochange': [round(x, 3) for x in nochange], 'skip_reason': [round(x, 3) for x in skip]})
    finally:
        os.environ.pop('MLOPS_NB_ROOT', None)
        shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__': main()
