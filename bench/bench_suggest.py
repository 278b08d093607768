"""Suggestions back to Label Studio (`mlops-nb suggest`), three figures, each side by side in one run:

1. **Labels saved** (in process, `train_model` with the demo's settings: cnn, 16 px, 15 epochs): scikit-learn's digits
   split into a benchmark (400 images), a fixed validation split (150, the same for every run, not counted) and a pool
   (1,100) whose labels are "bought" 100 at a time, 100 -> 600. From the same first 100 random labels, the next labels
   are taken in **uncertainty order** (lowest top-class probability of the current model, what the "Most uncertain
   first" view shows labelers) or in **random order**; 3 seeds. The label-saving ratio = labels random order needs at
   600 / labels uncertainty order needs to reach the same benchmark accuracy (linear between budgets). Goal >= 1.5x.
2. **Suggestion quality**: the random-order model at 600 labels suggests for the pool images whose labels it never
   saw (labels held back): the share a labeler would accept unchanged (= accuracy) and a reliability table by score.
3. **Push throughput** against a throwaway Label Studio: the SDK's bulk `projects.import_predictions` (what suggest
   uses, 500 per request) vs one `predictions.create` per task (the SDK tutorial's way), same 1,000 tasks and
   predictions: tasks/s of both; then the whole `suggest_project` on 1,000 and 5,000 tasks (images read from files by
   the dataset stage's reference rules, a random cnn predicting): tasks/s and peak traced Python memory, which must stay
   flat (5k/1k <= 1.5).

Usage: python bench/bench_suggest.py [SEEDS] [PUSH_TASKS]
"""
import os, secrets, sys, tempfile, time, tracemalloc
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent/'tests'))
from _common import row, record

SEEDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
PUSH = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
BUDGETS = [100, 200, 300, 400, 500, 600]
N_BENCH, N_VALID, N_POOL, SIZE = 400, 150, 1100, 16

def digits():
    "Disjoint unique digit indices (benchmark, valid, pool) and every image as 16 px PNG bytes with its label."
    from mlops_nb.core import digit_png
    from mlops_nb.labelstudio_server import demo_indices
    pool,bench = demo_indices(N_VALID + N_POOL, N_BENCH, size=SIZE)
    images = {i: digit_png(i, SIZE) for i in pool + bench}
    return bench, pool[:N_VALID], pool[N_VALID:], images

def train_on(work:Path, labeled:list, valid:list, images:dict, seed:int)->Path:
    "Write a dataset folder of `labeled` (train) + `valid`, train the demo's model on it; the model folder."
    from mlops_nb.core import sha256_bytes
    from mlops_nb.folder import write_dataset_folder
    from mlops_nb.params import build_params
    from mlops_nb.train import train_model
    rows,files = [],{}
    for split,idx in (('train', labeled), ('valid', valid)):
        for i in idx:
            png,label = images[i]
            sha = sha256_bytes(png)
            files[f'images/{sha}.png'] = png
            rows.append({'file': f'images/{sha}.png', 'label': label, 'split': split, 'task_id': i, 'annotation_id': i,
                         'sha256': sha})
    meta = {'name': 'al', 'mode': 'train', 'classes': sorted({r['label'] for r in rows}), 'export_sha256': '0'*64,
            'counts': {}, 'dropped': [], 'n_images': len(rows)}
    write_dataset_folder(work/'ds', rows, files, meta)
    p = build_params('train', dict(dataset=str(work/'ds'), out=str(work/'model'), live_dir=str(work/'live'),
                                   metrics_fp=str(work/'train.json'), arch='cnn', size=SIZE, epochs=15, bs=32, lr=0.01,
                                   seed=seed))
    train_model(p, device='cpu', threads=2)
    return work/'model'

def probs_of(model:Path, idx:list, images:dict):
    from mlops_nb.predict import predict
    return predict(model, [images[i][0] for i in idx])

def accuracy(model:Path, idx:list, images:dict)->float:
    p = probs_of(model, idx, images)
    return sum(l == images[i][1] for l,i in zip(p.labels, idx))/len(idx)

def curve(work:Path, order:str, first:list, pool:list, valid:list, bench:list, images:dict, seed:int)->dict:
    "budget -> benchmark accuracy, buying labels in `order` (uncertainty or random) after the same first 100."
    import random
    rng,labeled,out = random.Random(seed),list(first),{}
    for b in BUDGETS:
        if len(labeled) < b:
            rest = [i for i in pool if i not in set(labeled)]
            if order == 'random': labeled += rng.sample(rest, b - len(labeled))
            else:
                conf = probs_of(model, rest, images).confidences
                labeled += [i for _,i in sorted(zip(conf, rest))][:b - len(labeled)]
        model = train_on(work/f'{order}-{seed}-{b}', labeled, valid, images, seed)
        out[b] = accuracy(model, bench, images)
        print(f'  seed {seed} {order:<11} {b} labels: benchmark accuracy {out[b]:.3f}', flush=True)
    return out, model, labeled

def labels_needed(curve:dict, target:float)->float:
    "The budget where `curve` first reaches `target` (linear between budgets); inf when it never does."
    pts = sorted(curve.items())
    if pts[0][1] >= target: return float(pts[0][0])
    for (b0,a0),(b1,a1) in zip(pts, pts[1:]):
        if a1 >= target: return b0 + (b1-b0)*(target-a0)/(a1-a0)
    return float('inf')

def reliability(p, idx:list, images:dict)->list:
    "Rows per score bucket: suggestions, their accuracy, mean score."
    out = []
    for lo,hi in ((0, .5), (.5, .7), (.7, .9), (.9, 1.01)):
        sel = [(c, l == images[i][1]) for c,l,i in zip(p.confidences, p.labels, idx) if lo <= c < hi]
        if sel: out.append((f'{lo:.1f}-{min(hi, 1):.1f}', len(sel), sum(ok for _,ok in sel)/len(sel),
                            sum(c for c,_ in sel)/len(sel)))
    return out

def label_saving(tmp:Path)->list:
    import random
    os.environ.setdefault('MLOPS_PROGRESS', 'plain')
    bench,valid,pool,images = digits()
    curves = {'uncertainty': [], 'random': []}
    quality = None
    for seed in range(SEEDS):
        first = random.Random(1000+seed).sample(pool, BUDGETS[0])
        for order in curves:
            c,model,labeled = curve(tmp, order, first, pool, valid, bench, images, seed)
            curves[order].append(c)
            if order == 'random' and seed == 0:
                held = [i for i in pool if i not in set(labeled)]
                quality = (held, probs_of(model, held, images))
    mean = {o: {b: sum(c[b] for c in cs)/len(cs) for b in BUDGETS} for o,cs in curves.items()}
    top = BUDGETS[-1]
    need = labels_needed(mean['uncertainty'], mean['random'][top])
    ratio = top/need
    rows = [row(f'benchmark accuracy, {o} order, {b} labels (mean of {SEEDS} seeds)', mean[o][b])
            for o in curves for b in BUDGETS]
    rows += [row(f'labels uncertainty order needs for random order\'s accuracy at {top}', need, 'labels'),
             row('label-saving ratio (uncertainty order vs random order)', ratio, 'x', '>= 1.5', ratio >= 1.5)]
    held,p = quality
    acc = sum(l == images[i][1] for l,i in zip(p.labels, held))/len(held)
    rows.append(row(f'suggestions accepted unchanged ({len(held)} held-back pool images, model of 600 random labels)',
                    acc, 'share'))
    for bucket,n,a,s in reliability(p, held, images):
        rows.append(row(f'  score {bucket}: {n} suggestions, mean score {s:.3f}: accuracy', a, 'share'))
    return rows

def push_throughput(tmp:Path)->list:
    "Bulk import vs one create per task on 1,000 tasks; whole suggest_project on 1,000 and 5,000 tasks."
    import fixtures_labelstudio as F
    from mlops_nb.core import digit_png
    from mlops_nb.dataset import resolve_inputs
    from mlops_nb.labelstudio_client import connect
    from mlops_nb.params import build_params
    from mlops_nb.predict import load_model
    from mlops_nb.suggest import import_suggestions, suggest_project, project_tasks, ChoiceControl, suggestion
    from mlops_nb.testing import model_folder
    token = secrets.token_hex(20)
    proc,url,_ = F.start_server(tmp/'ls', token)
    try:
        os.environ.update(LABEL_STUDIO_URL=url, LABEL_STUDIO_API_KEY=token, MLOPS_NB_ROOT=str(tmp))
        srv = F.LabelStudioServer(url=url, token=token, proc=proc, data_dir=tmp, log=tmp/'log')
        raw = tmp/'raw'; raw.mkdir()
        for i in range(PUSH): (raw/f'{i}.png').write_bytes(digit_png(i % 1797, SIZE)[0])
        conn,rows = connect(),[]
        model = load_model(model_folder(tmp/'m', [str(i) for i in range(10)]))
        control,values = ChoiceControl('label', 'image', 'image', ()),{str(i): str(i) for i in range(10)}
        n1 = 1000
        p_bulk,p_one = (srv.make_project(f'bench-{k}-{secrets.token_hex(3)}', [{'image': f'{i}.png'} for i in range(n1)])
                        for k in ('bulk', 'one'))
        sug = lambda pid: [suggestion(t.id, [.05]*9 + [.55], list(values), values, control, 'cnn-0123456789ab')
                           for t in project_tasks(conn, pid)]
        s = sug(p_bulk.id); t0 = time.perf_counter(); import_suggestions(conn, p_bulk.id, s); bulk = n1/(time.perf_counter()-t0)
        s = sug(p_one.id); t0 = time.perf_counter()
        for x in s: srv.client.predictions.create(**x)
        one = n1/(time.perf_counter()-t0)
        rows += [row(f'bulk import_predictions, {n1} tasks (500 per request)', bulk, 'tasks/s'),
                 row(f'one predictions.create per task, {n1} tasks', one, 'tasks/s'),
                 row('bulk vs one per task', bulk/one, 'x', '> 1', bulk > one)]
        inp = resolve_inputs(build_params('dataset', {'rawdata_dir': str(raw), 'cache_dir': ''}))
        warm = srv.make_project(f'bench-warm-{secrets.token_hex(3)}', [{'image': f'{i}.png'} for i in range(50)])
        suggest_project(conn, 'bench', warm.id, model, 'cnn-0123456789ab', inp)  # imports and first calls: not measured
        peaks = {}
        for n in (1000, PUSH):
            p = srv.make_project(f'bench-suggest-{n}-{secrets.token_hex(3)}', [{'image': f'{i}.png'} for i in range(n)])
            tracemalloc.start(); t0 = time.perf_counter()
            r = suggest_project(conn, 'bench', p.id, model, 'cnn-0123456789ab', inp)
            secs = time.perf_counter()-t0; peaks[n] = tracemalloc.get_traced_memory()[1]/2**20; tracemalloc.stop()
            assert r.imported == n, r.line()
            rows += [row(f'suggest_project, {n} tasks (list, read images, predict, import, view)', n/secs, 'tasks/s'),
                     row(f'  peak traced Python memory, {n} tasks', peaks[n], 'MiB')]
        grow = peaks[PUSH]/peaks[1000]
        rows.append(row(f'peak memory {PUSH // 1000}k tasks / 1k tasks', grow, 'x', '<= 1.5', grow <= 1.5))
        return rows
    finally: F.stop_process(proc)

def main():
    tmp = Path(tempfile.mkdtemp(prefix='bench-suggest-'))
    push = push_throughput(tmp)
    record('suggest', label_saving(tmp) + push)

if __name__ == '__main__': main()
