"""Scaling figures: distributed training on this machine's CPUs, and memory against dataset size.

`ddp-smoke` (also `make ddp-smoke`): the same small digits training in one process and in two (`train_model(...,
distributed=2)`: torchrun, fastai's distributed support over gloo), printing the world size, images/s and the
accuracy of each. On a 2-core machine two processes share the same two cores, so the figure shows that the machinery
works and what it costs, not a speed-up; one process per GPU is where it pays.

`rss`: peak RSS and train images/s (the second epoch's training phase) at 1,000 and 10,000 images, decoding from
the dataset folder every epoch (`cache='none'`, the lazy path) and decoding once into memory (`cache='memory'`).

`growth [N ...]`: Label Studio export, dataset build and one training epoch at N tasks each (default 1000 4000), on a
local Label Studio, and the growth factor between sizes.

Usage: python bench/bench_scale.py [ddp-smoke|rss|growth N ...]   (default: ddp-smoke)
"""
import json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _common import row, record

def ddp_smoke(n:int=600, epochs:int=2, processes:int=2)->list:
    "Train the same small digits set in 1 and in `processes` processes; print and return the figures."
    os.environ.setdefault('MLOPS_PROGRESS', 'plain')
    from mlops_nb.params import TrainParams
    from mlops_nb.train import train_model
    from mlops_nb.folder import sample_dataset
    with tempfile.TemporaryDirectory() as tmp:
        ds = sample_dataset(Path(tmp)/'digits', n=n, size=16)
        kw = dict(dataset=str(ds), size=16, bs=32, epochs=epochs, lr=1e-2, seed=1, live_dir='')
        one = train_model(TrainParams(out=str(Path(tmp)/'one'), **kw))
        many = train_model(TrainParams(out=str(Path(tmp)/'many'), distributed=processes, **kw))
        models = sorted(str(p.relative_to(tmp)) for p in Path(tmp).rglob('best-model.pth'))
    ips,acc = lambda r: r.n_train*epochs/r.seconds,lambda r: r.metrics['accuracy']
    print(f'ddp-smoke: world size {processes}, {ips(many):.0f} images/s, accuracy {many.metrics["accuracy"]:.3f}; '
          f'1 process: {ips(one):.0f} images/s, accuracy {one.metrics["accuracy"]:.3f}; models written: {models}')
    assert models == ['many/best-model.pth', 'one/best-model.pth'], models
    assert abs(many.metrics['accuracy'] - one.metrics['accuracy']) <= 0.15, 'accuracy differs by more than 0.15'
    return [row(f'train {processes} processes (gloo, CPU): images/s', round(ips(many))),
            row('train 1 process: images/s', round(ips(one))),
            row(f'accuracy, {processes} processes vs 1', f'{acc(many):.3f} vs {acc(one):.3f}', target='within 0.15',
                ok=abs(acc(many) - acc(one)) <= 0.15)]

def synthetic_digits(out:Path, n:int, size:int=28, seed:int=0)->Path:
    "A dataset folder of `n` distinct digit PNGs (scikit-learn's digits, each with its own noise), every 5th in valid."
    import csv, hashlib, numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    digits,rng = load_digits(),np.random.default_rng(seed)
    (out/'images').mkdir(parents=True)
    rows = []
    for i in range(n):
        img = digits.images[i % len(digits.images)]*16 + rng.integers(0, 24, (8, 8))
        im = Image.fromarray(np.clip(255 - img, 0, 255).astype(np.uint8)).resize((size, size)).convert('RGB')
        path = out/'images'/f'{i}.png'
        im.save(path)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        rows.append({'file': f'images/{i}.png', 'label': str(digits.target[i % len(digits.target)]),
                     'split': 'valid' if i % 5 == 4 else 'train', 'task_id': i+1, 'annotation_id': i+1, 'sha256': sha})
    with open(out/'labels.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, list(rows[0]), lineterminator='\n')
        w.writeheader()
        w.writerows(rows)
    meta = {'name': out.name, 'mode': 'train', 'classes': [str(c) for c in range(10)], 'n_images': n}
    (out/'dataset.json').write_text(json.dumps(meta))
    return out

_TRAIN_ONE = """import json, sys, time
from fastai.callback.core import Callback
from mlops_nb.params import TrainParams
from mlops_nb.train import train_model
class TrainPhase(Callback):
    "Wall time of each epoch's training phase (no validation, no set-up)."
    def before_fit(self): self.times = []
    def before_train(self): self.t0 = time.perf_counter()
    def after_train(self): self.times.append(time.perf_counter() - self.t0)
timer = TrainPhase()
p = TrainParams(dataset=sys.argv[1], out=sys.argv[2], size=28, bs=64, epochs=2, lr=1e-2, seed=0, cache=sys.argv[3],
                live_dir='')
r = train_model(p, cbs=[timer])
hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))
print(json.dumps({'images_per_s': r.n_train/timer.times[-1], 'epoch_s': timer.times[-1], 'peak_rss_mb': hwm/1024}))"""

def train_once(ds:Path, out:Path, cache:str)->dict:
    "One epoch of `train_model` in a fresh interpreter: images/s and its peak RSS (VmHWM)."
    env = {**os.environ, 'MLOPS_PROGRESS': 'plain'}
    r = subprocess.run([sys.executable, '-c', _TRAIN_ONE, str(ds), str(out), cache], env=env, capture_output=True,
                       text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])

def rss_rows(sizes:tuple=(1000, 10000))->list:
    "Peak RSS and images/s of one epoch at each dataset size, lazy (`cache='none'`) and in memory."
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        figs = {(n, c): train_once(synthetic_digits(Path(tmp)/f'd{n}', n) if c == 'none' else Path(tmp)/f'd{n}',
                                   Path(tmp)/f'm{n}{c}', c) for n in sizes for c in ('none', 'memory')}
    lo,hi = sizes
    for c in ('none', 'memory'):
        a,b = figs[(lo, c)],figs[(hi, c)]
        for n in sizes: print(f'{c:6} {n:6} images: {figs[(n, c)]}')
        rss_ratio,ips_ratio = b['peak_rss_mb']/a['peak_rss_mb'],b['images_per_s']/a['images_per_s']
        lazy = c == 'none'
        rows += [row(f'cache={c}: peak RSS {lo:,} -> {hi:,} images',
                     f"{a['peak_rss_mb']:.0f} -> {b['peak_rss_mb']:.0f}", 'MB', '<= 1.2x' if lazy else '',
                     (rss_ratio <= 1.2) if lazy else None),
                 row(f'cache={c}: train images/s {lo:,} -> {hi:,} images',
                     f"{a['images_per_s']:.0f} -> {b['images_per_s']:.0f}", 'images/s', 'within 10 %' if lazy else '',
                     (abs(ips_ratio-1) <= 0.1) if lazy else None)]
    return rows

def _import_tasks(client, title:str, raw:Path, n:int)->int:
    "A Label Studio project of `n` annotated tasks whose images are plain paths under `raw`; returns its id."
    import csv
    from mlops_nb.labelstudio import DIGITS_CONFIG, choice_result
    rows = list(csv.DictReader(open(raw/'labels.csv')))[:n]
    p = client.projects.create(title=title, label_config=DIGITS_CONFIG)
    tasks = [{'data': {'image': r['file']}, 'annotations': [{'result': choice_result(r['label'])}]} for r in rows]
    for i in range(0, n, 1000): client.projects.import_tasks(id=p.id, request=tasks[i:i+1000], return_task_ids=False)
    return p.id

def growth_rows(sizes:tuple=(1000, 4000))->list:
    "Export, dataset build and one training epoch at each size, on a local Label Studio; the growth per step."
    import _demo
    from mlops_nb.dataset import build_dataset
    from mlops_nb.params import DatasetParams
    from mlops_nb.labelstudio import connect, export_project
    from mlops_nb.params import LabelstudioParams
    figs = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)/'proj'
        root.mkdir()
        (root/'params.yaml').write_text('{}\n')
        os.environ['MLOPS_NB_ROOT'] = str(root)
        raw = synthetic_digits(Path(tmp)/'raw', max(sizes))
        with _demo.labelstudio(root, seed=False):
            client = connect().client
            for n in sizes:
                pid = _import_tasks(client, f'growth-{n}', raw, n)
                export = root/f'data/raw_labels/g{n}.json'
                t = time.perf_counter(); export_project(LabelstudioParams(project=pid, out=export, force=True)); t_export = time.perf_counter() - t
                t = time.perf_counter()
                build_dataset(DatasetParams(export=str(export), out=str(root/f'data/datasets/g{n}'), rawdata_dir=str(raw),
                                            cache_dir='', workers=8))
                t_dataset = time.perf_counter() - t
                epoch = train_once(root/f'data/datasets/g{n}', root/f'data/models/g{n}', 'auto')['epoch_s']
                figs[n] = {'export': t_export, 'dataset': t_dataset, 'epoch': epoch}
                print(f'{n} tasks: {figs[n]}', flush=True)
    stages,steps = ('export', 'dataset', 'epoch'),list(zip(sizes, sizes[1:]))
    sizes_s = ' / '.join(f'{n:,}' for n in sizes)
    return [row(f'{st}: {sizes_s} tasks', ' / '.join(f'{figs[n][st]:.1f}' for n in sizes), 's') for st in stages] + \
           [row(f'{st}: growth {lo:,} -> {hi:,} tasks', figs[hi][st]/figs[lo][st], 'x', f'{hi/lo:.0f} if linear')
            for st in stages for lo,hi in steps]

if __name__ == '__main__':
    modes = sys.argv[1:] or ['ddp-smoke']
    if 'ddp-smoke' in modes: record('ddp', ddp_smoke())
    if 'rss' in modes: record('rss', rss_rows())
    if 'growth' in modes: record('growth', growth_rows(tuple(int(a) for a in modes if a.isdigit()) or (1000, 4000)))
