"""Train stage: throughput of `train_model` (fastai Learner + callbacks, dvclive off) vs a hand-written PyTorch loop on
the same model (`small_cnn`), data (the full scikit-learn digits as 28 px PNGs), batch size, epochs, optimizer schedule
and thread count, measured alternately in one run (best of N each). Both decode every image once into memory (what
`train_model` does by default when the data fit: `cache='auto'`); then both decode every epoch (`cache='none'` vs a
torch Dataset that decodes in __getitem__). The hand-written loop decodes every epoch two ways: with
`torchvision.io.decode_image` into uint8 and normalising per batch (the fastest plain PyTorch path, and the target), and
with Pillow + per-item normalisation (the loop this bench used before, for reference). Images/s = training images x
epochs / wall time of the whole call, which includes a validation pass per epoch, keeping the best weights and (for
train_model) writing model + card. Target: fastai >= 0.9x the hand-written loop, in both modes (wall time, best of N).
CPU seconds of the process (both sides run in it, no worker processes) are recorded too: on a shared machine they move
far less than wall time.

Usage: python bench/bench_train.py [EPOCHS] [REPEATS]
"""
import copy, io, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _common import row, record

EPOCHS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
REPEATS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
BS, SIZE, LR, SEED = 64, 28, 1e-2, 0

def hand_loop(ds:Path, epochs:int, preload:bool=True, decoder:str='pil')->dict:
    "The same training, written by hand: decode + resize + normalize, AdamW + one-cycle, best-by-accuracy."
    import csv, numpy as np, torch
    from PIL import Image
    from torchvision.io import ImageReadMode, decode_image, read_file
    from torchvision.transforms.v2.functional import resize
    from mlops_nb.models import small_cnn, state_dict_bytes
    t0,c0 = time.perf_counter(),time.process_time()
    torch.manual_seed(SEED)
    rows = list(csv.DictReader(open(ds/'labels.csv')))
    classes = sorted({r['label'] for r in rows})
    mean,std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1),torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    class Images(torch.utils.data.Dataset):
        def __init__(self, split): self.items = [(ds/r['file'], classes.index(r['label'])) for r in rows if r['split'] == split]
        def __len__(self): return len(self.items)
        def __getitem__(self, i):
            f,y = self.items[i]
            if decoder == 'torchvision':   # uint8 out; scaled and normalised per batch below
                x = decode_image(read_file(str(f)), mode=ImageReadMode.RGB)
                return (x if tuple(x.shape[-2:]) == (SIZE, SIZE) else resize(x, [SIZE, SIZE], antialias=True)), y
            im = Image.open(f).convert('RGB').resize((SIZE, SIZE), Image.BILINEAR)
            x = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).float()/255
            return (x-mean)/std, y
    train,valid = Images('train'),Images('valid')
    if preload:   # decode once, like train_model's in-memory cache
        train,valid = [torch.utils.data.TensorDataset(torch.stack([d[i][0] for i in range(len(d))]), torch.tensor([y for _,y in d.items]))
                       for d in (train, valid)]
    g = torch.Generator().manual_seed(SEED)
    tdl = torch.utils.data.DataLoader(train, batch_size=BS, shuffle=True, drop_last=True, generator=g)
    vdl = torch.utils.data.DataLoader(valid, batch_size=BS)
    model = small_cnn(len(classes))
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.99), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=epochs*len(tdl), pct_start=0.25)
    best,best_sd = -1.,None
    for _ in range(epochs):
        model.train()
        for x,y in tdl:
            if x.dtype == torch.uint8: x = (x.float()/255-mean)/std   # a batch op, as train_model does
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        model.eval(); correct = 0
        with torch.no_grad():
            for x,y in vdl:
                if x.dtype == torch.uint8: x = (x.float()/255-mean)/std
                correct += (model(x).argmax(1) == y).sum().item()
        if (acc := correct/len(valid)) > best: best,best_sd = acc,copy.deepcopy(model.state_dict())
    model.load_state_dict(best_sd); state_dict_bytes(model)
    return {'seconds': time.perf_counter()-t0, 'cpu': time.process_time()-c0, 'accuracy': best, 'n_train': len(train)}

def fastai_run(ds:Path, out:Path, epochs:int, cache:str='auto')->dict:
    from mlops_nb.params import TrainParams
    from mlops_nb.train import train_model
    t0,c0 = time.perf_counter(),time.process_time()
    p = TrainParams(dataset=str(ds), out=str(out), arch='cnn', bs=BS, size=SIZE, epochs=epochs, lr=LR, seed=SEED,
                    cache=cache, live_dir='')
    r = train_model(p, device='cpu')
    return {'seconds': time.perf_counter()-t0, 'cpu': time.process_time()-c0, 'accuracy': r.metrics['accuracy'],
            'n_train': r.n_train}

def main():
    import os
    os.environ.setdefault('MLOPS_PROGRESS', 'plain')
    import torch
    from mlops_nb.folder import sample_dataset
    from mlops_nb.device import cpu_threads
    import fastai.vision.all  # noqa: F401  (import cost is not training throughput)
    torch.set_num_threads(cpu_threads())
    tmp = Path(tempfile.mkdtemp(prefix='bench-train-'))
    ds = sample_dataset(tmp/'digits', n=1797, size=SIZE)
    runs = {k: [] for k in ('fa', 'hl', 'fa_stream', 'hl_stream', 'hl_stream_pil')}
    for i in range(REPEATS):   # alternate, so load changes on a shared machine hit both sides
        runs['fa'].append(fastai_run(ds, tmp/f'm{i}', EPOCHS))
        runs['hl'].append(hand_loop(ds, EPOCHS))
        runs['fa_stream'].append(fastai_run(ds, tmp/f's{i}', EPOCHS, cache='none'))
        runs['hl_stream'].append(hand_loop(ds, EPOCHS, preload=False, decoder='torchvision'))
        runs['hl_stream_pil'].append(hand_loop(ds, EPOCHS, preload=False, decoder='pil'))
        print(f'repeat {i+1}: ' + ' | '.join(f'{k} {v[-1]["seconds"]:.1f}s acc {v[-1]["accuracy"]:.3f}' for k,v in runs.items()), flush=True)
    best = {k: min(v, key=lambda r: r['seconds']) for k,v in runs.items()}
    ips = lambda r: r['n_train']*EPOCHS/r['seconds']
    f,h = best['fa'],best['hl']
    ratio,ratio_s = ips(f)/ips(h),ips(best['fa_stream'])/ips(best['hl_stream'])
    cpu = {k: min(r['cpu'] for r in v) for k,v in runs.items()}   # CPU seconds of the process: far less load-sensitive
    record('train', [
        row(f'hand-written PyTorch loop, decoded once ({EPOCHS} epochs, bs {BS}, {SIZE}px)', ips(h), 'img/s'),
        row("fastai train_model (cache='auto': decoded once)", ips(f), 'img/s'),
        row('fastai / hand-written throughput', ratio, 'x', '>= 0.9x', ratio >= 0.9),
        row('hand-written loop, PNG decoded every epoch (torchvision, uint8, normalised per batch)',
            ips(best['hl_stream']), 'img/s'),
        row('hand-written loop, PNG decoded every epoch (Pillow, normalised per item)', ips(best['hl_stream_pil']),
            'img/s'),
        row("fastai train_model, cache='none' (decoded every epoch)", ips(best['fa_stream']), 'img/s'),
        row('fastai / hand-written (torchvision), both decoding every epoch', ratio_s, 'x', '>= 0.9x', ratio_s >= 0.9),
        row('fastai / hand-written (Pillow), both decoding every epoch',
            ips(best['fa_stream'])/ips(best['hl_stream_pil']), 'x'),
        row('CPU-time ratio fastai / hand-written, decoded once (best CPU s of each)', cpu['hl']/cpu['fa'], 'x'),
        row('CPU-time ratio fastai / hand-written (torchvision), decoding every epoch',
            cpu['hl_stream']/cpu['fa_stream'], 'x'),
        row('fastai train_model wall time (full digits)', f['seconds'], 's', '< 120 s', f['seconds'] < 120),
        row('fastai best valid accuracy', f['accuracy'], '', '>= 0.9', f['accuracy'] >= 0.9),
        row("fastai best valid accuracy, cache='none'", best['fa_stream']['accuracy'], ''),
        row('hand-written best valid accuracy', h['accuracy'], ''),
    ], epochs=EPOCHS, repeats=REPEATS, threads=torch.get_num_threads(), n_train=f['n_train'],
       all_seconds={k: [round(r['seconds'], 2) for r in v] for k,v in runs.items()},
       all_cpu_seconds={k: [round(r['cpu'], 2) for r in v] for k,v in runs.items()})

if __name__ == '__main__':
    import shutil
    before = set(Path(tempfile.gettempdir()).glob('bench-train-*'))
    try: main()
    finally:   # the temp dataset and models of this run
        for d in set(Path(tempfile.gettempdir()).glob('bench-train-*')) - before: shutil.rmtree(d, ignore_errors=True)
