"""Fine-tuning from tracked weights against training from scratch (issue 31), side by side in one run.

The "pretrained" weights are made here, as the tests make theirs (nothing is downloaded): a timm model (`ARCH`) trained
on 1,000 digits (0-999, 32 px), its body saved as timm saves a model without its classifier. The task is another set
of digits (1,000-1,399: 320 train, 80 valid). Both runs use the same arch, size, batch size, seed and epoch budget:
  - from scratch: `fit_one_cycle`, `EPOCHS` epochs;
  - from the weights: `fine_tune`, 1 frozen epoch then `EPOCHS - 1` (the same number of passes over the data).
Measured: the first epoch (counting the frozen one) at which validation accuracy reaches `TARGET`, for each, and their
ratio (goal < 1: fewer epochs from the weights); the best accuracy of each; the wall time of each.

Usage: python bench/bench_backbones.py
"""
import sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _common import record, row

ARCH,SIZE,EPOCHS,TARGET = 'test_resnet',32,8,0.9

def first_epoch_at(history:list, target:float, offset:int=0)->int|None:
    "1-based epoch (counting `offset` epochs run before `history`) whose accuracy first reaches `target`."
    return next((h['epoch'] + 1 + offset for h in history if h['accuracy'] >= target), None)

def train(ds:Path, out:Path, **kw):
    from mlops_nb.params import TrainParams
    from mlops_nb.train import train_model
    t = time.perf_counter()
    r = train_model(TrainParams(dataset=str(ds), out=str(out), live_dir='', metrics_fp='', arch=ARCH, size=SIZE,
                                bs=32, lr=1e-2, seed=1, **kw))
    return r, time.perf_counter() - t

def main():
    import torch
    from mlops_nb.folder import sample_dataset
    tmp = Path(tempfile.mkdtemp(prefix='bench-backbones-'))
    pre_ds = sample_dataset(tmp/'pre', n=1000, size=SIZE, start=0)
    task = sample_dataset(tmp/'task', n=400, size=SIZE, start=1000)
    pre,_ = train(pre_ds, tmp/'pre-model', epochs=EPOCHS)
    sd = torch.load(tmp/'pre-model/best-model.pth', weights_only=True)
    weights = tmp/f'{ARCH}-digits.pth'
    torch.save({k.removeprefix('0.model.'): v for k,v in sd.items() if k.startswith('0.model.')}, weights)
    scratch,s_sec = train(task, tmp/'scratch', epochs=EPOCHS)
    tuned,t_sec = train(task, tmp/'tuned', epochs=EPOCHS - 1, weights=str(weights), freeze_epochs=1)
    e_s,e_t = first_epoch_at(scratch.history, TARGET),first_epoch_at(tuned.history, TARGET, offset=1)
    ratio = e_t / e_s if e_s and e_t else None
    best = lambda r: max(h['accuracy'] for h in r.history)
    rows = [row(f'{ARCH} pretrained on digits 0-999 ({SIZE} px): its own best valid accuracy', best(pre), ''),
            row(f'from scratch: epochs to valid accuracy >= {TARGET} (of {EPOCHS})', e_s or f'> {EPOCHS}', 'epochs'),
            row(f'from the weights (fine_tune, 1 frozen + {EPOCHS - 1}): epochs to >= {TARGET}', e_t or f'> {EPOCHS}',
                'epochs'),
            row('ratio epochs from weights / from scratch', ratio if ratio is not None else 'n/a', 'x', '< 1',
                ratio is not None and ratio < 1),
            row('from scratch: best valid accuracy', best(scratch), ''),
            row('from the weights: best valid accuracy', best(tuned), ''),
            row('from scratch: wall time', s_sec, 's'), row('from the weights: wall time', t_sec, 's')]
    record('backbones', rows, arch=ARCH, size=SIZE, epochs=EPOCHS, target=TARGET,
           history={'scratch': scratch.history, 'tuned': tuned.history})

if __name__ == '__main__': main()
