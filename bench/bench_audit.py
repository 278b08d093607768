"""The label audit (`audit@<project>`, nbs/35_audit.ipynb) on digits, against a throwaway Label Studio:

1,000 unique digits uploaded and annotated correctly, then 5 % of the annotations flipped to another class through the
Label Studio API (seeded), the project exported and built by the pipeline's own stage functions, and audited with the
defaults (5 folds, 5 epochs each, the demo's train settings: cnn, 16 px, bs 32, lr 0.01); then another 5 % flipped
(10 % in all) and the same again. Reported, side by side in one run:
  - precision and recall of the flagged set against the flips (goal: both >= 0.8 at 5 % noise);
  - the audit's wall time against one training run of the demo's settings (15 epochs) on the same dataset;
  - the value of a review: benchmark accuracy (300 clean held-out digits) of a model trained on the noisy pool against
    one trained on the same pool with every flagged label replaced by the audit's suggestion.

Usage: python bench/bench_audit.py [N_POOL]
"""
import os, random, secrets, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent/'tests'))
from _common import row, record

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
N_BENCH, SIZE = 300, 16
TRAIN = {'arch': 'cnn', 'size': SIZE, 'bs': 32, 'lr': 0.01}

def flip(srv, pid:int, tasks:list, share:float, already:set, seed:int)->set:
    "Flip `share` of the tasks' annotations (not already flipped) to another digit through the API; their task ids."
    from mlops_nb.labelstudio import choice_result
    rng = random.Random(seed)
    pick = rng.sample([t for t in tasks if t['id'] not in already], round(share*len(tasks)))
    for t in pick:
        other = rng.choice([d for d in '0123456789' if d != t['label']])
        srv.client.annotations.update(id=t['annotation'], result=choice_result(other))
    return {t['id'] for t in pick}

def build(key:str):
    "Export + dataset through the stage functions (the refresh's path)."
    from mlops_nb.dataset import build_dataset
    from mlops_nb.labelstudio import export_project
    from mlops_nb.params import build_params
    export_project(build_params('labelstudio', {'project': key, 'force': True}, name=key))
    build_dataset(build_params('dataset', {'benchmark': ''}, name=key))

def train_on(rows:list, folder, out:Path)->Path:
    "Train the demo's model on `rows` of `folder` (labels as given); the model folder."
    from mlops_nb.folder import write_dataset_folder
    from mlops_nb.params import build_params
    from mlops_nb.train import train_model
    images = {r['file']: (folder.path/r['file']).read_bytes() for r in rows}
    write_dataset_folder(out/'ds', rows, images, {**folder.meta, 'classes': folder.classes})
    train_model(build_params('train', {**TRAIN, 'epochs': 15, 'dataset': str(out/'ds'), 'out': str(out/'model'),
                                       'live_dir': str(out/'live'), 'metrics_fp': ''}))
    return out/'model'

def accuracy(model:Path, bench:list)->float:
    from mlops_nb.predict import predict
    p = predict(model, [png for png,_ in bench])
    return sum(a == b for a,(_,b) in zip(p.labels, bench))/len(bench)

def audit_round(noise:int, flipped:set, bench:list, tmp:Path)->list:
    "Build, time one training run and the audit, score the flags, and the value of fixing them."
    from mlops_nb.audit import audit_labels
    from mlops_nb.folder import DatasetFolder
    from mlops_nb.params import build_params
    build('pool')
    folder = DatasetFolder.read(tmp/'data/datasets/pool')
    t0 = time.time(); noisy = train_on(folder.rows, folder, tmp/f'noisy-{noise}'); t_train = time.time()-t0
    res = audit_labels(build_params('audit', {'budget': N}, name='pool'), TRAIN)
    got = {int(f['task_id']) for f in res.record['flagged']}
    tp = len(got & flipped)
    prec,rec = tp/max(1, len(got)),tp/len(flipped)
    fix = {f['task_id']: f['suggested'] for f in res.record['flagged']}
    fixed_rows = [{**r, 'label': fix.get(r['task_id'], r['label'])} for r in folder.rows]
    fixed = train_on(fixed_rows, folder, tmp/f'fixed-{noise}')
    a_noisy,a_fixed = accuracy(noisy, bench),accuracy(fixed, bench)
    ok = None if noise != 5 else prec >= 0.8
    return [row(f'{noise} % flipped: flagged / flipped', f'{len(got)} / {len(flipped)}'),
            row(f'{noise} % flipped: precision of the flags', prec, '', '>= 0.8 at 5 %', ok),
            row(f'{noise} % flipped: recall of the flips', rec, '', '>= 0.8 at 5 %', None if noise != 5 else rec >= 0.8),
            row(f'{noise} % flipped: audit time / one training run', res.seconds/t_train, 'x'),
            row(f'{noise} % flipped: audit, one training run', f'{res.seconds:.1f} s, {t_train:.1f} s'),
            row(f'{noise} % flipped: benchmark accuracy, trained on the noisy pool', a_noisy),
            row(f'{noise} % flipped: benchmark accuracy, flagged labels fixed by their suggestion', a_fixed),
            row(f'{noise} % flipped: accuracy gained by the review', a_fixed - a_noisy)]

def main():
    import fixtures_labelstudio as F
    from mlops_nb.core import digit_png
    from mlops_nb.labelstudio_server import demo_indices
    tmp = Path(tempfile.mkdtemp(prefix='bench-audit-'))
    os.environ.update(MLOPS_PROGRESS='plain', MLOPS_NB_ROOT=str(tmp))
    token = secrets.token_hex(20)
    proc,url,_ = F.start_server(tmp/'ls', token)
    try:
        os.environ.update(LABEL_STUDIO_URL=url, LABEL_STUDIO_API_KEY=token)
        srv = F.LabelStudioServer(url=url, token=token, proc=proc, data_dir=tmp, log=tmp/'log')
        pool,bench_idx = demo_indices(N, N_BENCH, size=SIZE)
        p = srv.make_project('pool')
        pngs = [digit_png(i, SIZE) for i in pool]
        urls = srv.upload(p.id, {f'{i}.png': png for i,(png,_) in zip(pool, pngs)})
        ids = srv.import_tasks(p.id, [{'data': {'image': u}, 'annotations': [l]} for u,(_,l) in zip(urls, pngs)])
        anns = {t.id: t for t in srv.client.tasks.list(project=p.id, fields='all')}
        first = lambda t: t.annotations[0]['id'] if isinstance(t.annotations[0], dict) else t.annotations[0].id
        tasks = [{'id': i, 'label': l, 'annotation': first(anns[i])} for i,(_,l) in zip(ids, pngs)]
        bench = [digit_png(i, SIZE) for i in bench_idx]
        build('pool')  # warm-up: imports and the first training's one-time costs are not measured
        from mlops_nb.folder import DatasetFolder
        warm = DatasetFolder.read(tmp/'data/datasets/pool')
        train_on(warm.rows[:200], warm, tmp/'warm-up')
        rows,flipped = [],set()
        for noise in (5, 10):
            flipped |= flip(srv, p.id, tasks, 0.05, flipped, seed=noise)
            rows += audit_round(noise, flipped, bench, tmp)
        record('audit', rows)
    finally: F.stop_process(proc)

if __name__ == '__main__': main()
