"""Per-batch cost of fastai's training loop on CPU, the stand-in for the GPU in-memory gap (issue 16, item 4): a model
so small (one Linear layer on 8 numbers) that a batch is almost only Python, trained from tensors held in memory, bs 256.
Side by side, best of 3 each, one thread:
- a hand-written loop (forward, loss, backward, Adam step, zero_grad) over the same batches;
- fastai's `Learner` as `train_model` drives it (`fit_one_cycle`, plain progress), as it comes;
- the same with `learner.lean_events` (each event only on the callbacks that handle it), which `make_learner` uses.
The figure that matters is the milliseconds fastai adds per batch over the hand-written loop: on a GPU, where a small
model's step takes well under a millisecond, that Python is what the GPU waits for.
"""
import sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from _common import row, record

N, BS, EPOCHS = 256 * 40, 256, 3

def batches():
    import torch
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(N, 8, generator=g), torch.randint(0, 10, (N,), generator=g)
    return [(x[i:i+BS], y[i:i+BS]) for i in range(0, N, BS)]

def fastai_ms(lean:bool, data)->float:
    "Milliseconds per training batch of `fit_one_cycle` (validation on one batch)."
    import torch
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.callback.schedule import fit_one_cycle  # noqa: F401 (patches Learner)
    from fastai.optimizer import Adam
    from mlops_nb.learner import lean_events, plain_progress
    torch.manual_seed(0)
    dls = DataLoaders(data, data[:1])   # lists of ready batches: no collation on either side
    learn = Learner(dls, torch.nn.Linear(8, 10), loss_func=torch.nn.CrossEntropyLoss(), opt_func=Adam,
                    path=tempfile.mkdtemp())
    if lean: lean_events(learn)
    plain_progress(learn, EPOCHS)
    learn.logger = lambda *a: None
    t = time.perf_counter()
    learn.fit_one_cycle(EPOCHS, 1e-2)
    return (time.perf_counter() - t) / (EPOCHS * (len(data) + 1)) * 1000

def hand_ms(data)->float:
    import torch
    torch.manual_seed(0)
    m = torch.nn.Linear(8, 10); opt = torch.optim.Adam(m.parameters(), 1e-2); lf = torch.nn.CrossEntropyLoss()
    t = time.perf_counter()
    for _ in range(EPOCHS):
        for xb, yb in data:
            loss = lf(m(xb), yb); loss.backward(); opt.step(); opt.zero_grad()
    return (time.perf_counter() - t) / (EPOCHS * len(data)) * 1000

def main():
    import torch
    torch.set_num_threads(1)
    data = batches()
    res = {'hand': [], 'plain': [], 'lean': []}
    for _ in range(3):   # alternated, so load changes hit all three
        res['hand'].append(hand_ms(data)); res['plain'].append(fastai_ms(False, data)); res['lean'].append(fastai_ms(True, data))
    h,p,l = (min(res[k]) for k in ('hand', 'plain', 'lean'))
    record('batch', [
        row('hand-written loop, tiny model, bs 256, tensors in memory', h, 'ms/batch'),
        row('fastai Learner as it comes (fit_one_cycle)', p, 'ms/batch'),
        row('fastai Learner with lean_events (what train_model uses)', l, 'ms/batch'),
        row('  fastai adds per batch, as it comes', p - h, 'ms'),
        row('  fastai adds per batch, lean_events', l - h, 'ms'),
        row('  lean_events / as it comes, added time', (l - h) / (p - h), 'x', '< 1x', l - h < p - h),
    ], n=N, bs=BS, epochs=EPOCHS, all_ms={k: [round(v, 3) for v in vs] for k,vs in res.items()})

if __name__ == '__main__': main()
