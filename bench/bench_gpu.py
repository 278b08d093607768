"""GPU: how close `train_model` comes to what the GPU can do (issue 16, item 4). One prepared call on a lent GPU.

For each model (resnet18 and the small CNN) at one batch size, with autocast (bfloat16 where the GPU has it), fused
AdamW and channels_last, as `train_model` trains on CUDA:
- the synthetic upper bound: the same model and optimizer on random batches already on the GPU (no data path at all);
- `train_model(cache='memory')`: decoded once into a uint8 tensor on the GPU, batches cut by index;
- `train_model(cache='none')` (PNG decoded every epoch by N DataLoader workers) vs a hand-written loop with the same
  N workers (torchvision decode to uint8, pinned memory, non-blocking copy, normalised on the GPU);
- first epoch vs a steady one, with cuDNN autotuning on (`autotune=True`, the default) and off;
- `bs='auto'` (`mlops_nb.device.auto_batch_size`): the batch size chosen, and its steady throughput.
Images/s count the training phase of an epoch only (before_train..after_train, synchronised), so the validation pass
is left out on both sides; "steady" is the median of the epochs after the first. GPU utilisation (mean of
nvidia-smi samples every 100 ms, or torch.cuda.utilization) is reported next to each figure over the same windows.
The dataset: N digits at SIZE px, PNG, in the dataset stage's folder format, each one shifted and noised so every
image is distinct.

Usage: python bench/bench_gpu.py [--n 20000] [--size 64] [--bs 256] [--epochs 4] [--workers 4] [--archs resnet18,cnn]
       python bench/bench_gpu.py --cpu-smoke    # tiny data on CPU: checks every piece runs, records nothing
Without CUDA (and without --cpu-smoke) it prints one line and exits 0. Results go to bench/results.json under `gpu`.
"""
import argparse, hashlib, io, json, os, shutil, statistics, subprocess, sys, tempfile, threading, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _common import row, record, print_table

def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n', type=int, default=20000, help='images in the dataset (80 %% train)')
    p.add_argument('--size', type=int, default=64, help='image side in pixels')
    p.add_argument('--bs', type=int, default=256, help='batch size of the side-by-side runs')
    p.add_argument('--epochs', type=int, default=4, help='epochs per run (the first, then steady ones)')
    p.add_argument('--workers', type=int, default=4, help='DataLoader workers when decoding every epoch (both sides)')
    p.add_argument('--archs', default='resnet18,cnn', help='comma-separated: cnn and/or torchvision names')
    p.add_argument('--steps', type=int, default=60, help='timed steps of the synthetic upper bound')
    p.add_argument('--no-auto', action='store_true', help='skip the bs=auto run')
    p.add_argument('--cpu-smoke', action='store_true', help='tiny data on CPU to check the script; records nothing')
    a = p.parse_args(argv)
    if a.cpu_smoke: a.n,a.size,a.bs,a.epochs,a.workers,a.archs,a.steps = 160,16,16,2,2,'cnn',3
    a.archs = a.archs.split(',')
    return a

# -- GPU utilisation ----------------------------------------------------------------------------------------------

class Utilisation:
    "GPU utilisation samples (time, %) every 100 ms from nvidia-smi, else torch.cuda.utilization; none on CPU."
    def __init__(self, cuda:bool):
        self.samples,self.proc,self.thread,self.stop = [],None,None,threading.Event()
        if not cuda: return
        if shutil.which('nvidia-smi'):
            gpu = os.environ.get('CUDA_VISIBLE_DEVICES', '0').split(',')[0]
            cmd = ['nvidia-smi', '--query-gpu=utilization.gpu', '--format=csv,noheader,nounits', '-i', gpu,
                   '-lms', '100']
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.thread = threading.Thread(target=self._read, daemon=True)
        else: self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
    def _read(self):
        for line in self.proc.stdout:
            if line.strip().isdigit(): self.samples.append((time.perf_counter(), int(line)))
    def _poll(self):
        import torch
        while not self.stop.wait(0.1):
            try: self.samples.append((time.perf_counter(), torch.cuda.utilization()))
            except Exception: return
    def mean(self, windows:list)->float|None:
        "Mean utilisation (%) over the samples inside any of the (start, end) windows."
        v = [u for t,u in self.samples if any(a <= t <= b for a,b in windows)]
        return round(statistics.fmean(v), 1) if v else None
    def close(self):
        self.stop.set()
        if self.proc: self.proc.terminate()

# -- the dataset --------------------------------------------------------------------------------------------------

def _image(i:int, size:int)->tuple:
    "(png bytes, label) of digit i % 1797, shifted by up to 2 px and noised, so that every i gives another image."
    import numpy as np
    from PIL import Image
    from mlops_nb.core import digit_png
    png,label = digit_png(i % 1797, size)
    rng = np.random.default_rng(i)
    a = np.asarray(Image.open(io.BytesIO(png)).convert('RGB')).astype(np.int16)
    a = np.roll(a, tuple(rng.integers(-2, 3, 2)), axis=(0, 1)) + rng.integers(-8, 9, a.shape)
    buf = io.BytesIO()
    Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(buf, 'PNG')
    return buf.getvalue(), label

def make_dataset(out:Path, n:int, size:int)->Path:
    "A dataset folder of n distinct digits, every 5th in valid, written by the dataset folder's one writer."
    from concurrent.futures import ProcessPoolExecutor
    from mlops_nb.folder import write_dataset_folder
    with ProcessPoolExecutor(min(16, os.cpu_count() or 1)) as ex:
        imgs = list(ex.map(_image, range(n), [size]*n, chunksize=256))
    rows,images = [],{}
    for i,(png,label) in enumerate(imgs):
        sha = hashlib.sha256(png).hexdigest()
        if f'images/{sha}.png' in images: continue
        images[f'images/{sha}.png'] = png
        rows.append({'file': f'images/{sha}.png', 'label': label, 'split': 'valid' if i % 5 == 4 else 'train',
                     'task_id': i+1, 'annotation_id': i+1, 'sha256': sha})
    meta = {'name': out.name, 'mode': 'train', 'classes': sorted({r['label'] for r in rows}), 'n_images': len(rows)}
    return write_dataset_folder(out, rows, images, meta).path

# -- the three sides ----------------------------------------------------------------------------------------------

def _sync(device:str):
    import torch
    if device == 'cuda': torch.cuda.synchronize()


def amp_step(model, opt, scaler, x, y, device:str, cuda:bool):
    "One training step as `train_model` takes it on CUDA: autocast in `amp_dtype()`, a scaler only for float16."
    import torch
    from mlops_nb.device import amp_dtype
    with torch.autocast(device, dtype=amp_dtype() if cuda else torch.float32, enabled=cuda):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    opt.zero_grad(set_to_none=True)

def _optimizer(model, cuda:bool):
    "`train_model`'s CUDA optimizer (fused AdamW) and a grad scaler that is on only for float16."
    import torch
    from mlops_nb.device import amp_dtype, cuda_optimizer
    opt = cuda_optimizer(model.parameters()) if cuda else torch.optim.AdamW(model.parameters(), lr=1e-3)
    return opt, torch.amp.GradScaler('cuda' if cuda else 'cpu', enabled=cuda and amp_dtype() == torch.float16)

def synthetic_bound(arch:str, bs:int, size:int, steps:int, device:str)->dict:
    "Train steps of `arch` on random batches already on the device (AMP + channels_last on CUDA): the upper bound."
    import torch
    from mlops_nb.models import create_model
    cuda = device == 'cuda'
    torch.backends.cudnn.benchmark = True
    model = create_model(arch, 10).to(device, memory_format=torch.channels_last)
    opt,scaler = _optimizer(model, cuda)
    x = torch.randn(bs, 3, size, size, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (bs,), device=device)
    def step(): amp_step(model, opt, scaler, x, y, device, cuda)
    t0 = time.perf_counter()
    for _ in range(20): step()   # the first steps include cuDNN autotuning
    _sync(device)
    t1 = time.perf_counter()
    for _ in range(steps): step()
    _sync(device)
    t2 = time.perf_counter()
    return {'ips': bs*steps/(t2-t1), 'warmup_s': t1-t0, 'window': [(t1, t2)]}

def _clock(device:str):
    "A fastai callback timing the training phase of every epoch (synchronised)."
    from fastai.callback.core import Callback
    class EpochClock(Callback):
        order = 100
        def before_fit(self): self.phases = []
        def before_train(self):
            _sync(device)
            self.t0 = time.perf_counter()
        def after_train(self):
            _sync(device)
            self.phases.append((self.t0, time.perf_counter(), len(self.learn.dls.train)*self.learn.dls.train.bs))
    return EpochClock()

def _epochs(phases:list)->dict:
    "First and steady (median of the rest) training-phase throughput from (start, end, images) per epoch."
    secs = [b-a for a,b,_ in phases]
    steady = statistics.median(secs[1:]) if len(secs) > 1 else secs[0]
    return {'first_s': secs[0], 'steady_s': steady, 'ips': phases[0][2]/steady, 'first_ips': phases[0][2]/secs[0],
            'window': [(a, b) for a,b,_ in phases[1:]] or [(phases[0][0], phases[0][1])]}

def fastai_run(ds:Path, out:Path, arch:str, bs, epochs:int, device:str, cache:str, workers:int,
               autotune:bool=True)->dict:
    "`train_model` with a clock on every epoch's training phase."
    from mlops_nb.params import TrainParams
    from mlops_nb.train import train_model
    clock = _clock(device)
    t0 = time.perf_counter()
    p = TrainParams(dataset=str(ds), out=str(out), arch=arch, bs=bs, size=SIZE, epochs=epochs, lr=1e-3, seed=0,
                    cache=cache, live_dir='')
    r = train_model(p, cbs=[clock], device=device, num_workers=workers, autotune=autotune)
    card = json.loads((out/'model.json').read_text())
    return {**_epochs(clock.phases), 'seconds': time.perf_counter()-t0, 'accuracy': r.metrics['accuracy'],
            'bs_used': card['params']['bs_used']}

def hand_stream(ds:Path, arch:str, bs:int, epochs:int, device:str, workers:int)->dict:
    "A hand-written loop decoding PNG every epoch in `workers` processes, uint8 pinned batches normalised on the GPU."
    import torch
    from torchvision.io import ImageReadMode, decode_image, read_file
    from mlops_nb.folder import DatasetFolder
    from mlops_nb.models import create_model
    cuda = device == 'cuda'
    folder = DatasetFolder.read(ds, mode='train')
    rows,classes = folder.split('train'),folder.classes
    class Images(torch.utils.data.Dataset):
        def __init__(self):
            self.items = [(str(ds/r['file']), classes.index(r['label'])) for r in rows]
        def __len__(self): return len(self.items)
        def __getitem__(self, i):
            f,y = self.items[i]
            return decode_image(read_file(f), mode=ImageReadMode.RGB), y
    dl = torch.utils.data.DataLoader(Images(), batch_size=bs, shuffle=True, drop_last=True, num_workers=workers,
                                     pin_memory=cuda, persistent_workers=workers > 0)
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)*255
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)*255
    model = create_model(arch, len(classes)).to(device, memory_format=torch.channels_last)
    opt,scaler = _optimizer(model, cuda)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=epochs*len(dl))
    phases = []
    for _ in range(epochs):
        model.train()
        _sync(device)
        t0 = time.perf_counter()
        for x,y in dl:
            x = x.to(device, non_blocking=True).float().sub_(mean).div_(std)
            x = x.contiguous(memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True)
            amp_step(model, opt, scaler, x, y, device, cuda)
            sched.step()
        _sync(device)
        phases.append((t0, time.perf_counter(), len(dl)*bs))
    return _epochs(phases)

# -- main ---------------------------------------------------------------------------------------------------------

def arch_rows(a, arch:str, ds:Path, tmp:Path, device:str, util:Utilisation)->list:
    "Every side-by-side figure for one model."
    u = util.mean
    bound = synthetic_bound(arch, a.bs, a.size, a.steps, device)
    mem = fastai_run(ds, tmp/f'{arch}-mem', arch, a.bs, a.epochs, device, 'memory', 0)
    mem_off = fastai_run(ds, tmp/f'{arch}-mem-off', arch, a.bs, a.epochs, device, 'memory', 0, autotune=False)
    stream = fastai_run(ds, tmp/f'{arch}-stream', arch, a.bs, a.epochs, device, 'none', a.workers)
    hand = hand_stream(ds, arch, a.bs, a.epochs, device, a.workers)
    r_mem,r_stream = mem['ips']/bound['ips'],stream['ips']/hand['ips']
    first,first_off = mem['first_s']/mem['steady_s'],mem_off['first_s']/mem_off['steady_s']
    p = f'{arch}, bs {a.bs}:'
    return [
        row(f'{p} synthetic upper bound (random batches on the GPU) [GPU {u(bound["window"])} %]', bound['ips'],
            'img/s'),
        row(f'{p} its first 20 steps (cuDNN autotuning)', bound['warmup_s'], 's'),
        row(f"{p} train_model, cache='memory', steady epoch [GPU {u(mem['window'])} %]", mem['ips'], 'img/s'),
        row(f'{p} train_model in memory / synthetic bound', r_mem, 'x', '>= 0.85x', r_mem >= 0.85),
        row(f"{p} train_model, cache='none', {a.workers} workers, steady [GPU {u(stream['window'])} %]", stream['ips'],
            'img/s'),
        row(f'{p} hand-written loop, {a.workers} workers, steady [GPU {u(hand["window"])} %]', hand['ips'], 'img/s'),
        row(f'{p} train_model decoding / hand-written loop', r_stream, 'x', '>= 0.9x', r_stream >= 0.9),
        row(f'{p} first epoch / steady, autotune on', first, 'x', '<= 1.5x', first <= 1.5),
        row(f'{p} first epoch / steady, autotune off', first_off, 'x', '<= 1.5x', first_off <= 1.5),
        row(f'{p} steady, autotune off / on', mem_off['ips']/mem['ips'], 'x'),
        row(f'{p} best valid accuracy (memory / decoding)', f"{mem['accuracy']:.3f} / {stream['accuracy']:.3f}", ''),
    ]

def auto_rows(a, ds:Path, tmp:Path, device:str, util:Utilisation)->list:
    "bs='auto' on resnet18: the batch size chosen, its throughput, and the bound at that batch size."
    run = fastai_run(ds, tmp/'auto', 'resnet18', 'auto', a.epochs, device, 'memory', 0)
    bound = synthetic_bound('resnet18', run['bs_used'], a.size, a.steps, device)
    ratio = run['ips']/bound['ips']
    print(f"bs auto chose {run['bs_used']}", flush=True)
    return [row('resnet18, bs auto: batch size chosen', run['bs_used'], ''),
            row(f"resnet18, bs auto: train_model, cache='memory', steady [GPU {util.mean(run['window'])} %]",
                run['ips'], 'img/s'),
            row(f'resnet18, bs auto: synthetic bound at that bs [GPU {util.mean(bound["window"])} %]', bound['ips'],
                'img/s'),
            row('resnet18, bs auto: train_model / bound', ratio, 'x')]

def main(argv=None)->int:
    global SIZE
    a = parse(argv if argv is not None else sys.argv[1:])
    os.environ.setdefault('MLOPS_PROGRESS', 'plain')
    import torch
    if not torch.cuda.is_available() and not a.cpu_smoke:
        print('bench_gpu: skipped: no CUDA device here (torch.cuda.is_available() is False); run it on a lent GPU, '
              'see bench/README.md')
        return 0
    SIZE,device = a.size,('cpu' if a.cpu_smoke else 'cuda')
    name = torch.cuda.get_device_name(0) if device == 'cuda' else 'CPU (smoke run)'
    print(f'bench_gpu on {name}: torch {torch.__version__}, {a.n} images at {a.size} px, bs {a.bs}', flush=True)
    tmp = Path(tempfile.mkdtemp(prefix='bench-gpu-'))
    util = Utilisation(device == 'cuda')
    try:
        t0 = time.perf_counter()
        ds = make_dataset(tmp/'digits', a.n, a.size)
        print(f'dataset: {time.perf_counter()-t0:.1f}s', flush=True)
        rows = []
        parts = [lambda arch=arch: arch_rows(a, arch, ds, tmp, device, util) for arch in a.archs]
        if not a.no_auto and not a.cpu_smoke: parts.append(lambda: auto_rows(a, ds, tmp, device, util))
        for part in parts:   # recorded after each part, so a run cut short keeps what it measured
            rows += part()
            print(f'--- {time.perf_counter()-t0:.0f}s', flush=True)
            if a.cpu_smoke: continue
            record('gpu', rows, gpu=name, torch=torch.__version__, n=a.n, size=a.size, bs=a.bs, epochs=a.epochs,
                   workers=a.workers, cpus=os.cpu_count(), complete=part is parts[-1])
    finally:
        util.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if a.cpu_smoke: print_table('gpu (CPU smoke run, not recorded)', rows)
    return 0

SIZE = 64
if __name__ == '__main__': sys.exit(main())
